"""Anomaly baselines shared through Redis: workers converge, restarts recover, Redis outages are survived."""
from __future__ import annotations

import asyncio
import logging
import math
import random
import statistics
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from pipeline.checks.anomaly import _MAX_TOOLS, Baseline, Baselines, merge_moments
from pipeline.checks.baseline_sync import BaselineSync
from tests.conftest import free_port

T, A = "tenant-1", "agent:crawler"          # a colon in the agent id, as agents may send
KEY = (T, A)
TOOLS = ["http_get", "http_get", "http_get", "read_file", "search", "send_email"]


def _calls(n: int, seed: int) -> list[tuple[str, int, int, bool]]:
    """Realistic tool calls: argument sizes in bytes (log-normal, 50 B to ~200 kB), work hours, some refusals."""
    rnd = random.Random(seed)
    return [(rnd.choice(TOOLS), min(200_000, int(rnd.lognormvariate(6.5, 1.2)) + 50), rnd.choice(range(8, 19)),
             rnd.random() < 0.08) for _ in range(n)]


def _observe(b: Baselines, calls: list[tuple[str, int, int, bool]]) -> None:
    for tool, size, hour, refused in calls:
        b.observe(T, A, tool, size, hour, refused)


def _var(b: Baseline) -> float:
    return b.size_m2 / (b.n - 1)


def _assert_same_baseline(got: Baseline, want: Baseline, *, refusal_average: bool = True) -> None:
    assert (got.n, got.tools, got.hours, got.refused) == (want.n, want.tools, want.hours, want.refused)
    assert math.isclose(got.size_mean, want.size_mean, rel_tol=1e-9)
    assert math.isclose(_var(got), _var(want), rel_tol=1e-9)
    if refusal_average:
        assert math.isclose(got.recent_refused, want.recent_refused, rel_tol=1e-9, abs_tol=1e-12)


def _probe_scores(b: Baselines) -> list[tuple[float, dict[str, float]]]:
    """Scores of a few calls, among them sizes 4 and 5 standard deviations out (graded size component)."""
    base = b._b.get(KEY)
    std = math.sqrt(_var(base)) if base is not None and base.n > 1 else 0.0
    mean = base.size_mean if base is not None else 0.0
    probes = [("http_get", 900, 10), ("drop_table", 150_000, 3), ("search", 40, 12), ("send_email", 5000, 23),
              ("http_get", int(mean + 4 * std), 10), ("read_file", int(mean + 5 * std), 20)]
    return [(s.score, s.components) for s in (b.score(T, A, tool, size, hour, 30) for tool, size, hour in probes)]


def _sync(b: Baselines, client: Any, prefix: str) -> BaselineSync:
    return BaselineSync(b, client, prefix=prefix, interval_s=60.0)


def _two_workers(client: Any, prefix: str, calls: list[tuple[str, int, int, bool]]
                 ) -> tuple[Baselines, Baselines, Baselines, BaselineSync, BaselineSync]:
    """A single worker that observed all `calls`, and two empty workers sharing through Redis."""
    single, w1, w2 = Baselines(), Baselines(), Baselines()
    _observe(single, calls)
    return single, w1, w2, _sync(w1, client, prefix), _sync(w2, client, prefix)


def test_chan_merge_matches_numpy_and_exact_statistics_on_random_splits() -> None:
    rnd = random.Random(7)
    datasets = [[rnd.randint(50, 200_000) for _ in range(2000)],
                [1_000_000 + rnd.randint(0, 10) for _ in range(2000)],     # large, nearly constant sizes
                [rnd.randint(0, 3) for _ in range(500)]]
    for data in datasets:
        for _ in range(20):
            cut = rnd.randint(1, len(data) - 1)
            parts = []
            for chunk in (data[:cut], data[cut:]):
                b = Baseline()
                for x in chunk:
                    b.update("t", x, 0, False)
                parts.append(b)
            n, mean, m2 = merge_moments(parts[0].n, parts[0].size_mean, parts[0].size_m2,
                                        parts[1].n, parts[1].size_mean, parts[1].size_m2)
            assert n == len(data)
            assert math.isclose(mean, statistics.fmean(data), rel_tol=1e-12)
            assert math.isclose(mean, float(np.mean(data)), rel_tol=1e-12)
            assert math.isclose(m2 / (n - 1), statistics.variance(data), rel_tol=1e-9)   # exact rational arithmetic
            assert math.isclose(m2 / (n - 1), float(np.var(data, ddof=1)), rel_tol=1e-9)
    assert merge_moments(0, 0.0, 0.0, 3, 2.0, 8.0) == (3, 2.0, 8.0)
    assert merge_moments(3, 2.0, 8.0, 0, 0.0, 0.0) == (3, 2.0, 8.0)


