"""Shares per-agent anomaly baselines across workers and hosts through Redis, off the hot path.

`Baselines.score` and `Baselines.observe` stay synchronous and in memory. Every `interval_s`
(and once more when the task is cancelled at shutdown) `flush` drains the deltas the worker
observed since the last flush and, in one Lua script call per chunk of agents, atomically adds
them to one hash per agent (`{prefix}{tenant}:{agent}`, TTL refreshed on every write; tenant ids
are UUIDs, so keys cannot clash) and reads back the merged totals, which `Baselines.apply`
installs (totals + calls observed meanwhile).
Each flush also reads back a rotating slice of the other agents the worker holds, so an agent
this worker has not seen for a while is refreshed with the other workers' calls too; an agent
whose hash is gone (TTL expired) falls back to the calls observed since the last flush.

Hash fields: `n`, `refused`, `h0`..`h23`, `t:{tool}` are integer counts; `tc` counts the tool
fields (at most `_MAX_TOOLS`, as in memory); `mean` and `m2` (size mean and sum of squared
deviations) are combined in the script with the parallel formula of Chan et al., which does not
cancel catastrophically the way sum / sum-of-squares does for large, nearly constant sizes, and
cannot overflow; `rr` (the exponential refusal average) becomes `rr * (1 - alpha) ** n_delta +
rr_delta`, as if the delta's calls came right after the calls already counted. Floats are stored
with 17 significant digits, so they read back exactly; each hash is returned as one JSON string.

Redis down: scoring continues from memory, undelivered deltas are put back and merged with newer
ones (at most one per agent held, so memory stays bounded), one warning is logged per outage and
sharing resumes on the first flush that succeeds. A flush waits as long as the client's socket
timeouts allow (the runtime's client: 2 s); it never cancels a command in flight, which can wedge a
redis-py connection. A script whose reply is lost after Redis ran it (a socket timeout at the wrong
moment) is sent again: the only case where calls can count twice.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from pipeline.checks.anomaly import _EWMA_ALPHA, _MAX_TOOLS, AgentKey, Baseline, Baselines

log = logging.getLogger("casemate.checks.baselines")

_SYNC_LUA = """
local ttl = tonumber(ARGV[1])
local max_tools = tonumber(ARGV[2])
local keep = tonumber(ARGV[3])
local function f17(x) return string.format('%.17g', x) end
for i = 1, #ARGV - 3 do
  local k = KEYS[i]
  local d = cjson.decode(ARGV[3 + i])
  local cur = redis.call('HMGET', k, 'n', 'mean', 'm2', 'rr', 'tc')
  local na = tonumber(cur[1]) or 0
  local ma = tonumber(cur[2]) or 0
  local m2a = tonumber(cur[3]) or 0
  local rra = tonumber(cur[4]) or 0
  local tc = tonumber(cur[5]) or 0
  local nb = d.n
  local n = na + nb
  local mean, m2 = d.mean, d.m2
  if na > 0 then
    local delta = d.mean - ma
    mean = ma + delta * nb / n
    m2 = m2a + d.m2 + delta * delta * na * nb / n
  end
  for name, c in pairs(d.tools) do
    local f = 't:' .. name
    if redis.call('HINCRBY', k, f, c) == c then          -- a new tool field
      if tc < max_tools then tc = tc + 1 else redis.call('HDEL', k, f) end
    end
  end
  for h = 1, 24 do
    if d.hours[h] ~= 0 then redis.call('HINCRBY', k, 'h' .. (h - 1), d.hours[h]) end
  end
  if d.refused ~= 0 then redis.call('HINCRBY', k, 'refused', d.refused) end
  redis.call('HSET', k, 'n', string.format('%d', n), 'mean', f17(mean), 'm2', f17(m2),
             'rr', f17(rra * keep ^ nb + d.rr), 'tc', string.format('%d', tc))
  redis.call('EXPIRE', k, ttl)
