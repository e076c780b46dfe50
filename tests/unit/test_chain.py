from pipeline.chain import Chain
from pipeline.context import RequestContext
from pipeline.errors import PolicyViolation
from pipeline.policy import compile_policy


class Rec:
    def __init__(self, name, phase="tail", optional=False, fail=False, log=None):
        self.name, self.phase, self.optional, self.fail, self.log = name, phase, optional, fail, log

    def __call__(self, ctx):
        self.log.append(self.name)
        if self.name == "policy":
            ctx.policy = compile_policy({"cache": {"enabled": False}})
        if self.fail:
            raise PolicyViolation("no", reason="test")


class AsyncRec(Rec):
    async def __call__(self, ctx):
        Rec.__call__(self, ctx)


def ctx():
    return RequestContext("chat", "POST", "/v1/chat/completions", {}, b"{}")


async def test_disabled_stages_are_dropped_and_sync_async_both_run_in_order():
    log = []
    stages = [Rec("request_id", "prefix", log=log), AsyncRec("policy", "prefix", log=log),
              Rec("injection_scan", optional=True, log=log), AsyncRec("cache_lookup", optional=True, log=log),
              AsyncRec("upstream", log=log), Rec("audit", "finally", log=log)]
    chain = Chain(stages)
    c = ctx()
    await chain.run(c)
    chain.finish(c)
    assert log == ["request_id", "policy", "injection_scan", "upstream", "audit"]
    assert c.error is None


async def test_a_stage_error_short_circuits_and_audit_still_runs():
    log = []
    stages = [Rec("policy", "prefix", log=log), Rec("injection_scan", optional=True, fail=True, log=log),
              AsyncRec("upstream", log=log), Rec("audit", "finally", log=log)]
    chain = Chain(stages)
    c = ctx()
    await chain.run(c)
    chain.finish(c)
    assert log == ["policy", "injection_scan", "audit"]
    assert isinstance(c.error, PolicyViolation) and c.status == 422 and c.outcome == "blocked"


async def test_tails_are_compiled_once_per_policy_shape_and_timed():
    observed = []
    log = []
    stages = [Rec("policy", "prefix", log=log), Rec("secrets_scan", optional=True, log=log)]
    chain = Chain(stages, observe_factory=lambda name: (lambda s: observed.append((name, s))))
    for _ in range(3):
        await chain.run(ctx())
    assert len(list(chain.compiled_shapes())) == 1
    assert {n for n, _ in observed} == {"policy", "secrets_scan"}
    assert all(s >= 0 for _, s in observed)


def _audit_ctx(error=None):
    from pipeline.context import Principal

    c = ctx()
    c.request_id = "r1"
    c.principal = Principal(tenant_id="t", tenant_name="t", subject="k", kind="api_key", role="owner",
                            permissions=frozenset())
    c.error = error
    return c


class _Sink:
    def __init__(self):
        self.items = []

    def submit(self, event, row, usage):
        self.items.append((event, row))


def test_audit_writes_an_event_for_refusals_and_only_a_row_for_completed_requests():
    from pipeline.stages.audit import AuditStage

    sink = _Sink()
    stage = AuditStage(sink, lambda *a, **k: 0.0)
    stage(_audit_ctx())
    refused = _audit_ctx(PolicyViolation("no", reason="test"))
    refused.outcome = "blocked"
    stage(refused)
    (ok_event, ok_row), (bad_event, bad_row) = sink.items
    assert ok_event is None and ok_row["id"] == "r1"
    assert bad_event["action"] == "gateway.request.blocked" and bad_event["actor"] == "api_key:k"
    assert bad_row["blocked"] is True


def test_completed_request_events_are_opt_in():
    from pipeline.stages.audit import AuditStage

    sink = _Sink()
    AuditStage(sink, lambda *a, **k: 0.0, completed_events=True)(_audit_ctx())
    assert sink.items[0][0]["action"] == "gateway.request.completed"
