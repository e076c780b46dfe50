"""Secrets detector: provider formats, generic assignments, placeholder rejection.

Every fake credential is assembled from pieces at run time so this file does not
itself look like a leaked key to secret scanners.
"""

from __future__ import annotations

import pytest

from detectors.secrets import SecretsDetector, looks_like_placeholder, shannon_entropy

# A fixed pseudo-random alphabet soup, sliced to the lengths each format needs.
_SOUP = "q7Rt2VxK9mPzL4wN8bYc3HfJ6dGs1TkQe5UaZ0oMvXiB7nCrW2hEyF9jDlS4gA8uPtK3xNb6LmQz1RcV5wHs0eJ"
_HEX = (
    "9f3a7c1e5b8d2f4a6c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a5c7e9b2d4f6a8c0e"
)


def soup(n: int, offset: int = 0) -> str:
    return (_SOUP[offset:] + _SOUP)[:n]


def hexs(n: int, offset: int = 0) -> str:
    return (_HEX[offset:] + _HEX)[:n]


@pytest.fixture(scope="module")
def detector() -> SecretsDetector:
    return SecretsDetector()


CASES = [
    ("openai project key", "sk-" + "proj-" + soup(48), "openai_api_key"),
    (
        "openai legacy key",
        "sk-" + soup(20) + "T3Blbk" + "FJ" + soup(20, 7),
        "openai_api_key",
    ),
    (
        "anthropic key",
        "sk-" + "ant-" + "api03-" + soup(86) + "-" + soup(6, 3) + "AA",
        "anthropic_api_key",
    ),
    ("aws access key id", "AK" + "IA" + "QYLPMN5HJ3TQ7XWZ", "aws_access_key_id"),
    ("aws temporary key id", "AS" + "IA" + "V4XQ2LRM7PKZ3NWT", "aws_access_key_id"),
    ("gcp api key", "AI" + "za" + "Sy" + soup(33), "gcp_api_key"),
    ("github classic pat", "gh" + "p_" + soup(36), "github_token"),
    ("github oauth token", "gh" + "o_" + soup(36, 5), "github_token"),
    ("github server token", "gh" + "s_" + soup(36, 9), "github_token"),
    (
        "github fine-grained pat",
        "github" + "_pat_" + soup(22) + "_" + soup(59, 4),
        "github_token",
    ),
    ("gitlab pat", "gl" + "pat-" + soup(20), "gitlab_token"),
    (
        "slack bot token",
        "xo" + "xb-" + "2468013579-1357924680-" + soup(24),
        "slack_token",
    ),
    (
        "slack webhook",
        "https://hooks."
        + "slack.com/services/"
        + "T0"
        + soup(8)
        + "/B0"
        + soup(8, 3)
        + "/"
        + soup(24, 6),
        "slack_webhook",
    ),
    ("stripe live key", "sk" + "_live_" + soup(24), "stripe_key"),
    ("stripe restricted key", "rk" + "_live_" + soup(24, 2), "stripe_key"),
    ("twilio api key", "S" + "K" + hexs(32), "twilio_key"),
    ("sendgrid key", "S" + "G." + soup(22) + "." + soup(43, 5), "sendgrid_api_key"),
    ("npm token", "np" + "m_" + soup(36), "npm_token"),
    ("pypi token", "pypi" + "-AgEI" + "cHlwaS5vcmc" + soup(60), "pypi_token"),
    (
        "jwt",
        "ey"
        + "JhbGciOiJIUzI1NiJ9"
        + ".ey"
        + "JzdWIiOiIxMjM0NTY3ODkwIn0"
        + "."
        + soup(43),
        "jwt",
    ),
    (
        "postgres url",
        "postgres" + "ql://app:" + "Wq8" + "zLm2Rt@" + "db.internal:5432/prod",
        "connection_string_password",
    ),
    (
        "redis url",
        "redis" + "://:" + "Pz4" + "kTn8Vw@" + "cache.internal:6379/0",
        "connection_string_password",
    ),
    (
        "amqp url",
        "amqp" + "://svc:" + "Hx7" + "mQ2vLp@" + "mq.internal:5672/",
        "connection_string_password",
    ),
]


