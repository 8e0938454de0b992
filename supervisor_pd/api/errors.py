"""Error replies, and the two checks every request meets before its handler.

Every error is a JSON body; nothing a client sends becomes a 500 or a traceback. Errors on the
inference API (the Coordinator's paths, `/v1/models` and any unknown path under `/v1/` or
`/v2/`) have OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so the official
clients show the message; errors of supervisor_pd's own routes are `{"error": "..."}`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from supervisor_pd.api.requests import IDENTITY, shown

# supervisor_pd's own routes under /v1/: everything else there belongs to the inference API.
OWN_PREFIXES = ("/v1/status", "/v1/processes", "/v1/drain")
# A refused body this size or smaller is read (raw, never inflated) so that the client reads the
# reply instead of a reset; a larger one is not read at all and the connection is closed.
DRAIN_LIMIT = 64 * 1024


def json_response(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status_code, body=orjson.dumps(data), content_type="application/json", headers=headers)


def openai_error(
    status: int, message: str, param: str | None = None, code: str | None = None, kind: str | None = None
) -> web.Response:
    kind = kind or ("invalid_request_error" if status < 500 else "server_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def as_openai_error(status: int, data: bytes, headers: dict[str, str]) -> web.Response:
    """The Coordinator's own error on an OpenAI path (`{"error": "...", "error_type": "..."}` or
    text), in OpenAI's shape with its message kept: the official clients read only that shape."""
    try:
        found = orjson.loads(data)
    except orjson.JSONDecodeError:
        found = None
    if isinstance(found, dict) and isinstance(found.get("error"), dict):
        return web.Response(status=status, body=data, headers=headers)  # already OpenAI's shape
    if isinstance(found, dict) and found.get("error") is not None:
        message, kind = str(found["error"]), found.get("error_type")
    else:
        message, kind = data.decode(errors="replace").strip() or f"HTTP {status}", None
    response = openai_error(status, message, kind=str(kind) if kind else None)
    response.headers.update({k: v for k, v in headers.items() if k.lower() != "content-type"})
    return response


def mindie_error(status: int, message: str, kind: str = "Input Validation Error") -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps({"error": message, "error_type": kind}), content_type="application/json"
    )


# MindIE's own inference paths: their clients read MindIE's error shape.
MINDIE_PATHS = ("/infer", "/infer_token", "/generate", "/generate_stream", "/v1/tokenizer")


def openai_path(path: str) -> bool:
    """The OpenAI API: its paths, /v1/models, and anything else under /v1/ that is not ours."""
    return path.startswith("/v1/") and not path.startswith(OWN_PREFIXES) and path not in MINDIE_PATHS


def inference_path(path: str) -> bool:
    return openai_path(path) or path in MINDIE_PATHS or path.startswith("/v2/")


@web.middleware
async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        message = {404: f"No route {shown(request.path)}.", 405: f"{request.method} is not allowed here."}
        if openai_path(request.path):
            response = openai_error(exc.status, message.get(exc.status, exc.reason), code=_code(exc.status))
        elif inference_path(request.path):
            response = mindie_error(exc.status, message.get(exc.status, exc.reason), exc.reason)
        else:
            response = json_response({"error": exc.reason}, exc.status)
        response.headers.update(headers)
        await refuse_body(request, response)
        return response


def _code(status: int) -> str | None:
    return {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(status)


def body_policy(refused: Callable[[str, str], None]) -> Any:
    """Identity-encoded bodies only (api/requests.py): a compressed one is refused before it is
    read, and the refusal counted (`refused(reason, line)`)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding in IDENTITY:
            return await handler(request)
        refused(
            "compressed",
            f"request {request.method} {shown(request.path)} from {request.remote or '?'} refused: "
            f"Content-Encoding {shown(encoding)!r}",
        )
        message = f"Content-Encoding {shown(encoding)!r} is not accepted: send the request body uncompressed."
        if openai_path(request.path):
            response = openai_error(415, message, "Content-Encoding", "unsupported_content_encoding")
        elif inference_path(request.path) or request.path == "/":
            response = mindie_error(415, message, "Unsupported Media Type")
        else:
            response = json_response({"error": message}, 415)
        await refuse_body(request, response)
        return response

    return middleware


async def refuse_body(request: web.Request, response: web.StreamResponse) -> None:
    """After a refusal: a small body is read and dropped (the client then reads the reply, not a
    reset); anything larger or of unknown length is not read, and the connection is closed."""
    length = request.content_length
    if request.body_exists and length is not None and length <= DRAIN_LIMIT:
        with contextlib.suppress(Exception):
            await request.content.readexactly(length)
        return
    if request.body_exists:
        response.force_close()


def index(routes: dict[str, str]) -> web.Response:
    """GET /: what this port serves."""
    return json_response({"service": "supervisor_pd", "routes": routes})
