"""Secrets detector: provider formats, generic assignments, placeholder rejection.

Every fake credential is assembled from pieces at run time so this file does not
itself look like a leaked key to secret scanners.
"""

from __future__ import annotations

import pytest

from detectors.secrets import (
    SecretsDetector,
    looks_like_placeholder,
    looks_sequential,
    shannon_entropy,
)

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
    ("openrouter key", "sk-" + "or-v1-" + hexs(64), "openrouter_api_key"),
    ("xai key", "xa" + "i-" + soup(80), "xai_api_key"),
    ("replicate token", "r8" + "_" + soup(37), "replicate_api_token"),
    (
        "langsmith key",
        "lsv2" + "_pt_" + hexs(32) + "_" + hexs(10, 3),
        "langsmith_api_key",
    ),
    ("pinecone key", "pcsk" + "_" + soup(6) + "_" + soup(60, 7), "pinecone_api_key"),
    ("elevenlabs key", "sk" + "_" + hexs(48), "elevenlabs_api_key"),
    ("stripe webhook secret", "whsec" + "_" + soup(32), "stripe_key"),
    ("supabase token", "sb" + "p_" + hexs(40), "supabase_token"),
    ("heroku v2 key", "HR" + "KU-" + soup(60), "heroku_api_key"),
    ("postman key", "PM" + "AK-" + hexs(24) + "-" + hexs(34, 5), "postman_api_key"),
    ("pulumi token", "pu" + "l-" + hexs(40), "pulumi_token"),
    ("sentry user token", "sntry" + "u_" + hexs(64), "sentry_token"),
    ("brevo key", "xkey" + "sib-" + hexs(64) + "-" + soup(16), "brevo_api_key"),
    ("shippo token", "shippo" + "_live_" + hexs(40), "shippo_api_token"),
    ("bitbucket app password", "AT" + "BB" + soup(32), "bitbucket_token"),
    ("typeform token", "tf" + "p_" + soup(59), "typeform_token"),
    ("planetscale token", "pscale" + "_tkn_" + soup(43), "planetscale_token"),
    ("fly.io token", "fo" + "1_" + soup(43), "flyio_token"),
    (
        "flutterwave secret key",
        "FLW" + "SECK_TEST-" + hexs(32) + "-X",
        "flutterwave_key",
    ),
    ("duffel token", "duffel" + "_test_" + soup(43), "duffel_token"),
    ("frame.io token", "fio" + "-u-" + soup(64), "frameio_token"),
    ("readme key", "rd" + "me_" + soup(70).lower(), "readme_api_key"),
    ("clojars token", "CLO" + "JARS_" + soup(60).lower(), "clojars_token"),
    ("contentful token", "CF" + "PAT-" + soup(43), "contentful_token"),
    ("docker hub pat", "dckr" + "_pat_" + soup(27), "docker_hub_token"),
    ("alibaba key id", "LT" + "AI" + soup(20), "alibaba_access_key"),
    ("tencent secret id", "AK" + "ID" + soup(32), "tencent_secret_id"),
    (
        "azure sas url",
        "https://acct.blob.core.windows.net/c/b.txt?sv="
        + "2022-11-02&ss=b&sp=r&se=2026-01-01T00:00:00Z&s"
        + "ig="
        + soup(43)
        + "%3D",
        "azure_sas_token",
    ),
    ("google refresh token", "1/" + "/0" + soup(60), "google_oauth_refresh_token"),
    (
        "firebase fcm server key",
        "AAAA" + soup(7) + ":APA" + "91b" + soup(134),
        "firebase_fcm_key",
    ),
    (
        "slack app token",
        "xa" + "pp-1-" + soup(10).upper() + "-4729163805-" + hexs(64),
        "slack_token",
    ),
    ("asana pat", "1/" + "1204958372615048:" + soup(32), "asana_token"),
    ("truenas key", "7-" + soup(64), "truenas_api_key"),
    ("square oauth secret", "sq0" + "csp-" + soup(43), "square_token"),
    (
        "discord bot token",
        "M" + soup(23, 5) + "." + soup(6, 9) + "." + soup(27, 14),
        "discord_bot_token",
    ),
    (
        "jwt behind an underscore-joined prefix",
        "gh" + "s_" + "48213_" + "ey" + "JhbGciOiJSUzI1NiJ9" + ".ey" + "JpYXQiOjE3MDAwMDAwMDB9." + soup(43),
        "jwt",
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


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        # quoted values may hold any punctuation, quotes of the other kind included
        ("jwt_secret: \"" + "7`D'}/vY)T;W" + soup(30) + "[$_q^?{\"", "7`D'}/vY)T;W"),
        ("signing_secret = '" + "q\"9]" + soup(28, 4) + "!~'", 'q"9]'),
        # JSON-escaped quotes around a password
        ('{"php": "$password = \\"Gl4ss-0nion7\\";"}', "Gl4ss-0nion7"),
        # a backtick inside a single-quoted password
        ("password = '`Zq81Kwp-Tr'", "`Zq81Kwp-Tr"),
        # name and value passed as two arguments
        ("os.environ.setdefault('SERVICE_API_KEY', '" + soup(32, 21) + "')", soup(32, 21)),
        (
            "buildConfigField 'String', 'MAPS_TOKEN', '\"" + hexs(32, 9) + "\"'",
            hexs(32, 9),
        ),
        # Terraform variable with a literal default
        (
            'variable "billing_api_token" {\n  type = string\n  default = "'
            + soup(40, 17)
            + '"\n}',
            soup(40, 17),
        ),
        # XML and .NET configuration
        ("<db><password>Vk2#pL9qRw</password></db>", "Vk2#pL9qRw"),
        ("<ApiKey>" + soup(32, 44) + "</ApiKey>", soup(32, 44)),
        ('<add key="PaymentGatewaySecret" value="Hq7TzP2wK9" />', "Hq7TzP2wK9"),
        # a vendor keyword in front of a bare legacy token
        ("sourcegraph: " + hexs(40, 11), hexs(40, 11)),
        # ThingsBoard devices post with their access token in the path
        ("POST https://tb.local/api/v1/" + soup(20, 30) + "/telemetry", soup(20, 30)),
        # subscript assignment, an Authorization header inside a dict literal, SQL and Laravel
        ("app.config['SECRET_KEY'] = '" + hexs(32, 8) + "'", hexs(32, 8)),
        ('headers = {"Authorization": "Bearer ' + hexs(40, 2) + '"}', hexs(40, 2)),
        ("conn.setRequestHeader('Authorization', 'Token " + soup(20, 3) + "')", soup(20, 3)),
        ("CREATE USER app IDENTIFIED BY 'Mq7-wPz2v';", "Mq7-wPz2v"),
        ("APP_KEY=base64:" + soup(43, 12) + "=", soup(43, 12)),
        # an unquoted password that merely looks like a word pair
        ("user = Ali\npassword = open_sesame\n", "open_sesame"),
        ("REACT_APP_AUTH_PASS=whiteduke", "whiteduke"),
        ("echo \"The password is 'Secret123'\"", "Secret123"),
        ("hi, my wifi password is Tr0ub4dor&3. thanks", "Tr0ub4dor&3"),
        # a password that starts with "#" but is no selector
        ("Server=db;User ID=app;Password=#g3ts0m3;", "#g3ts0m3"),
    ],
)
def test_generic_credential_shapes_are_found(
    detector: SecretsDetector, text: str, secret: str
) -> None:
    found = detector.scan(text)
    assert any(secret in text[f.start : f.end] for f in found), found


