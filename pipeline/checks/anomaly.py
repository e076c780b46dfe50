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
worker's memory (bounded number of agents, least recently used evicted).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

WEIGHTS = {"tool": 0.6, "size": 0.5, "hour": 0.4, "errors": 0.5}
_MAX_TOOLS = 1000
_EWMA_ALPHA = 0.1


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


@dataclass(frozen=True, slots=True)
class AnomalyScore:
    score: float
    components: dict[str, float]


NO_BASELINE = AnomalyScore(0.0, {})


class Baselines:
    """Baselines keyed by (tenant, agent); `score` then `observe` for every check."""

    def __init__(self, max_agents: int = 50_000) -> None:
        self._b: OrderedDict[tuple[str, str], Baseline] = OrderedDict()
        self._max = max_agents

    def _get(self, tenant_id: str, agent_id: str) -> Baseline:
        key = (tenant_id, agent_id)
        b = self._b.get(key)
        if b is None:
            b = self._b[key] = Baseline()
            if len(self._b) > self._max:
                self._b.popitem(last=False)
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

    def samples(self, tenant_id: str, agent_id: str) -> int:
        b = self._b.get((tenant_id, agent_id))
        return 0 if b is None else b.n
