"""The stage interface and the chain compiler.

Stages 1-6 (request id .. policy) always run; they resolve the effective policy.
The rest of the chain is compiled once per policy *shape* (the tuple of enabled
optional stages) and memoised: disabled stages are dropped, synchronous stages
are called without an await, and every stage's duration feeds one histogram
child bound at compile time. A `StageError` stops the request; `finish()` runs
the finally-phase stages (audit) for completed and blocked requests alike.
"""
from __future__ import annotations

import inspect
from time import perf_counter
from typing import Any, Callable, Iterable, Protocol, Sequence

from pipeline.context import RequestContext
from pipeline.errors import StageError

Observe = Callable[[float], None]
Step = tuple[str, Callable[[RequestContext], Any], bool, Observe]


class Stage(Protocol):
    name: str
    phase: str            # "prefix" | "tail" | "finally"
    optional: bool        # True: kept only when its name is in the policy shape

    def __call__(self, ctx: RequestContext) -> Any: ...


def _is_async(stage: Stage) -> bool:
    call = getattr(stage, "__call__")
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(stage)


def _noop(_: float) -> None:
    return None


class Chain:
    """A compiled chain. `run()` executes prefix + the tail for the request's policy shape."""

    def __init__(self, stages: Sequence[Stage], observe_factory: Callable[[str], Observe] | None = None) -> None:
        self._factory = observe_factory or (lambda name: _noop)
        self._stages = list(stages)
        names = [s.name for s in self._stages]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate stage names in chain: {names}")
        self._prefix = tuple(self._step(s) for s in self._stages if s.phase == "prefix")
        self._finally = tuple(self._step(s) for s in self._stages if s.phase == "finally")
        self._tail_stages = [s for s in self._stages if s.phase == "tail"]
        self._tails: dict[tuple[str, ...], tuple[Step, ...]] = {}

    def stage(self, name: str) -> Stage | None:
        """The stage object registered under `name` (for routes that run a stage outside the chain)."""
        return next((s for s in self._stages if s.name == name), None)

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self._stages]

    def _step(self, stage: Stage) -> Step:
        return (stage.name, stage, _is_async(stage), self._factory(stage.name))

    def tail_for(self, shape: tuple[str, ...]) -> tuple[Step, ...]:
        """The compiled tail for a policy shape (memoised)."""
        tail = self._tails.get(shape)
        if tail is None:
            wanted = set(shape)
            tail = tuple(self._step(s) for s in self._tail_stages if not s.optional or s.name in wanted)
            self._tails[shape] = tail
        return tail

    def compiled_shapes(self) -> Iterable[tuple[str, ...]]:
        return self._tails.keys()

    async def run(self, ctx: RequestContext) -> None:
        """Run the request through the chain. A StageError is stored on ctx.error, not raised."""
        pc = perf_counter
        try:
            for _name, fn, is_async, observe in self._prefix:
                t0 = pc()
                if is_async:
                    await fn(ctx)
                else:
                    fn(ctx)
                observe(pc() - t0)
            policy = ctx.policy
            tail = self.tail_for(policy.shape if policy is not None else ())
            for _name, fn, is_async, observe in tail:
                t0 = pc()
                if is_async:
                    await fn(ctx)
                else:
                    fn(ctx)
                observe(pc() - t0)
        except StageError as exc:
            ctx.error = exc
            ctx.status = exc.status
            ctx.outcome = "blocked" if exc.status in (403, 413, 422, 429, 503, 400, 401) else "error"
        finally:
            ctx.pipeline_ms = (pc() - ctx.started) * 1000.0

    def finish(self, ctx: RequestContext) -> None:
        """Run the finally-phase stages (audit). Never raises into the caller."""
        pc = perf_counter
        for name, fn, _is_async_, observe in self._finally:
            t0 = pc()
            try:
                fn(ctx)
            except Exception:  # noqa: BLE001 - audit must never break a response
                import logging

                logging.getLogger("casemate.chain").exception("finally stage %s failed", name)
            observe(pc() - t0)
