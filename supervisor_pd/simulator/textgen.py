"""Deterministic text and the response shapes of each inference API MindIE serves.

The same prompt always yields the same tokens. Token i of a request is a word picked by a hash
of (prompt, i), so prefill and decode, in different processes, agree on the text without
sharing state.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

# The generation routes a Server serves and the Coordinator relays (MindIE-LLM http_handler.cpp).
GENERATION_PATHS = (
    "/v1/chat/completions",
    "/v1/completions",
    "/infer",
    "/infer_token",
    "/",
    "/generate",
    "/generate_stream",
)

_WORDS = [
    "the",
    "model",
    "answers",
    "every",
    "question",
    "with",
    "calm",
    "and",
    "careful",
    "words",
    "while",
    "prefill",
    "hands",
    "the",
    "cache",
    "to",
    "decode",
    "which",
    "streams",
    "tokens",
    "one",
    "by",
    "one",
    "across",
    "the",
    "ascend",
    "cards",
    "of",
    "this",
    "atlas",
    "server",
    "until",
    "the",
    "reply",
    "is",
    "complete",
    "and",
    "the",
    "coordinator",
    "closes",
    "the",
    "stream",
    "for",
    "the",
    "client",
    "who",
    "asked",
]


class Api(StrEnum):
    CHAT = "openai-chat"
    COMPLETIONS = "openai-completions"
    INFER = "mindie-infer"
    INFER_TOKEN = "mindie-infer-token"  # noqa: S105
    TGI = "tgi"
    VLLM = "vllm"
    TRITON_GENERATE = "triton-generate"
    TRITON_INFER = "triton-infer"


class InvalidRequest(ValueError):
    """The body does not fit the API (the Server answers 422 Input Validation Error)."""


@dataclass(frozen=True)
class Generation:
    """What a Server needs to produce a reply: the API, the prompt and the limits."""

    api: str
    model: str
    prompt: str
    prompt_tokens: int
    max_tokens: int
    stream: bool
    include_usage: bool
    request_id: str
    created: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Generation:
        return cls(**data)

    def token(self, index: int) -> str:
        word = _WORDS[zlib.crc32(f"{self.prompt}\x00{index}".encode()) % len(_WORDS)]
        return word + " "

    def text(self, start: int, stop: int) -> str:
        return "".join(self.token(i) for i in range(start, stop))


def count_tokens(text: str) -> int:
    return max(1, len(text.split()))


def tokenize(text: str) -> list[int]:
    return [zlib.crc32(word.encode()) % 32000 for word in text.split()]


def _int(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"{name} must be a positive integer")
    return value


def _check_model(body: dict[str, Any], served: str, chat: bool) -> None:
    """The Server's `model` check on the OpenAI paths (MindIE-LLM
    src/server/endpoint/single_req_infer_interface/single_req_openai_infer_interface.cpp:53-75 for
    chat, single_req_vllm_openai_completions_infer_interface.cpp:170-190 for completions; 422 from
    single_req_infer_interface_base.cpp:373-380). MindIE also refuses a request without `model`;
    the simulator lets one through (supervisor_pd's port fills it in; see the README)."""
    if body.get("model") is None:
        return
    value = body["model"]
    if not isinstance(value, str):
        raise InvalidRequest("Request param model must be string")
    if not value:
        raise InvalidRequest("Request param model must be not empty")
    if value != served:
        if chat:
            raise InvalidRequest(f"Got model {value}, but not found in server")
        raise InvalidRequest("Not found given model, please check modelName in config file.")


def parse(path: str, body: Any, model: str, default_tokens: int, limit: int, request_id: str) -> Generation:
    """Read a generation request of any supported API. Raises InvalidRequest."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    stream = bool(body.get("stream", False))
    include_usage = False
    params = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    if path in ("/v1/chat/completions", "/v1/completions"):
        _check_model(body, model, chat=path == "/v1/chat/completions")
    if path == "/v1/chat/completions":
        api = Api.CHAT
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("messages must be a non-empty list")
        prompt = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        tokens = _int(body.get("max_tokens", body.get("max_completion_tokens")), "max_tokens", default_tokens)
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    elif path == "/v1/completions":
        api = Api.COMPLETIONS
        raw = body.get("prompt")
        if isinstance(raw, list):
            raw = " ".join(map(str, raw))
        if not isinstance(raw, str) or not raw:
            raise InvalidRequest("prompt must be a non-empty string")
        prompt = raw
        tokens = _int(body.get("max_tokens"), "max_tokens", default_tokens)
    elif path == "/infer_token":
        api = Api.INFER_TOKEN
        ids = body.get("input_id")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
            raise InvalidRequest("input_id must be a non-empty list of token ids")
        prompt = " ".join(map(str, ids))
        tokens = _int(params.get("max_new_tokens"), "parameters.max_new_tokens", default_tokens)
    elif path in ("/infer", "/", "/generate", "/generate_stream"):
        if path == "/generate" and "prompt" in body and "inputs" not in body:
            api = Api.VLLM
            prompt = body.get("prompt")
            tokens = _int(body.get("max_tokens"), "max_tokens", default_tokens)
        else:
            api = Api.INFER if path == "/infer" else Api.TGI
            prompt = body.get("inputs")
            tokens = _int(params.get("max_new_tokens"), "parameters.max_new_tokens", default_tokens)
            stream = stream or path == "/generate_stream"
        if not isinstance(prompt, str) or not prompt:
            raise InvalidRequest("inputs must be a non-empty string")
    elif path.startswith("/v2/models/") and path.endswith(("/generate", "/generate_stream")):
        api = Api.TRITON_GENERATE
        prompt = body.get("text_input")
        if not isinstance(prompt, str) or not prompt:
            raise InvalidRequest("text_input must be a non-empty string")
        tokens = _int(params.get("max_new_tokens", body.get("max_tokens")), "max_new_tokens", default_tokens)
        stream = path.endswith("_stream")
    elif path.startswith("/v2/models/") and path.endswith("/infer"):
        api = Api.TRITON_INFER
        try:
            prompt = str(body["inputs"][0]["data"][0])
        except (KeyError, IndexError, TypeError):
            raise InvalidRequest("inputs[0].data[0] must hold the prompt") from None
        tokens = _int(params.get("max_new_tokens"), "parameters.max_new_tokens", default_tokens)
        stream = False
    else:
        raise InvalidRequest(f"{path} is not a generation endpoint")
    return Generation(
        api=api.value,
        model=str(body.get("model") or model),
        prompt=prompt,
        prompt_tokens=count_tokens(prompt),
        max_tokens=min(tokens, limit),
        stream=stream,
        include_usage=include_usage,
        request_id=request_id,
        created=int(time.time()),
    )


def _sse(data: Any) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def _usage(gen: Generation, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": gen.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": gen.prompt_tokens + completion,
    }


def stream_piece(gen: Generation, index: int) -> bytes:
    """The stream chunk that carries token `index` (not the last one)."""
    token = gen.token(index)
    api = Api(gen.api)
    if api is Api.CHAT:
        delta: dict[str, Any] = {"content": token}
        if index == 0:
            delta = {"role": "assistant", "content": token}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        return _sse(_chat_chunk(gen, [choice]))
    if api is Api.COMPLETIONS:
        choice = {"index": 0, "text": token, "logprobs": None, "finish_reason": None}
        return _sse(
            {
                "id": f"cmpl-{gen.request_id}",
                "object": "text_completion",
                "created": gen.created,
                "model": gen.model,
                "choices": [choice],
            }
        )
    if api is Api.VLLM:
        return json.dumps({"text": [gen.prompt + gen.text(0, index + 1)]}).encode() + b"\0"
    if api is Api.TRITON_GENERATE:
        return _sse({"model_name": gen.model, "model_version": "1", "text_output": token})
    return _sse(
        {
            "token": {"id": zlib.crc32(token.encode()) % 32000, "text": token, "logprob": None, "special": False},
            "generated_text": None,
            "details": None,
        }
    )


def _chat_chunk(gen: Generation, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{gen.request_id}",
        "object": "chat.completion.chunk",
        "created": gen.created,
        "model": gen.model,
        "choices": choices,
    }


def stream_end(gen: Generation) -> bytes:
    """The last token's chunk and whatever closes the stream for this API."""
    last = gen.max_tokens - 1
    api = Api(gen.api)
    if api is Api.CHAT:
        token = gen.token(last)
        delta = {"role": "assistant", "content": token} if last == 0 else {"content": token}
        out = _sse(_chat_chunk(gen, [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": "length"}]))
        if gen.include_usage:
            out += _sse({**_chat_chunk(gen, []), "usage": _usage(gen, gen.max_tokens)})
        return out + b"data: [DONE]\n\n"
    if api is Api.COMPLETIONS:
        choice = {"index": 0, "text": gen.token(last), "logprobs": None, "finish_reason": "length"}
        return (
            _sse(
                {
                    "id": f"cmpl-{gen.request_id}",
                    "object": "text_completion",
                    "created": gen.created,
                    "model": gen.model,
                    "choices": [choice],
                }
            )
            + b"data: [DONE]\n\n"
        )
    if api is Api.VLLM:
        return json.dumps({"text": [gen.prompt + gen.text(0, gen.max_tokens)]}).encode() + b"\0"
    if api is Api.TRITON_GENERATE:
        return _sse({"model_name": gen.model, "model_version": "1", "text_output": gen.token(last)})
    token = gen.token(last)
    details = {"finish_reason": "length", "generated_tokens": gen.max_tokens}
    return _sse(
        {
            "token": {"id": zlib.crc32(token.encode()) % 32000, "text": token, "logprob": None, "special": False},
            "generated_text": gen.text(0, gen.max_tokens),
            "details": details,
        }
    )


def full_body(gen: Generation) -> bytes:
    """The whole non-streaming reply."""
    text = gen.text(0, gen.max_tokens)
    api = Api(gen.api)
    if api is Api.CHAT:
        data: Any = {
            "id": f"chatcmpl-{gen.request_id}",
            "object": "chat.completion",
            "created": gen.created,
            "model": gen.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": "length",
                }
            ],
            "usage": _usage(gen, gen.max_tokens),
        }
    elif api is Api.COMPLETIONS:
        data = {
            "id": f"cmpl-{gen.request_id}",
            "object": "text_completion",
            "created": gen.created,
            "model": gen.model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}],
            "usage": _usage(gen, gen.max_tokens),
        }
    elif api is Api.VLLM:
        data = {"text": [gen.prompt + text]}
    elif api is Api.TRITON_GENERATE:
        data = {"model_name": gen.model, "model_version": "1", "text_output": text}
    elif api is Api.TRITON_INFER:
        data = {
            "id": gen.request_id,
            "model_name": gen.model,
            "model_version": "1",
            "outputs": [{"name": "OUTPUT0", "datatype": "BYTES", "shape": [1], "data": [text]}],
        }
    elif api is Api.INFER_TOKEN:
        data = [
            {
                "generated_text": text,
                "output_ids": tokenize(text),
                "details": {"finish_reason": "length", "generated_tokens": gen.max_tokens},
            }
        ]
    else:
        data = {"generated_text": text, "details": {"finish_reason": "length", "generated_tokens": gen.max_tokens}}
    return json.dumps(data, separators=(",", ":")).encode()


def content_type(gen: Generation) -> str:
    if not gen.stream:
        return "application/json"
    return "text/plain" if Api(gen.api) is Api.VLLM else "text/event-stream"