@pytest.mark.parametrize(
    "text",
    [
        # public keys and identifiers are not secrets
        'DOTENV_PUBLIC_KEY="' + hexs(66, 4) + '"',
        'export AUTH0_CLIENT_ID="' + soup(32, 40) + '"',
        '  "credentialId": "' + soup(22, 50) + '",',
        # base64 of filler text under a key-ish name
        "private key: " + "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo=",
        # shown cut off or masked
        "export OP_TOKEN=" + "ops_" + "eyJ" + soup(30) + "...",
        '"token4": "xo' + 'xp-572370529330-573807301142-572331691188-####################"',
        # keyboard-walk filler in a generic assignment
        "licenseKey=a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8",
        '"token": "dapi1234567890abcdef1234567890"',
        # user name repeated as password: a default demo account
        "postgres" + "://postgres:postgres@localhost:5432/app",
        # a CSS selector and a route assigned to password-ish names
        'this.addPassword = "#add-password";',
        "put '/forgot-password' => \"cms/sites/passwords#update\"",
        # a tailscale-looking run inside a longer word
        "xts" + "key-api-" + soup(12) + "-" + soup(24, 3),
        # a list of variable names after a key-ish name
        "Variables: `POSTGRES_PASSWORD`, `CF_R2_ACCESS_KEY_ID`, `CF_R2_ENDPOINT_URL`",
        # "pass" at the end of a longer word is no password name
        "Agent B owns did:moltpass:mp-k3v9q2",
        # settings and plist names under key-ish names
        '"accept_language_key": "en-US,en;q=0.9"',
        "<key>NSCameraUsageDescription</key>",
        # code: CamelCase type names near key words, variables named after the secret
        "def api_keys(self) -> AsyncAPIKeysWithStreamingResponse:",
        "    SyncX509WorkloadIdentityAuth as SyncX509WorkloadIdentityAuth,",
        '__all__ = ["AccessToken", "SessionClientSecretExpiresAt"]',
        "        self.password = resolved_password",
        '        password = quote(kwargs.pop("password"))',
        '    "passerby": "passersby",',
        "        password: _TriStateType",
        "    def __init__(self, credentials: Credentials) -> None:",
        "    def __getitem__(self, key: _1_KeyScalar) -> float: ...",
        "        util._assertion_pass = call_assertion_pass_hook",
        "        if not password:\n            return resp",
        "        # First pass: determine maximum length",
        "The password is stored in the vault and rotated weekly.",
        "Your password is required (at least 12 characters).",
        'AttributeOID.CHALLENGE_PASSWORD: "challengePassword",',
        # URLs assigned to auth-ish names carry no secret of their own
        'const MONGO_NO_AUTH = "mongodb://localhost:27017/database";',
    ],
)
def test_non_secrets_next_to_secret_names_are_rejected(
    detector: SecretsDetector, text: str
) -> None:
    assert detector.scan(text) == []


