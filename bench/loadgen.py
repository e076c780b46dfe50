"""Closed-loop HTTP load generator for chat completions, JSON and SSE.

N concurrent workers share one aiohttp client session (one connection each) and
issue requests back to back until a fixed request count is reached or the time bound
passes (requests already in flight then finish, bounded by the per-request timeout).
The request body is encoded once; when it contains :data:`NONCE` each request gets a
unique counter in its place (two byte concatenations), so response caches miss the
way they do on real, distinct prompts.

Latency is measured from sending the request to reading the whole body. For streams,
time to first token is the time to the first received chunk that carries non-empty
content (``"content":"x`` in OpenAI chunks, ``"text":"x`` in Anthropic ones).

``python -m bench.loadgen --url http://127.0.0.1:9911/v1/chat/completions --key sk-x -c 16 -n 2000``
"""
from __future__ import annotations

import argparse
import asyncio
import math
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
import orjson

__all__ = ["NONCE", "LoadResult", "LoadSpec", "chat_body", "main", "percentile", "run", "run_load"]

NONCE = b"@@nonce@@"
_FIRST_TOKEN_RE = re.compile(rb'"(?:content|text)":\s*"[^"]')
_SERVER_TIMING = re.compile(r"\bdur=([0-9.]+)")
_PROSE = (
    "We are planning the spring schedule for a community vegetable garden with twelve raised beds. "
    "The beds get full sun in the morning and partial shade after three in the afternoon. Last year the "
    "tomatoes did well but the lettuce bolted early, and the carrots stayed small because the soil was "
    "too heavy. We would like a rotation that keeps legumes, leafy greens, roots and fruiting plants "
    "apart from where they grew last season, adds compost in March, and staggers sowing so that the "
    "harvest is spread over the summer instead of arriving all at once. Volunteers can water on weekday "
    "evenings and on Saturday mornings. "
)


def chat_body(size: int = 1024, *, model: str = "gpt-4o-mini", stream: bool = False,
              include_usage: bool = True, nonce: bool = True) -> bytes:
    """An OpenAI chat request of about ``size`` bytes of benign prose (system + user message).

    With ``nonce`` the user message carries :data:`NONCE`, which :func:`run_load` replaces
    by a per-request counter.
    """
    system = "You are a helpful assistant for a gardening club. Answer briefly and practically."
    opener = f"Request {NONCE.decode()}. " if nonce else ""
    body: dict[str, Any] = {"model": model, "messages": [
        {"role": "system", "content": system}, {"role": "user", "content": opener}],
        "max_tokens": 256, "temperature": 0.2}
    if stream:
        body["stream"] = True
        if include_usage:
            body["stream_options"] = {"include_usage": True}
    missing = size - len(orjson.dumps(body))
    if missing > 0:
        repeats = _PROSE * (missing // len(_PROSE) + 1)
        body["messages"][1]["content"] = opener + repeats[:missing].rstrip()
    return orjson.dumps(body)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100] of an ascending sequence; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = math.ceil(q / 100 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


@dataclass(frozen=True, slots=True)
class LoadSpec:
    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    concurrency: int = 16
    requests: int = 2000
    duration_s: float = 30.0
    stream: bool = False
    timeout_s: float = 30.0
    server_timing: bool = False        # also collect the answers' `Server-Timing: app;dur=<ms>`


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Outcome of one load run; latencies in milliseconds over the successful requests."""

    requests: int                      # completed with HTTP 200 (and, for streams, an intact body)
    errors: int                        # any other status or a transport error
    statuses: dict[str, int]           # "200", "429", "ClientPayloadError", ...
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    server_p50_ms: float | None = None  # the server's own time, from Server-Timing (when asked for)
    server_p99_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ms(value: float) -> float:
    return round(value * 1000, 3)


async def run_load(spec: LoadSpec) -> LoadResult:
    """Drive ``spec`` to completion (count or time bound) and summarise it."""
    head, marker, tail = spec.body.partition(NONCE)
    unique = bool(marker)
    headers = {"Content-Type": "application/json", **spec.headers}
    if spec.stream:
        headers.setdefault("Accept", "text/event-stream")
    latencies: list[float] = []
    ttfts: list[float] = []
    server_ms: list[float] = []
    statuses: Counter[str] = Counter()
    issued = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + spec.duration_s
    connector = aiohttp.TCPConnector(limit=spec.concurrency, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
    perf = time.perf_counter
    first_token = _FIRST_TOKEN_RE.search

    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                     skip_auto_headers=("User-Agent",)) as session:
        post = session.post

        async def worker() -> None:
            nonlocal issued
            while issued < spec.requests and loop.time() < deadline:
                issued += 1
                data = head + b"%d" % issued + tail if unique else spec.body
                started = perf()
                try:
                    async with post(spec.url, data=data, headers=headers) as response:
                        if spec.stream and response.status == 200:
                            first = 0.0
                            async for chunk in response.content.iter_any():
                                if not first and first_token(chunk):
                                    first = perf()
                            if first:
                                ttfts.append(first - started)
                        else:
                            await response.read()
                        status = response.status
                        if spec.server_timing and (timing := _SERVER_TIMING.search(
                                response.headers.get("Server-Timing", ""))) is not None:
                            server_ms.append(float(timing.group(1)))
                except (TimeoutError, aiohttp.ClientError) as exc:
                    statuses[type(exc).__name__] += 1
                    continue
                statuses[str(status)] += 1
                if status == 200:
                    latencies.append(perf() - started)

        began = perf()
        await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
        elapsed = perf() - began

    latencies.sort()
    ttfts.sort()
    server_ms.sort()
    ok = len(latencies)
    return LoadResult(
        requests=ok, errors=sum(statuses.values()) - ok, statuses=dict(statuses),
        duration_s=round(elapsed, 4), rps=round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        p50_ms=_ms(percentile(latencies, 50)), p90_ms=_ms(percentile(latencies, 90)),
        p99_ms=_ms(percentile(latencies, 99)),
        mean_ms=_ms(sum(latencies) / ok) if ok else math.nan, max_ms=_ms(latencies[-1]) if ok else math.nan,
        ttft_p50_ms=_ms(percentile(ttfts, 50)) if spec.stream else None,
        ttft_p99_ms=_ms(percentile(ttfts, 99)) if spec.stream else None,
        server_p50_ms=round(percentile(server_ms, 50), 3) if server_ms else None,
        server_p99_ms=round(percentile(server_ms, 99), 3) if server_ms else None)


def run(spec: LoadSpec) -> LoadResult:
    """:func:`run_load` on a fresh (uvloop when available) event loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run_load(spec))
    return uvloop.run(run_load(spec))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="full URL, e.g. http://127.0.0.1:9911/v1/chat/completions")
    parser.add_argument("--key", default="sk-mock", help="sent as 'Authorization: Bearer KEY'")
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument("-d", "--duration", type=float, default=30.0, help="time bound in seconds")
    parser.add_argument("--size", type=int, default=1024, help="request body bytes")
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args(argv)
    spec = LoadSpec(url=args.url, body=chat_body(args.size, model=args.model, stream=args.stream),
                    headers={"Authorization": f"Bearer {args.key}"}, concurrency=args.concurrency,
                    requests=args.requests, duration_s=args.duration, stream=args.stream)
    print(orjson.dumps(run(spec).to_dict(), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