def test_merging_baselines_equals_observing_the_calls_in_order() -> None:
    calls = _calls(3000, seed=3)
    whole, first, second = Baseline(), Baseline(), Baseline()
    for i, (tool, size, hour, refused) in enumerate(calls):
        whole.update(tool, size, hour, refused)
        (first if i < 1700 else second).update(tool, size, hour, refused)
    _assert_same_baseline(first.merge(second), whole)


def test_without_sharing_observe_records_no_deltas() -> None:
    b = Baselines()
    _observe(b, _calls(50, seed=1))
    assert b.drain() == {} and b.samples(T, A) == 50


async def test_two_workers_each_seeing_half_converge_to_the_single_worker_baseline(redis_client) -> None:
    client, prefix = redis_client
    calls = _calls(4000, seed=11)
    single, w1, w2, s1, s2 = _two_workers(client, prefix, calls)
    _observe(w1, calls[0::2])
    _observe(w2, calls[1::2])
    assert w1.samples(T, A) == 2000 and _probe_scores(w1) != _probe_scores(w2)      # before sharing
    assert await s1.flush() and await s2.flush() and await s1.flush()      # w1 pulls w2's half on its next flush

    want = single._b[KEY]
    for w in (w1, w2):
        _assert_same_baseline(w._b[KEY], want, refusal_average=False)     # the average depends on call order
    assert w1._b[KEY] == w2._b[KEY]
    assert _probe_scores(w1) == _probe_scores(w2)
    assert any(0.0 < comps["size"] < 1.0 for _, comps in _probe_scores(w1))
    stored = await client.hgetall(f"{prefix}{T}:{A}")
    assert int(stored[b"n"]) == 4000 and 0 < await client.ttl(f"{prefix}{T}:{A}") <= 30 * 86400


async def test_refusal_average_is_the_one_of_the_calls_in_push_order(redis_client) -> None:
    client, prefix = redis_client
    calls = _calls(600, seed=5)
    single, w1, w2, s1, s2 = _two_workers(client, prefix, calls)
    _observe(w1, calls[:250])
    assert await s1.flush()
    _observe(w2, calls[250:])
    assert await s2.flush() and await s1.flush()
    for w in (w1, w2):
        _assert_same_baseline(w._b[KEY], single._b[KEY])


async def test_a_restarted_worker_recovers_the_shared_baseline(redis_client) -> None:
    client, prefix = redis_client
    calls = _calls(1000, seed=21)
    before = Baselines()
    sync = _sync(before, client, prefix)
    _observe(before, calls)
    assert await sync.flush()

    restarted = Baselines()                                # a new process: empty memory
    sync = _sync(restarted, client, prefix)
    assert restarted.score(T, A, "http_get", 900, 10, 30).score == 0.0      # no baseline until the first sync
    restarted.observe(T, A, "search", 700, 9, False)
    before.observe(T, A, "search", 700, 9, False)
    assert await sync.flush()
    _assert_same_baseline(restarted._b[KEY], before._b[KEY])
    for (got, got_c), (want, want_c) in zip(_probe_scores(restarted), _probe_scores(before), strict=True):
        assert got == pytest.approx(want, abs=1e-4) and got_c == pytest.approx(want_c, rel=1e-9, abs=1e-12)


async def test_baselines_observed_before_sharing_started_are_shared_on_the_first_flush(redis_client) -> None:
    client, prefix = redis_client
    calls = _calls(200, seed=9)
    early, other = Baselines(), Baselines()
    _observe(early, calls)
    sync, other_sync = _sync(early, client, prefix), _sync(other, client, prefix)
    assert await sync.flush()
    other.observe(T, A, *calls[0])
    assert await other_sync.flush()
    assert int(await client.hget(f"{prefix}{T}:{A}", "n")) == 201 and other.samples(T, A) == 201
    assert early.samples(T, A) == 200