def test_sequential_filler_helper() -> None:
    assert looks_sequential("1234567890")
    assert looks_sequential("a1b2c3d4e5f6g7")
    assert looks_sequential("xyzABCDEFq")
    assert not looks_sequential(soup(40))
    assert not looks_sequential(hexs(32))


# --- credential slots: the syntax says "this is the password" ----------------------------


def _uri(scheme: str, user: str, password: str, rest: str = "db.internal:5432/app") -> str:
    """A URI with userinfo, assembled so this file holds no literal credential URL."""
    return scheme + "://" + user + ":" + password + "@" + rest


def _spans(detector: SecretsDetector, text: str) -> list[str]:
    return [text[f.start : f.end] for f in detector.scan(text)]


@pytest.mark.parametrize(
    "scheme",
    ["postgresql", "postgres", "mysql", "mongodb+srv", "redis", "amqp", "https", "ftp", "ldap",
     "jdbc:postgresql"],
)
def test_weak_literal_in_uri_userinfo_is_found(detector: SecretsDetector, scheme: str) -> None:
    text = "DATABASE_URL=" + _uri(scheme, "app", "sec" + "ret")
    assert _spans(detector, text) == ["sec" + "ret"]


def test_uri_userinfo_with_empty_user_or_several_hosts_is_found(detector: SecretsDetector) -> None:
    assert _spans(detector, _uri("redis", "", "hunter" + "2", "cache:6379")) == ["hunter2"]
    multi = _uri("postgresql", "app", "sec" + "ret", "h1:5432,app:sec" + "ret@h2:5433/db")
    assert "sec" + "ret" in _spans(detector, multi)


@pytest.mark.parametrize(
    "text",
    [
        # the slot's own name, in any case or owned: a template
        _uri("mongodb", "username", "pass" + "word", "localhost:27017/db"),
        _uri("https", "user", "PASS" + "WORD", "example.org"),
        _uri("mysql", "admin", "your_" + "password"),
        _uri("postgresql", "app", "DB_" + "PASSWORD"),
        _uri("postgresql", "app", "my" + "Pass"),
        # the user name again: a well-known default account
        _uri("mongodb", "mongodb", "mongodb", "localhost:27017/db"),
        _uri("postgres", "postgres", "Postgres"),
        _uri("amqp", "guest", "guest", "rabbit:5672/"),
        # references and templates
        _uri("mysql", "user", "${" + "DB_PASSWORD}"),
        _uri("postgres", "$(PGUSER)", "$(" + "PGPASSWORD)", "$(PGHOST)/db"),
        _uri("postgresql", "{username}", "{" + "password}", "{{host}}:5432/db"),
        _uri("postgresql", "{{ user }}", "{{" + "pw}}"),
        _uri("postgresql", "app", "%" + "s"),
        _uri("postgresql", "app", "$" + "DB_PASS"),
        _uri("postgresql", "app", "<" + "password>"),
        # placeholder filler and stand-ins
        _uri("mysql", "admin", "REPLACE_WITH_" + "PASSWORD"),
        _uri("mysql", "admin", "xxxx" + "xxxx"),
        _uri("mysql", "admin", "None"),
        # too short to tell from a documentation pair
        _uri("https", "foo", "bar", "example.org"),
        # curl's user:password slot filled with field names
        "curl --user username:pass" + "word https://example.org",
        "curl -u username:to" + "ken https://example.org",
        "curl -u admin:admin https://example.org",
    ],
)
def test_templates_in_credential_slots_are_not_reported(
    detector: SecretsDetector, text: str
) -> None:
    assert detector.scan(text) == []


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Server=db;Port=5432;User Id=app;Pass" + "word=sec" + "ret;Database=app;", "secret"),
        ("Driver={ODBC};Server=db;Uid=app;Pwd=" + "letmein;", "letmein"),
        ('conn = "Data Source=db;Initial Catalog=app;Password=' + 'Sec' + 'ret1"', "Secret1"),
        ("Password=" + "sec" + "ret;User Id=app;Server=db", "secret"),
    ],
)
def test_password_key_in_connection_string_is_found(
    detector: SecretsDetector, text: str, secret: str
) -> None:
    assert _spans(detector, text) == [secret]