end
local out = {}
for i = 1, #KEYS do out[i] = cjson.encode(redis.call('HGETALL', KEYS[i])) end
return out
"""


def _encode(d: Baseline) -> bytes:
    return orjson.dumps({"n": d.n, "mean": d.size_mean, "m2": d.size_m2, "refused": d.refused,
                         "rr": d.recent_refused, "hours": d.hours, "tools": d.tools})


_HOURS = [f"h{h}" for h in range(24)]


def _decode(reply: bytes | str) -> Baseline:
    """A baseline from an agent's hash, sent by the script as a JSON list of its fields and values.

    An absent hash (expired, or never written) reads as an empty baseline.
    """
    flat = orjson.loads(reply)
    if not flat:                   # cjson encodes the empty HGETALL reply as an empty object
        return Baseline()
    it = iter(flat)
    h: dict[str, str] = dict(zip(it, it))
    return Baseline(n=int(h.get("n", 0)), tools={k[2:]: int(v) for k, v in h.items() if k.startswith("t:")},
                    size_mean=float(h.get("mean", 0.0)), size_m2=float(h.get("m2", 0.0)),
                    hours=[int(h.get(name, 0)) for name in _HOURS], refused=int(h.get("refused", 0)),
                    recent_refused=float(h.get("rr", 0.0)))


class BaselineSync:
    """Pushes a worker's baseline deltas to Redis and pulls the merged totals (see the module docstring)."""

    def __init__(self, baselines: Baselines, redis: Any, *, interval_s: float = 1.0, prefix: str = "cm:bl:",
                 ttl_s: int = 30 * 86400, chunk: int = 100, refresh_per_flush: int = 500) -> None:
        self._bl = baselines
        self._script = redis.register_script(_SYNC_LUA)
        self._interval = interval_s
        self._prefix = prefix
        self._ttl = ttl_s
        self._chunk = chunk
        self._refresh_n = refresh_per_flush
        self._rotation: list[AgentKey] = []
        self._pos = 0
        self.degraded = False
        baselines.track_deltas()

    async def run(self) -> None:
        """Flush every `interval_s`; on cancellation (shutdown), flush once more, then re-raise.

        A flush in flight when the task is cancelled is let finish first (it is shielded), so its
        deltas are neither lost nor sent twice.
        """
        flushing: asyncio.Future[None] | None = None
        try:
            while True:
                await asyncio.sleep(self._interval)
                flushing = asyncio.ensure_future(self._flush_logged())
                await asyncio.shield(flushing)
        except asyncio.CancelledError:
            if flushing is not None and not flushing.done():
                await asyncio.wait([flushing])
            await self.flush()
            raise

    async def _flush_logged(self) -> None:
        try:
            await self.flush()
        except Exception:  # noqa: BLE001 - a bug here must not end sharing for the process
            log.exception("anomaly baseline flush failed")

    async def flush(self) -> bool:
        """Share the deltas now and refresh the agents involved; False when Redis could not be reached."""
        batch = self._bl.drain()
        work: list[tuple[AgentKey, Baseline | None]] = [*batch.items(), *self._refresh_slice(batch)]
        for start in range(0, len(work), self._chunk):
            part = work[start:start + self._chunk]
            keys = [f"{self._prefix}{tenant}:{agent}" for (tenant, agent), _ in part]
            args: list[Any] = [self._ttl, _MAX_TOOLS, repr(1.0 - _EWMA_ALPHA)]
            args += [_encode(d) for _, d in part if d is not None]
            try:
                replies = await self._script(keys=keys, args=args)
            except BaseException as exc:  # Redis down, or shutting down: keep the deltas for the next flush
                self._bl.restore({key: d for key, d in work[start:] if d is not None})
                if not isinstance(exc, Exception):
                    raise
                if not self.degraded:
                    self.degraded = True
                    log.warning("anomaly baselines not shared (Redis unavailable or failing: %s); scoring "
                                "from this worker's memory until it is back", exc.__class__.__name__)
                return False
            for (key, _), reply in zip(part, replies):
                self._bl.apply(key, _decode(reply))
        if work and self.degraded:
            self.degraded = False
            log.info("anomaly baselines shared again")
        return True

    def _refresh_slice(self, skip: dict[AgentKey, Baseline]) -> list[tuple[AgentKey, None]]:
        """The next `refresh_per_flush` agents held, in rotation, leaving out those being pushed."""
        chosen: dict[AgentKey, None] = {}
        renewed = False
        for _ in range(self._refresh_n):
            if self._pos >= len(self._rotation):
                if renewed:
                    break
                self._rotation, self._pos, renewed = self._bl.keys(), 0, True
                if not self._rotation:
                    break
            key = self._rotation[self._pos]
            self._pos += 1
            if key not in skip:
                chosen[key] = None
        return list(chosen.items())
