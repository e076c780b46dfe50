"""Per-agent behavioural baselines, maintained incrementally, scoring each tool call in [0, 1].

A baseline counts which tools an agent calls, the size of their arguments (running mean and
variance, Welford), the hour of day, and how often its calls are refused (long-run rate and a
short exponential average). A call's score combines four components, each in [0, 1]:

    tool    the tool is rare or new for this agent (share of calls below 5 %)
    size    the argument size is more than 3 standard deviations from the mean (full at 6)
    hour    the hour of day holds less than a quarter of a uniform share of the agent's calls
    errors  the recent refusal rate runs above the long-run rate

    score = 1 - prod(1 - weight_i * component_i)     (weights 0.6, 0.5, 0.4, 0.5)

An agent with fewer than `min_samples` calls scores 0 (no baseline yet). Baselines live in the
worker's memory (bounded number of agents, least recently used evicted); `score` and `observe`
never do I/O.

Without Redis that is all: each worker keeps its own baselines, lost on restart. With Redis,
`pipeline.checks.baseline_sync.BaselineSync` calls `track_deltas()`, after which `observe` also
records each call in a per-agent delta (a `Baseline` started from zero). The sync task drains the
deltas, adds them to the shared totals in Redis and hands the totals back through `apply`, which
sets the agent's baseline to totals + whatever was observed since the drain. Baselines merge
exactly (`Baseline.merge`): counts add, the size mean and M2 combine with the parallel formula of
Chan et al. (`merge_moments`), and the exponential refusal average is linear in its inputs, so a
delta carries the average it would reach from zero and is applied after the earlier state as
`recent * (1 - alpha) ** delta.n + delta.recent` -- the value one worker would hold had it seen the
delta's calls right after the earlier ones.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

WEIGHTS = {"tool": 0.6, "size": 0.5, "hour": 0.4, "errors": 0.5}
_MAX_TOOLS = 1000
_EWMA_ALPHA = 0.1

AgentKey = tuple[str, str]


def merge_moments(n_a: int, mean_a: float, m2_a: float,
                  n_b: int, mean_b: float, m2_b: float) -> tuple[int, float, float]:
    """Count, mean and M2 (sum of squared deviations) of two samples taken together (Chan et al.)."""
    n = n_a + n_b
    if n_b == 0:
        return n_a, mean_a, m2_a
    if n_a == 0:
        return n_b, mean_b, m2_b
    delta = mean_b - mean_a
    return n, mean_a + delta * n_b / n, m2_a + m2_b + delta * delta * n_a * n_b / n


@dataclass(slots=True)
class Baseline:
    n: int = 0
    tools: dict[str, int] = field(default_factory=dict)
    size_mean: float = 0.0
    size_m2: float = 0.0
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    refused: int = 0
    recent_refused: float = 0.0

    def components(self, tool: str, size: int, hour: int) -> dict[str, float]:
        n = self.n
        share = self.tools.get(tool, 0) / n
        tool_c = max(0.0, 1.0 - share / 0.05)
        std = math.sqrt(self.size_m2 / (n - 1)) if n > 1 else 0.0
        z = abs(size - self.size_mean) / max(std, 1.0 + 0.05 * self.size_mean)
        size_c = min(1.0, max(0.0, (z - 3.0) / 3.0))
        hour_share = self.hours[hour] / n
        hour_c = max(0.0, 1.0 - hour_share / (0.25 / 24))
        err_c = min(1.0, max(0.0, (self.recent_refused - self.refused / n) * 2.0))
        return {"tool": tool_c, "size": size_c, "hour": hour_c, "errors": err_c}

    def update(self, tool: str, size: int, hour: int, refused: bool) -> None:
        self.n += 1
        if tool in self.tools or len(self.tools) < _MAX_TOOLS:
            self.tools[tool] = self.tools.get(tool, 0) + 1
        delta = size - self.size_mean
        self.size_mean += delta / self.n
        self.size_m2 += delta * (size - self.size_mean)
        self.hours[hour] += 1
        self.refused += refused
        self.recent_refused += _EWMA_ALPHA * (float(refused) - self.recent_refused)

    def merge(self, later: Baseline) -> Baseline:
        """A new baseline of this one's calls followed by `later`'s (`later` counted from zero)."""
        tools = dict(self.tools)
        for name, count in later.tools.items():
            if name in tools or len(tools) < _MAX_TOOLS:
                tools[name] = tools.get(name, 0) + count
        n, mean, m2 = merge_moments(self.n, self.size_mean, self.size_m2, later.n, later.size_mean, later.size_m2)
        return Baseline(n=n, tools=tools, size_mean=mean, size_m2=m2,
                        hours=[a + b for a, b in zip(self.hours, later.hours)], refused=self.refused + later.refused,
                        recent_refused=self.recent_refused * (1.0 - _EWMA_ALPHA) ** later.n + later.recent_refused)


@dataclass(frozen=True, slots=True)
class AnomalyScore:
    score: float
    components: dict[str, float]


NO_BASELINE = AnomalyScore(0.0, {})


class Baselines:
    """Baselines keyed by (tenant, agent); `score` then `observe` for every check."""

    def __init__(self, max_agents: int = 50_000) -> None:
        self._b: OrderedDict[AgentKey, Baseline] = OrderedDict()
        self._max = max_agents
        self._pending: dict[AgentKey, Baseline] | None = None

    def _get(self, tenant_id: str, agent_id: str) -> Baseline:
        key = (tenant_id, agent_id)
        b = self._b.get(key)
        if b is None:
            b = self._b[key] = Baseline()
            if len(self._b) > self._max:
                evicted, _ = self._b.popitem(last=False)
                if self._pending is not None:
                    self._pending.pop(evicted, None)
        else:
            self._b.move_to_end(key)
        return b

    def score(self, tenant_id: str, agent_id: str, tool: str, size: int, hour: int, min_samples: int) -> AnomalyScore:
        b = self._b.get((tenant_id, agent_id))
        if b is None or b.n < min_samples:
            return NO_BASELINE
        comps = b.components(tool, size, hour)
        keep = 1.0
        for name, c in comps.items():
            keep *= 1.0 - WEIGHTS[name] * c
        return AnomalyScore(round(1.0 - keep, 4), comps)

    def observe(self, tenant_id: str, agent_id: str, tool: str, size: int, hour: int, refused: bool) -> None:
        self._get(tenant_id, agent_id).update(tool, size, hour, refused)
        pending = self._pending
        if pending is not None:
            key = (tenant_id, agent_id)
            d = pending.get(key)
            if d is None:
                d = pending[key] = Baseline()
            d.update(tool, size, hour, refused)

    def samples(self, tenant_id: str, agent_id: str) -> int:
        b = self._b.get((tenant_id, agent_id))
        return 0 if b is None else b.n

    # -- sharing (used by BaselineSync; see the module docstring) ---------------------------------
    def track_deltas(self) -> None:
        """From now on, record every observed call in a per-agent delta as well, for `drain`.

        Baselines observed before count as not yet shared: the first drain hands them over too.
        """
        if self._pending is None:
            self._pending = {key: b.merge(Baseline()) for key, b in self._b.items()}

    def drain(self) -> dict[AgentKey, Baseline]:
        """The deltas observed since the last drain (agents still held only); recording starts afresh."""
        if self._pending is None:
            return {}
        batch, self._pending = self._pending, {}
        return batch

    def restore(self, batch: dict[AgentKey, Baseline]) -> None:
        """Put back deltas that could not be shared, ahead of those observed since they were drained."""
        pending = self._pending
        if pending is None:
            return
        for key, d in batch.items():
            if key in self._b:
                newer = pending.get(key)
                pending[key] = d if newer is None else d.merge(newer)

    def apply(self, key: AgentKey, shared: Baseline) -> None:
        """Set an agent's baseline to the shared totals plus its calls since the last drain.

        Agents no longer held (evicted) are left out; the agent's recency is not changed.
        """
        if key not in self._b:
            return
        newer = None if self._pending is None else self._pending.get(key)
        self._b[key] = shared if newer is None else shared.merge(newer)

    def keys(self) -> list[AgentKey]:
        """The agents held, least recently used first (a snapshot)."""
        return list(self._b)
