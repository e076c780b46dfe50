"""Infrastructure identifiers (ARNs, bucket endpoints) in the secrets and output stages: they follow
`secrets.identifiers_action` (flag by default), credentials follow `secrets.action` (block)."""
from __future__ import annotations

import pytest

from detectors.output import OutputScanner
from detectors.secrets import SecretsDetector
from pipeline.context import RequestContext
from pipeline.errors import PolicyViolation
from pipeline.policy import compile_policy, validate_policy
from pipeline.stages.output_scan import OutputScanStage
from pipeline.stages.secrets_scan import SecretsScanStage

ACCOUNT = "7039" + "4815" + "0225"
ARN = f"arn:aws:iam::{ACCOUNT}:role/ci-deployer"
PROMPT = f"Why does AssumeRole on {ARN} fail with AccessDenied?"
GH_TOKEN = "gh" + "p_" + "8fK2mQ9xL4vT7bN1cR6yW3pZ0sD5hJ2aE9uF"


@pytest.fixture(scope="module")
def detector() -> SecretsDetector:
    return SecretsDetector()


def run(detector: SecretsDetector, text: str, **secrets: str) -> tuple[RequestContext, list[tuple[str, str, str]]]:
    counted: list[tuple[str, str, str]] = []
    ctx = RequestContext("chat", "POST", "/v1/chat/completions", {}, b"{}")
    ctx.policy = compile_policy({"secrets": secrets} if secrets else None)
    ctx.body = {"model": "m", "messages": [{"role": "user", "content": text}]}
    SecretsScanStage(detector, lambda *c: counted.append(c))(ctx)
    return ctx, counted


def test_identifiers_action_defaults_to_flag_and_is_validated():
    assert compile_policy().secrets_identifiers_action == "flag"
    assert compile_policy({"secrets": {"identifiers_action": "off"}}).secrets_identifiers_action == "off"
    errors = validate_policy({"secrets": {"identifiers_action": "ignore"}})
    assert errors and "secrets.identifiers_action" in errors[0]


def test_a_prompt_with_only_an_arn_is_flagged_not_blocked_by_default(detector):
    ctx, counted = run(detector, PROMPT)
    assert ctx.body["messages"][0]["content"] == PROMPT
    sec = ctx.security
    assert sec.identifiers_detected == ["aws_arn"] and sec.secrets_detected == []
    assert sec.flags == ["identifiers"] and sec.violations == []
    assert counted == [("secrets", "aws_arn", "flag")]
    assert sec.as_dict(0.0)["identifiers_detected"] == ["aws_arn"]


def test_an_arn_is_blocked_when_identifiers_action_is_block(detector):
    with pytest.raises(PolicyViolation) as exc:
        run(detector, PROMPT, identifiers_action="block")
    assert exc.value.error_code == "GW-005" and exc.value.reason == "identifier_detected"
    assert exc.value.extra == {"identifier_types": ["aws_arn"]} and ACCOUNT not in exc.value.detail


def test_an_arn_is_redacted_or_ignored_as_the_policy_says(detector):
    ctx, _ = run(detector, PROMPT, identifiers_action="redact")
    assert ctx.body["messages"][0]["content"] == (
        "Why does AssumeRole on [REDACTED_IDENTIFIER:aws_arn] fail with AccessDenied?")
    assert ctx.security.actions == ["identifiers:redact"]
    ctx, counted = run(detector, PROMPT, identifiers_action="off")
    assert ctx.security.identifiers_detected == [] and ctx.security.flags == [] and counted == []


def test_a_real_credential_is_still_blocked_next_to_an_identifier(detector):
    with pytest.raises(PolicyViolation) as exc:
        run(detector, f"{PROMPT} My token is {GH_TOKEN}.")
    assert exc.value.error_code == "GW-005" and exc.value.reason == "secret_detected"
    assert exc.value.extra == {"secret_types": ["github_token"]}


def test_credentials_and_identifiers_each_follow_their_own_action(detector):
    ctx, counted = run(detector, f"{PROMPT} My token is {GH_TOKEN}.", action="redact", identifiers_action="shadow")
    assert ctx.body["messages"][0]["content"] == f"{PROMPT} My token is [REDACTED_SECRET:github_token]."
    assert ctx.security.actions == ["secrets:redact"] and ctx.security.flags == ["shadow:identifiers"]
    assert sorted(counted) == [("secrets", "aws_arn", "shadow"), ("secrets", "github_token", "redact")]


@pytest.fixture(scope="module")
def output_stage(detector):
    return OutputScanStage(OutputScanner(pii_types=(), secrets_detector=detector), lambda *c: None)


def answer(stage: OutputScanStage, text: str, **secrets: str) -> RequestContext:
    ctx = RequestContext("chat", "POST", "/v1/chat/completions", {}, b"{}")
    ctx.policy = compile_policy({"secrets": secrets} if secrets else None)
    ctx.response = {"choices": [{"message": {"role": "assistant", "content": text}}]}
    stage(ctx)
    return ctx


def test_an_answer_mentioning_an_arn_is_flagged_not_withheld(output_stage):
    ctx = answer(output_stage, f"Add sts:AssumeRole for {ARN} to the trust policy.")
    assert ctx.security.output_findings == ["identifier:aws_arn"] and ctx.security.flags == ["output"]
    assert ctx.security.violations == []


def test_an_answer_with_an_arn_is_withheld_only_when_identifiers_block(output_stage):
    with pytest.raises(PolicyViolation) as exc:
        answer(output_stage, f"Use {ARN}.", identifiers_action="block")
    assert exc.value.error_code == "GW-006" and exc.value.extra == {"findings": ["identifier:aws_arn"]}


def test_an_answer_with_a_credential_is_still_withheld(output_stage):
    with pytest.raises(PolicyViolation) as exc:
        answer(output_stage, f"Use {ARN} with token {GH_TOKEN}.")
    assert exc.value.extra == {"findings": ["secret:github_token"]}
