"""Stage 12: scan responses for secrets, PII, system-prompt leakage and the canary token.

Infrastructure identifiers among the secrets findings (ARNs, bucket endpoints: kind "identifier")
act at the milder of `output.action` and `secrets.identifiers_action`, so by default an answer that
mentions an ARN is flagged, not withheld.

Non-streamed responses are scanned whole and withheld on a block (422 GW-006). Streams are
scanned incrementally (Hyperscan stream mode, matches found across chunk boundaries without
buffering the response); on a block the stream stops at the chunk where the match completes
and ends with an SSE error event, which OpenAI SDKs raise.
"""
from __future__ import annotations

import logging
from collections import deque
from typing import Any, AsyncIterator, Callable

from pipeline.context import RequestContext
from pipeline.errors import PolicyViolation

log = logging.getLogger("casemate.detect")
Count = Callable[[str, str, str], None]


# Output actions by severity; identifiers act at the milder of output.action and their own action.
_SEVERITY = {"shadow": 0, "flag": 1, "block": 2}


def _identifier_action(output_action: str, identifiers_action: str) -> str:
    """Infrastructure identifiers in a response (ARNs, bucket endpoints): never more than
    `secrets.identifiers_action` (flag by default), never more than `output.action`; a response is
    not rewritten, so "redact" only flags."""
    own = "flag" if identifiers_action == "redact" else identifiers_action
    return min(own, output_action, key=lambda a: _SEVERITY.get(a, 1))


def _wanted(pol: Any) -> frozenset[str]:
    kinds = set()
    if pol.output_secrets:
        kinds.add("secret")
        if pol.secrets_identifiers_action != "off":
            kinds.add("identifier")
    if pol.output_pii:
        kinds.add("pii")
    if pol.output_system_prompt_leak:
        kinds.add("system_prompt_leak")
    if pol.output_canary:
        kinds.add("canary")
    return frozenset(kinds)


class OutputScanStage:
    name = "output_scan"
    phase = "tail"
    optional = True
    slot = "post_upstream"

    def __init__(self, scanner: Any, count: Count) -> None:
        self._scanner = scanner
        self._count = count
        self._wanted: dict[str, frozenset[str]] = {}

    def _kinds(self, pol: Any) -> frozenset[str]:
        k = self._wanted.get(pol.fingerprint)
        if k is None:
            k = self._wanted[pol.fingerprint] = _wanted(pol)
        return k

    def _handle(self, ctx: RequestContext, findings: list[Any], kinds: frozenset[str]) -> None:
        hits = [f for f in findings if f.kind in kinds]
        if not hits:
            return
        pol = ctx.policy
        action = pol.output_action if pol is not None else "block"
        id_action = _identifier_action(action, pol.secrets_identifiers_action) if pol is not None else action
        sec = ctx.security
        acted: dict[str, set[str]] = {}                      # action -> finding labels
        for f in hits:
            act = id_action if f.kind == "identifier" else action
            self._count("output", f.kind, act)
            acted.setdefault(act, set()).add(f"{f.kind}:{f.type}" if f.type and f.type != f.kind else f.kind)
        labels = sorted(set().union(*acted.values()))
        sec.output_findings.extend(x for x in labels if x not in sec.output_findings)
        if "block" in acted:
            blocked = sorted(acted["block"])
            sec.violations.append("output_blocked")
            raise PolicyViolation(f"The response was withheld: it contained {', '.join(blocked)}.",
                                  error_code="GW-006", reason="output_blocked", extra={"findings": blocked})
        for act in acted:
            tag = "output" if act == "flag" else "shadow:output"
            if tag not in sec.flags:
                sec.flags.append(tag)

    def __call__(self, ctx: RequestContext) -> None:
        if ctx.cache_hit or ctx.policy is None:
            return
        kinds = self._kinds(ctx.policy)
        if not kinds:
            return
        if ctx.stream_iter is not None:
            ctx.stream_iter = self._scan_stream(ctx, ctx.stream_iter, kinds)
            return
        resp = ctx.response
        if not resp:
            return
        for choice in resp.get("choices") or ():
            msg = choice.get("message") or {}
            text = msg.get("content")
            if isinstance(text, str) and text:
                self._handle(ctx, self._scanner.scan_text(text, ctx.system_prompt, ctx.canary), kinds)

    async def _scan_stream(self, ctx: RequestContext, batches: AsyncIterator[list[dict[str, Any]]],
                           kinds: frozenset[str]) -> AsyncIterator[list[dict[str, Any]]]:
        """Relay batches while the session scans them. With a hold-back window, a chunk is released
        only once the scanner is `window` characters past it and no unsettled candidate covers it,
        so a finding that blocks the stream was never delivered."""
        session = self._scanner.open(ctx.system_prompt, ctx.canary)
        window = ctx.policy.output_stream_holdback if ctx.policy is not None else 0
        held: deque[tuple[dict[str, Any], int]] = deque()      # (chunk, output offset after it)
        fed = 0
        try:
            async for batch in batches:
                for chunk in batch:
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta")
                        content = delta.get("content") if delta else None
                        if content:
                            found = session.feed(content)
                            fed += len(content)
                            if found:
                                self._handle(ctx, found, kinds)
                    held.append((chunk, fed))
                if not window:
                    held.clear()
                    yield batch
                    continue
                safe = fed - window
                pending = session.pending_from()
                if pending is not None and pending < safe:
                    safe = pending
                out = []
                while held and held[0][1] <= safe:
                    out.append(held.popleft()[0])
                if out:
                    yield out
            self._handle(ctx, session.close(), kinds)
            if held:
                yield [c for c, _ in held]
        finally:
            await batches.aclose()  # type: ignore[attr-defined]
