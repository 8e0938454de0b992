"""An upstream as fast as a Python server gets, to find the proxy's own ceiling.

    python bench/firehose.py PORT [--chunks 128]

POST with `"stream": true` answers 128 OpenAI-style `data:` chunks (~60 bytes each, one write
per chunk, as a Server writes one per token) and `data: [DONE]`; otherwise a small JSON reply.
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web

CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"tok "}}]}\n\n'
SMALL = b'{"id":"x","object":"chat.completion","choices":[{"message":{"content":"ok"}}]}'


def app(chunks: int) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read() or b"{}")
        if not body.get("stream"):
            return web.Response(body=SMALL, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        for _ in range(chunks):
            await response.write(CHUNK)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    application = web.Application()
    application.router.add_post("/v1/chat/completions", handle)
    return application


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--chunks", type=int, default=128)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(app(args.chunks), host="127.0.0.1", port=args.port, access_log=None, print=None)
