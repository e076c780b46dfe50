"""Shares per-agent anomaly baselines across workers and hosts through Redis, off the hot path.

`Baselines.score` and `Baselines.observe` stay synchronous and in memory. Every `interval_s`
(and once more when the task is cancelled at shutdown) `flush` drains the deltas the worker
observed since the last flush and, in one Lua script call per chunk of agents, atomically adds
them to one hash per agent (`{prefix}{tenant}:{agent}`, TTL refreshed on every write) and reads
back the merged totals, which `Baselines.apply` installs (totals + calls observed meanwhile).

Each flush also reads back a rotating slice of the other agents the worker holds, so an agent
this worker has not seen for a while is refreshed with the other workers' calls too.

Hash fields: `n`, `refused`, `h0`..`h23`, `t:{tool}` are integer sums (HINCRBY); `tc` counts the
tool fields (at most `_MAX_TOOLS`, as in memory); `mean` and `m2` (size mean and sum of squared
deviations) are combined in the script with the parallel formula of Chan et al., which does not
cancel catastrophically the way sum / sum-of-squares does for large, nearly constant sizes; `rr`
(the exponential refusal average) is applied as `rr * (1 - alpha) ** n_delta + rr_delta`. Floats
are stored with 17 significant digits, so they read back exactly.

Redis down: scoring continues from memory, undelivered deltas are put back and merged with newer
ones (at most one per agent held, so memory stays bounded), one warning is logged per outage and
sharing resumes on the first flush that succeeds. A script whose reply is lost after Redis ran it
(a timeout at the wrong moment) is sent again: the only case where calls can count twice.
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
    if redis.call('HEXISTS', k, f) == 1 then
      redis.call('HINCRBY', k, f, c)
    elseif tc < max_tools then
      redis.call('HINCRBY', k, f, c)
      tc = tc + 1
    end
  end
  for h = 1, 24 do
    if d.hours[h] ~= 0 then redis.call('HINCRBY', k, 'h' .. (h - 1), d.hours[h]) end
  end
  redis.call('HINCRBY', k, 'n', nb)
  redis.call('HINCRBY', k, 'refused', d.refused)
  redis.call('HSET', k, 'mean', f17(mean), 'm2', f17(m2), 'rr', f17(rra * keep ^ nb + d.rr), 'tc', tc)
  redis.call('EXPIRE', k, ttl)
end
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
return out
"""


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _encode(d: Baseline) -> bytes:
    return orjson.dumps({"n": d.n, "mean": d.size_mean, "m2": d.size_m2, "refused": d.refused,
                         "rr": d.recent_refused, "hours": d.hours, "tools": d.tools})


def _decode(flat: list[Any]) -> Baseline:
    """A baseline from the HGETALL reply of an agent's hash (empty reply: an empty baseline)."""
    b = Baseline()
    for i in range(0, len(flat), 2):
        name, value = _text(flat[i]), _text(flat[i + 1])
        if name.startswith("t:"):
            b.tools[name[2:]] = int(value)
        elif name.startswith("h"):
            b.hours[int(name[1:])] = int(value)
        elif name == "n":
            b.n = int(value)
        elif name == "refused":
            b.refused = int(value)
        elif name == "mean":
            b.size_mean = float(value)
        elif name == "m2":
            b.size_m2 = float(value)
        elif name == "rr":
            b.recent_refused = float(value)
    return b


class BaselineSync:
    """Pushes a worker's baseline deltas to Redis and pulls the merged totals (see the module docstring)."""

    def __init__(self, baselines: Baselines, redis: Any, *, interval_s: float = 1.0, prefix: str = "cm:bl:",
                 ttl_s: int = 30 * 86400, chunk: int = 100, refresh_per_flush: int = 500,
                 timeout_s: float = 5.0) -> None:
        self._bl = baselines
        self._script = redis.register_script(_SYNC_LUA)
        self._interval = interval_s
        self._prefix = prefix
        self._ttl = ttl_s
        self._chunk = chunk
        self._refresh_n = refresh_per_flush
        self._timeout = timeout_s
        self._rotation: list[AgentKey] = []
        self._pos = 0
        self.degraded = False
        baselines.track_deltas()

    async def run(self) -> None:
        """Flush every `interval_s`; on cancellation, flush once more (bounded by the timeout)."""
        try:
            while True:
                await asyncio.sleep(self._interval)
                await self.flush()
        except asyncio.CancelledError:
            await self.flush()
            raise

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
                replies = await asyncio.wait_for(self._script(keys=keys, args=args), self._timeout)
            except asyncio.CancelledError:
                self._bl.restore({key: d for key, d in work[start:] if d is not None})
                raise
            except Exception as exc:  # noqa: BLE001 - Redis down: keep the deltas, score from memory
                self._bl.restore({key: d for key, d in work[start:] if d is not None})
                if not self.degraded:
                    self.degraded = True
                    log.warning("anomaly baselines not shared (Redis unavailable: %s); scoring from this "
                                "worker's memory until it is back", exc.__class__.__name__)
                return False
            for (key, _), flat in zip(part, replies):
                self._bl.apply(key, _decode(flat))
        if self.degraded:
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
