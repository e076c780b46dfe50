"""The Python floor of the benchmark: a bare aiohttp pass-through hop.

It forwards ``POST /v1/chat/completions`` to an upstream base URL through one pooled
``ClientSession`` and does nothing else: no parsing, no checks. JSON answers are read
whole and relayed; SSE answers are relayed chunk by chunk as they arrive. Casemate's
per-request CPU is compared against this hop on the same machine.

``python -m bench.bare_hop --port 9912 --upstream http://127.0.0.1:9911``
"""
from __future__ import annotations

import argparse
import asyncio

import aiohttp
from aiohttp import web

__all__ = ["create_app", "main"]

_FORWARDED_HEADERS = ("Authorization", "Content-Type", "Accept", "X-Request-ID")
_SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("bare_hop_session", aiohttp.ClientSession)


def create_app(upstream: str) -> web.Application:
    """An app forwarding ``/v1/chat/completions`` to ``upstream`` (a base URL such as ``http://127.0.0.1:9911``)."""
    target = upstream.rstrip("/") + "/v1/chat/completions"

    async def open_session(app: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        app[_SESSION] = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                              timeout=aiohttp.ClientTimeout(total=300, sock_connect=5))

    async def close_session(app: web.Application) -> None:
        await app[_SESSION].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {name: value for name in _FORWARDED_HEADERS if (value := request.headers.get(name)) is not None}
        async with request.app[_SESSION].post(target, data=body, headers=headers) as upstream_response:
            content_type = upstream_response.headers.get("Content-Type", "application/json")
            if not content_type.startswith("text/event-stream"):
                payload = await upstream_response.read()
                return web.Response(status=upstream_response.status, body=payload,
                                    headers={"Content-Type": content_type})
            response = web.StreamResponse(status=upstream_response.status,
                                          headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
            await response.prepare(request)
            async for chunk in upstream_response.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    app.router.add_post("/v1/chat/completions", forward)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_hop", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9912)
    parser.add_argument("--upstream", default="http://127.0.0.1:9911", help="upstream base URL (without /v1)")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(create_app(args.upstream), host=args.host, port=args.port, access_log=None, print=None,
                loop=loop)


if __name__ == "__main__":
    main()