@pytest.mark.parametrize(
    "text",
    [
        "Server=db;User Id=app;Password=pass" + "word;Database=app;",
        "Server=db;User Id=app;Password=${" + "DB_PW};",
        "Server=db;User Id=app;Password={" + "password};",
        "Server=db;User Id=app;Pwd=#{" + "datastore['PW']};",
        "Server=db;User Id=app;Password=<" + "password>;",
        # code statements, not a connection string
        "x = 1; password = sec" + "ret;",
        "cwd = here;\npwd = os.getcwd();",
    ],
)
def test_templates_and_code_in_connection_strings_are_not_reported(
    detector: SecretsDetector, text: str
) -> None:
    assert detector.scan(text) == []


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('new DirectoryEntry("LDAP://dc01", "corp\\\\svc", "sec' + 'ret")', "secret"),
        ('new NetworkCredential("svc", "sec' + 'ret")', "secret"),
        ("curl -u deploy:sec" + "ret https://ci.internal/api", "secret"),
        ("machine ci.internal login deploy password sec" + "ret", "secret"),
        ("CREATE USER app IDENTIFIED BY 'sec" + "ret';", "secret"),
        ("mysql --user=app --password=sec" + "ret --host=db", "secret"),
    ],
)
def test_weak_literal_passed_as_password_argument_is_found(
    detector: SecretsDetector, text: str, secret: str
) -> None:
    assert _spans(detector, text) == [secret]


def test_generic_assignment_of_a_stand_in_word_stays_rejected(detector: SecretsDetector) -> None:
    # outside a credential slot "secret" is more often a word than a password
    assert detector.scan('password = "sec' + 'ret"') == []


def test_redacting_a_slot_finding_keeps_user_and_host(detector: SecretsDetector) -> None:
    from detectors.operators import apply

    text = "connect to " + _uri("postgresql", "app", "sec" + "ret") + " now"
    out = apply(text, detector.scan(text), {"SECRET": "redact"}, hmac_key=b"k", vault=None)
    assert out.text == "connect to postgresql://app:[REDACTED]@db.internal:5432/app now"
    conn = "Server=db;User Id=app;Password=" + "sec" + "ret;Database=app;"
    out = apply(conn, detector.scan(conn), {"SECRET": "redact"}, hmac_key=b"k", vault=None)
    assert out.text == "Server=db;User Id=app;Password=[REDACTED];Database=app;"


@pytest.mark.parametrize(
    "text",
    [
        "mkdir -p build",
        "cp -p notes.txt backup/",
        "psql -h db -p 5432 -U app",
        "docker run -u 1000 -p 8080:80 nginx",
        "docker run -u 1000 -p 127.0.0.1:53:53/udp dns",
        "python -m pytest -p no:cacheprovider",
        "ssh -p 2222 deploy@host",
    ],
)
def test_short_p_flag_that_is_a_port_or_directory_flag_is_not_a_password(
    detector: SecretsDetector, text: str
) -> None:
    assert detector.scan(text) == []


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("psexec \\\\host -u CORP\\admin -p hX7#kq29 cmd", "hX7#kq29"),
        ("sqlcmd -S db -U sa -P Zq8!vR2m", "Zq8!vR2m"),
        ("sshpass -p Tr0ub4dor ssh deploy@host", "Tr0ub4dor"),
        ("vault login --password Zx9qLm2w", "Zx9qLm2w"),
    ],
)
def test_p_flag_after_a_user_flag_or_for_sshpass_is_a_password(
    detector: SecretsDetector, text: str, secret: str
) -> None:
    assert _spans(detector, text) == [secret]


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("mysql -uroot -pS3cretPw1 shop", "S3cretPw1"),
        ('mysqldump -u backup -p"x9!Lq2v" --all-databases > all.sql', "x9!Lq2v"),
    ],
)
def test_password_glued_to_a_mysql_clients_p_flag_is_found(
    detector: SecretsDetector, text: str, secret: str
) -> None:
    assert _spans(detector, text) == [secret]


@pytest.mark.parametrize(
    "text", ["mysql -u root -p", "mysql -u app -p$DB_PASS", "mysql -uroot -ppassword", "echo mysql; mkdir -p build"]
)
def test_mysql_password_prompt_reference_or_template_is_not_a_finding(detector: SecretsDetector, text: str) -> None:
    assert detector.scan(text) == []