async def test_calls_observed_while_a_flush_is_in_flight_are_kept_and_pushed_next(redis_client) -> None:
    client, prefix = redis_client
    calls = _calls(500, seed=8)
    single, worker = Baselines(), Baselines()
    sync = _sync(worker, client, prefix)
    _observe(single, calls)
    _observe(worker, calls[:300])
    flushing = asyncio.create_task(sync.flush())
    await asyncio.sleep(0)                                # the flush has drained and awaits Redis
    _observe(worker, calls[300:])
    assert await flushing
    _assert_same_baseline(worker._b[KEY], single._b[KEY])
    assert int(await client.hget(f"{prefix}{T}:{A}", "n")) == 300
    assert await sync.flush()
    assert int(await client.hget(f"{prefix}{T}:{A}", "n")) == 500
    _assert_same_baseline(worker._b[KEY], single._b[KEY])


async def test_run_flushes_once_more_when_cancelled_at_shutdown(redis_client) -> None:
    client, prefix = redis_client
    worker = Baselines()
    task = asyncio.create_task(_sync(worker, client, prefix).run())
    await asyncio.sleep(0)
    _observe(worker, _calls(40, seed=2))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert int(await client.hget(f"{prefix}{T}:{A}", "n")) == 40


async def test_shutdown_in_the_middle_of_a_flush_neither_loses_nor_double_counts_calls(redis_client) -> None:
    client, prefix = redis_client
    calls = _calls(60, seed=6)
    for attempt in range(15):
        worker = Baselines()
        task = asyncio.create_task(BaselineSync(worker, client, prefix=f"{prefix}{attempt}:", interval_s=0.0005).run())
        for i, (tool, size, hour, refused) in enumerate(calls):
            worker.observe(T, A, tool, size, hour, refused)
            if i % 3 == 0:
                await asyncio.sleep(0.0003 * (attempt % 4))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert int(await client.hget(f"{prefix}{attempt}:{T}:{A}", "n")) == len(calls)


async def test_tool_fields_stay_bounded_in_redis_across_workers(redis_client) -> None:
    client, prefix = redis_client
    _, w1, w2, s1, s2 = _two_workers(client, prefix, [])
    for i in range(700):
        w1.observe(T, A, f"a{i}", 100, 1, False)
        w2.observe(T, A, f"b{i}", 100, 1, False)
    assert await s1.flush() and await s2.flush() and await s1.flush()
    stored = await client.hgetall(f"{prefix}{T}:{A}")
    assert sum(k.startswith(b"t:") for k in stored) == _MAX_TOOLS == int(stored[b"tc"])
    assert w1._b[KEY].n == 1400 and len(w1._b[KEY].tools) == _MAX_TOOLS


class _Forwarder:
    """A TCP relay to the real Redis that can be taken down and brought back on the same port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:
            w.close()
        await self._server.wait_closed()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 6379)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_redis_outage_keeps_scoring_from_memory_and_sharing_resumes(redis_client, caplog) -> None:
    client, prefix = redis_client
    relay = _Forwarder(free_port())
    flaky = aioredis.from_url(f"redis://127.0.0.1:{relay.port}/15", socket_connect_timeout=0.5, socket_timeout=1)
    calls = _calls(300, seed=4)
    single, worker = Baselines(), Baselines()
    sync = BaselineSync(worker, flaky, prefix=prefix, interval_s=60.0)
    _observe(single, calls)
    caplog.set_level(logging.INFO, logger="casemate.checks.baselines")
    try:
        _observe(worker, calls[:100])
        assert await sync.flush() is False                # nothing listens on the port: no exception
        _observe(worker, calls[100:200])
        assert await sync.flush() is False and sync.degraded
        assert [r.levelname for r in caplog.records] == ["WARNING"]      # once per outage
        assert worker.samples(T, A) == 200 and _probe_scores(worker)     # scoring continues from memory

        await relay.up()
        assert await sync.flush() is True and not sync.degraded
        assert int(await client.hget(f"{prefix}{T}:{A}", "n")) == 200    # every delta delivered, once
        await relay.down()
        _observe(worker, calls[200:])
        assert await sync.flush() is False
        await relay.up()
        assert await sync.flush() is True
        assert [r.levelname for r in caplog.records] == ["WARNING", "INFO", "WARNING", "INFO"]
        assert int(await client.hget(f"{prefix}{T}:{A}", "n")) == 300
        _assert_same_baseline(worker._b[KEY], single._b[KEY])
    finally:
        await flaky.aclose()
        if relay._server is not None and relay._server.is_serving():
            await relay.down()