@pytest.mark.parametrize(
    ("name", "secret", "secret_type"), CASES, ids=[c[0] for c in CASES]
)
def test_provider_format_is_found_with_exact_span(
    detector: SecretsDetector, name: str, secret: str, secret_type: str
) -> None:
    text = f"here is the credential: {secret} -- keep it safe"
    found = detector.scan(text)
    types = {f.secret_type for f in found}
    assert secret_type in types, (name, found)
    spans = [text[f.start : f.end] for f in found if f.secret_type == secret_type]
    assert any(s in secret or secret in s for s in spans)


def test_pem_private_key_block_is_found(detector: SecretsDetector) -> None:
    body = "\n".join(soup(64, i) for i in range(6))
    pem = (
        "-----BEGIN RSA "
        + "PRIVATE KEY-----\n"
        + body
        + "\n-----END RSA "
        + "PRIVATE KEY-----"
    )
    found = detector.scan("config:\n" + pem + "\n")
    assert [f.secret_type for f in found] == ["private_key"]


def test_azure_storage_connection_string_is_found(detector: SecretsDetector) -> None:
    conn = (
        "DefaultEndpointsProtocol=https;AccountName=casemateprod;Account"
        + "Key="
        + soup(86)
        + "=="
    )
    assert {f.secret_type for f in detector.scan(conn)} == {"azure_connection_string"}


def test_aws_secret_key_needs_context(detector: SecretsDetector) -> None:
    value = soup(40, 11).replace("-", "")[:40]
    assert any(
        f.secret_type == "aws_secret_access_key"
        for f in detector.scan(f"aws_secret_access_key = {value}")
    )


def test_generic_password_assignment_is_found(detector: SecretsDetector) -> None:
    found = detector.scan('db_password = "Tr0ub4dor&3-horse"')
    assert [(f.secret_type, f.rule_id) for f in found] == [
        ("generic_password", "generic-password")
    ]


def test_high_entropy_token_with_context_is_found(detector: SecretsDetector) -> None:
    found = detector.scan("the deploy token is " + soup(40, 13))
    assert found and found[0].rule_id == "contextual-high-entropy"


@pytest.mark.parametrize(
    "text",
    [
        'OPENAI_API_KEY="sk-' + "proj-" + "x" * 48 + '"',
        "api_key: your_api_key_here",
        "password = 'changeme'",
        'password = "${DB_PASSWORD}"',
        "password = os.environ['DB_PASSWORD']",
        "AWS key " + "AK" + "IA" + "IOSFODNN7" + "EXAMPLE",
        "token = <YOUR_TOKEN>",
        "secret: " + "*" * 32,
        "postgres" + "ql://user:password@localhost/db",
    ],
)
def test_placeholders_and_references_are_rejected(
    detector: SecretsDetector, text: str
) -> None:
    assert detector.scan(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "Explain how public key cryptography works in two paragraphs.",
        "Write a function that hashes a password with bcrypt and a random salt.",
        "The key insight is that tokens are split by the tokenizer before embedding.",
        "Set the timeout: 30 seconds and retry three times.",
    ],
)
def test_ordinary_prompts_yield_nothing(detector: SecretsDetector, text: str) -> None:
    assert detector.scan(text) == []


def test_overlapping_rules_keep_the_most_confident(detector: SecretsDetector) -> None:
    key = "sk-" + "proj-" + soup(48)
    found = detector.scan(f"api_key = {key}")
    assert len(found) == 1 and found[0].rule_id == "openai-project-key"


def test_findings_work_with_operators(detector: SecretsDetector) -> None:
    from detectors.operators import apply

    text = "use " + "gh" + "p_" + soup(36) + " for the push"
    out = apply(
        text, detector.scan(text), {"SECRET": "redact"}, hmac_key=b"k", vault=None
    )
    assert out.text == "use [REDACTED] for the push"


def test_entropy_and_placeholder_helpers() -> None:
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy(soup(40)) > 4.0
    assert looks_like_placeholder("xxxxxxxxxxxx")
    assert looks_like_placeholder("YOUR_API_KEY")
    assert not looks_like_placeholder(soup(32))
