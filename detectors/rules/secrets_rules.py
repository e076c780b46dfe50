"""Credential formats for :mod:`detectors.secrets`, written from the providers' documented formats.

Each rule is one regular expression that compiles both in Python's ``re`` and in
Hyperscan's prefilter mode (no look-around, no back-references). The patterns are
generalised from documented key formats and common configuration syntax, never
copied from evaluation data. The named group ``secret`` marks the
reported span (the whole match when absent). ``check`` selects the post-check:

* ``"format"``   -- a distinctive prefix or structure; only obvious placeholders are
  rejected ("xxxx", "EXAMPLE", "your_key", a run of one character, ...);
* ``"password"`` -- a value assigned to a password-like name: also rejects variable
  references, templates, environment look-ups and stand-in words ("password",
  "secret", "changeme", ...), needs at least 4 characters;
* ``"bare_password"`` -- the same for an unquoted value, which must also not look like
  code (a call, an attribute path, a type name, a variable named after the secret such as
  "resolved_password");
* ``"slot"``     -- a literal in a *credential slot*, where the syntax itself says "this is
  the password": URI userinfo (``scheme://user:PASS@host``), a connection string's
  ``Password=``/``Pwd=`` key, a command or API call taking the password as a given argument
  (``curl -u user:PASS``, ``NetworkCredential(user, PASS)``, ``IDENTIFIED BY 'PASS'``). A
  short, low-entropy word there is still a real (weak) password; rejected are only templates:
  the slot's own name ("password", "your_password", "DB_PASSWORD"), the user name again
  (``postgres:postgres``), references (``${PW}``, ``$(PW)``, ``{password}``, ``%s``,
  ``<pw>``), stand-ins ("None", "string", "changeme") and placeholder filler; at least 4
  characters ("foo:bar" is a documentation pair);
* ``"entropy"``  -- a token assigned to a key/token/secret-like name, or a random-looking
  token next to a context word: also needs mixed character classes and
  Shannon entropy of at least ``min_entropy`` bits per character, no ascending
  keyboard run ("123456", "abcdef"), no ".." (a cut-off display).

* ``"identifier"`` -- an *infrastructure identifier* (rules of kind ``"identifier"``, see
  below): the named groups ``name`` (a bucket, store or storage account name), ``account``
  (a 12-digit AWS account ID) and, for ARNs, ``service`` and ``resource`` are checked
  instead of the whole value: see :func:`detectors.secrets._identifier_template`.

Every rule has a ``kind``. ``"credential"`` (all rules but the last group) is something
that grants access: a key, a token, a password. ``"identifier"`` names internal cloud
infrastructure without granting access: AWS ARNs, a named AWS account ID, S3 / GCS bucket
endpoints and URIs, Azure storage account endpoints, Shopify store domains, ECR registries,
SQS queue URLs and RDS endpoints. Leaving for an external model they are a data-loss
concern, not a leaked credential, so the pipeline acts on them under their own policy
field (flag-only by default) and the evaluation reports recall with and without them.

Every check also rejects a value directly followed by an ellipsis or a mask run
("sk-abc...", "xoxp-1-2-3-####": shown cut off, not leaked), and a rule with a
``user`` group (the user name of the same credential: URI userinfo, ``curl -u``, netrc,
.NET credential arguments) drops matches whose password repeats it ("postgres:postgres@").
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["IDENTIFIER_RULES", "RULES", "SecretRule"]


@dataclass(frozen=True, slots=True)
class SecretRule:
    rule_id: str
    secret_type: str
    pattern: str
    confidence: float
    check: str = "format"
    caseless: bool = False
    min_entropy: float = 3.0
    #: Longest possible match, in characters (the verification window reaches this far back).
    reach: int = 700
    #: The rule keys on a generic variable name: a name that says "public" or "...Id" rejects it.
    named: bool = False
    #: Password checks: how many of lower case, upper case, digits, symbols the value needs.
    min_classes: int = 1
    #: "credential" (grants access) or "identifier" (names infrastructure; flag-only by default).
    kind: str = "credential"


_Q = r"""["'`]?"""  # optional quote
# Names whose value is a credential. Matched as the tail of an identifier
# (``DB_PASSWORD``, ``clientSecret``, ``x-api-key``).
_PASSWORD_NAMES = r"(?:password|passwd|passphrase|pass|pwd|db_?pass)"
_KEY_NAMES = (
    r"(?:api[_\-.]?key|apikey|api[_\-.]?token|access[_\-.]?key(?:[_\-.]?id)?|secret[_\-.]?key|secret|"
    r"client[_\-.]?secret|access[_\-.]?token|auth[_\-.]?token|refresh[_\-.]?token|bearer[_\-.]?token|token|"
    r"private[_\-.]?key|signing[_\-.]?key|encryption[_\-.]?key|master[_\-.]?key|credentials?|auth|key|pat)"
)
_ASSIGN = r"""\s*["'`]?\]?\s*(?:=>|:=|[:=])\s*"""  # also config["API_KEY"] = ...
# An unquoted password's name; a short "pass" must end an identifier ("DB_PASS=", not "bypass:").
_BARE_PASSWORD_NAMES = r"(?:password|passwd|passphrase|pwd|_pass|db_?pass)"
# An Authorization header in HTTP, in a dict/JSON literal or as two arguments, up to its scheme.
_AUTH_HEADER = r"""Authorization["'`]?\s*(?:=>|[:=,])\s*["'`]?"""
# Value characters of a generic token (no quotes, spaces, separators of code).
_TOKEN_CHARS = r"[A-Za-z0-9_\-+/.=~!@#%^&*]"
_ANY_SECRET_NAME = "(?:" + _KEY_NAMES + "|" + _PASSWORD_NAMES + ")"
# Element names whose text is a credential; not a bare <key> (a plist's <key> holds a name).
_XML_KEY_NAMES = (
    r"(?:api[_\-.]?key|apikey|[_\-.]key|[a-z]Key|secret|token|credentials?|private[_\-.]?key)"
)


def _password(rule_id: str, pattern: str, confidence: float) -> SecretRule:
    """A literal in a password position (any case of the surrounding syntax), checked as a password."""
    return SecretRule(
        rule_id, "generic_password", pattern, confidence, "password", caseless=True
    )


def _bare_password(rule_id: str, pattern: str, min_classes: int = 1) -> SecretRule:
    """An unquoted literal in a password position, checked as a bare password (not code)."""
    return SecretRule(rule_id, "generic_password", pattern, 0.6, "bare_password", caseless=True,
                      min_classes=min_classes)


def _slot(rule_id: str, secret_type: str, pattern: str, confidence: float,
          caseless: bool = True) -> SecretRule:
    """A value in a credential slot: reported even when short and plain, unless it is a template."""
    return SecretRule(rule_id, secret_type, pattern, confidence, "slot", caseless=caseless)


def _generic_key(rule_id: str, pattern: str, min_entropy: float = 3.2) -> SecretRule:
    """A high-entropy value under a key/token/secret-like variable name (the name itself is checked too)."""
    return SecretRule(
        rule_id,
        "generic_api_key",
        pattern,
        0.6,
        "entropy",
        caseless=True,
        min_entropy=min_entropy,
        named=True,
    )


def _identifier(rule_id: str, secret_type: str, pattern: str, caseless: bool = True) -> SecretRule:
    """An infrastructure identifier: reported as kind "identifier", its name checked for templates."""
    return SecretRule(rule_id, secret_type, pattern, 0.4, "identifier", caseless=caseless,
                      reach=400, kind="identifier")


# Left edge of a host name or URI: the start, a space, a quote, a URL's "/" or "@", a separator.
_HOST_EDGE = r"""(?:^|[\s/"'`=(@,;<\[])"""
# A bucket name as the providers define it: 3-63 characters, letters, digits, dots, hyphens,
# underscores (GCS; legacy S3), starting and ending with a letter or digit.
_BUCKET = r"[a-z0-9][a-z0-9._\-]{1,61}[a-z0-9]"
# A DNS-safe bucket name (virtual-hosted endpoints): no underscores.
_DNS_BUCKET = r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]"
_AWS_DOMAIN = r"\.amazonaws\.com(?:\.cn)?"

#: Infrastructure identifiers (kind "identifier"). Not credentials: what they name is internal.
IDENTIFIER_RULES: tuple[SecretRule, ...] = (
    # arn:partition:service:region:account-id:resource (region and account may be empty or "*";
    # "aws" as the account is an AWS-managed resource, which the post-check drops as public).
    _identifier(
        "aws-arn",
        "aws_arn",
        r"""\b(?P<secret>arn:aws(?:-[a-z]+){0,3}:(?P<service>[a-z0-9][a-z0-9\-]{0,40}):[a-z0-9\-*]{0,30}:"""
        r"""(?P<account>\d{12}|aws|\*)?:(?P<resource>[^\s"'`<>,;(){}\[\]\\|]{0,255}[^\s"'`<>,;(){}\[\]\\|.:]))""",
        caseless=False,
    ),
    # A 12-digit AWS account ID where the text names it as one ("AWS_ACCOUNT_ID=", "aws account: ").
    _identifier(
        "aws-account-id",
        "aws_account_id",
        r"""aws[_\-. ]?account(?:[_\-. ]?(?:id|number|no))?["'`]?\s*(?:=>|[:=]|\bis\b)?\s*["'`]?"""
        r"""(?P<secret>(?P<account>\d{12}|\d{4}-\d{4}-\d{4}))\b""",
    ),
    # Virtual-hosted S3: bucket.s3.amazonaws.com, bucket.s3.us-east-2.amazonaws.com,
    # bucket.s3-us-east-2.amazonaws.com, bucket.s3-website..., bucket.s3-accelerate...
    _identifier(
        "aws-s3-bucket-host",
        "aws_s3_bucket",
        _HOST_EDGE + r"(?P<secret>(?P<name>" + _DNS_BUCKET + r")\.s3(?:[.\-][a-z0-9\-]{1,40}){0,3}" + _AWS_DOMAIN + ")",
    ),
    # Path-style S3: s3.amazonaws.com/bucket, s3.eu-west-1.amazonaws.com/bucket.
    _identifier(
        "aws-s3-bucket-path",
        "aws_s3_bucket",
        _HOST_EDGE + r"(?P<secret>s3(?:[.\-][a-z0-9\-]{1,40}){0,3}" + _AWS_DOMAIN + "/(?P<name>" + _BUCKET + r"))\b",
    ),
    # s3://bucket (also Hadoop's s3a:// and s3n://).
    _identifier(
        "aws-s3-uri",
        "aws_s3_bucket",
        r"\b(?P<secret>s3[an]?://(?P<name>" + _BUCKET + r"))\b",
    ),
    # GCS: storage.googleapis.com/bucket (and the JSON API's .../storage/v1/b/bucket),
    # storage.cloud.google.com/bucket, bucket.storage.googleapis.com, gs://bucket.
    _identifier(
        "gcs-bucket-path",
        "gcs_bucket",
        _HOST_EDGE + r"(?P<secret>(?:storage\.googleapis\.com|storage\.cloud\.google\.com|www\.googleapis\.com/storage/v1/b)"
        r"/(?:(?:download/|upload/)?storage/v1/b/)?(?P<name>" + _BUCKET + r"))\b",
    ),
    _identifier(
        "gcs-bucket-host",
        "gcs_bucket",
        _HOST_EDGE + r"(?P<secret>(?P<name>" + _BUCKET + r")\.storage\.googleapis\.com)",
    ),
    _identifier(
        "gcs-uri",
        "gcs_bucket",
        r"\b(?P<secret>gs://(?P<name>" + _BUCKET + r"))\b",
    ),
    # Azure storage account endpoints: account.blob.core.windows.net (queue, table, file, dfs,
    # web; also the China and US Government clouds). Account names: 3-24 lower-case letters/digits.
    _identifier(
        "azure-storage-account",
        "azure_storage_account",
        _HOST_EDGE + r"(?P<secret>(?P<name>[a-z0-9]{3,24})\.(?:blob|queue|table|file|dfs|web)\.core\."
        r"(?:windows\.net|chinacloudapi\.cn|usgovcloudapi\.net))",
    ),
    # Shopify store domains: store.myshopify.com (sub-labels kept: "shop.brand.myshopify.com").
    _identifier(
        "shopify-domain",
        "shopify_domain",
        r"\b(?P<secret>(?:[a-z0-9][a-z0-9\-]{0,60}\.){0,3}(?P<name>[a-z0-9][a-z0-9\-]{1,60})\.myshopify\.com)\b",
    ),
    # Endpoints that carry the AWS account ID: ECR registries and SQS queue URLs.
    _identifier(
        "aws-ecr-registry",
        "aws_ecr_registry",
        r"\b(?P<secret>(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.[a-z0-9\-]{4,30}" + _AWS_DOMAIN + ")",
    ),
    _identifier(
        "aws-sqs-queue-url",
        "aws_sqs_queue",
        r"\b(?P<secret>(?:sqs\.[a-z0-9\-]{4,30}|[a-z0-9\-]{4,30}\.queue)" + _AWS_DOMAIN
        + r"/(?P<account>\d{12})/[A-Za-z0-9_\-]{1,80}(?:\.fifo)?)",
    ),
    # RDS / Aurora endpoints: instance.<12-character cluster id>.region.rds.amazonaws.com.
    _identifier(
        "aws-rds-endpoint",
        "aws_rds_endpoint",
        _HOST_EDGE + r"(?P<secret>(?P<name>[a-z][a-z0-9\-]{0,62})\.(?:cluster-(?:ro-)?)?[a-z0-9]{12}\.[a-z0-9\-]{4,30}\.rds"
        + _AWS_DOMAIN + ")",
    ),
)

RULES: tuple[SecretRule, ...] = (
    # --- LLM providers -------------------------------------------------------------------
    SecretRule(
        "anthropic-api-key",
        "anthropic_api_key",
        r"\b(?P<secret>sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_\-]{80,120})",
        0.99,
    ),
    SecretRule(
        "openai-project-key",
        "openai_api_key",
        r"\b(?P<secret>sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,200})",
        0.99,
    ),
    SecretRule(
        "openai-api-key",
        "openai_api_key",
        r"\b(?P<secret>sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})",
        0.99,
    ),
    SecretRule(
        "openai-api-key-generic",
        "openai_api_key",
        r"\b(?P<secret>sk-[A-Za-z0-9]{32,64})\b",
        0.85,
        "entropy",
        min_entropy=3.5,
    ),
    SecretRule(
        "groq-api-key", "groq_api_key", r"\b(?P<secret>gsk_[A-Za-z0-9]{52})\b", 0.95
    ),
    SecretRule(
        "perplexity-api-key",
        "perplexity_api_key",
        r"\b(?P<secret>pplx-[A-Za-z0-9]{48})\b",
        0.95,
    ),
    SecretRule(
        "huggingface-token",
        "huggingface_token",
        r"\b(?P<secret>(?:hf|api_org)_[A-Za-z]{34})\b",
        0.9,
        "entropy",
        min_entropy=3.5,
    ),
    SecretRule(
        "tavily-api-key",
        "tavily_api_key",
        r"\b(?P<secret>tvly-(?:dev-|prod-)?[A-Za-z0-9]{32})\b",
        0.95,
    ),
    SecretRule(
        "jina-api-key",
        "jina_api_key",
        r"\b(?P<secret>jina_[a-f0-9]{32}[A-Za-z0-9_\-]{28,40})",
        0.95,
    ),
    SecretRule(
        "firecrawl-api-key",
        "firecrawl_api_key",
        r"\b(?P<secret>fc-[a-f0-9]{32})\b",
        0.9,
    ),
    # --- cloud ---------------------------------------------------------------------------
    SecretRule(
        "aws-access-key-id",
        "aws_access_key_id",
        r"\b(?P<secret>(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AIDA|AROA|AGPA|ANPA|AIPA)[A-Z2-7]{16})\b",
        0.95,
    ),
    SecretRule(
        "aws-secret-access-key",
        "aws_secret_access_key",
        r"(?:aws|amazon)?_?(?:secret)_?(?:access)?_?key(?:_?id)?"
        + _ASSIGN
        + _Q
        + r"(?P<secret>[A-Za-z0-9/+=]{40})\b",
        0.9,
        "entropy",
        caseless=True,
        min_entropy=3.5,
    ),
    SecretRule(
        "aws-bedrock-api-key",
        "aws_bedrock_api_key",
        r"\b(?P<secret>(?:ABSK[A-Za-z0-9+/]{100,}={0,2}|bedrock-api-key-[A-Za-z0-9+/=]{60,}))",
        0.95,
    ),
    SecretRule(
        "gcp-api-key",
        "gcp_api_key",
        r"\b(?P<secret>AIza[0-9A-Za-z_\-]{35})\b",
        0.9,
        "entropy",
        min_entropy=3.5,
    ),
    SecretRule(
        "gcp-service-account",
        "gcp_service_account",
        r"""["']type["']\s*:\s*["']service_account["'][\s\S]{0,400}?["']private_key["']\s*:\s*["'](?P<secret>-----BEGIN[A-Z ]*PRIVATE KEY-----[^"']{64,})""",
        0.99,
        reach=8000,
    ),
    SecretRule(
        "google-oauth-client-secret",
        "google_oauth_client_secret",
        r"\b(?P<secret>GOCSPX-[A-Za-z0-9_\-]{28})\b",
        0.95,
    ),
    SecretRule(
        "google-oauth-access-token",
        "google_oauth_access_token",
        r"\b(?P<secret>ya29\.[0-9A-Za-z_\-]{30,})",
        0.9,
    ),
    SecretRule(
        "azure-storage-connection-string",
        "azure_connection_string",
        r"(?P<secret>(?:DefaultEndpointsProtocol=https?;)?AccountName=[A-Za-z0-9\-]{3,24};AccountKey=[A-Za-z0-9+/]{80,90}={0,2})",
        0.99,
    ),
    SecretRule(
        "azure-shared-access-key",
        "azure_connection_string",
        r"(?:Endpoint|HostName)=[^;\s]{4,200};\s*(?:SharedAccessKeyName=[^;\s]{1,100};\s*)?(?:SharedAccessKey|Secret|AccessKey)=(?P<secret>[A-Za-z0-9+/]{30,90}={0,2})",
        0.95,
    ),
    SecretRule(
        "azure-app-config-connection",
        "azure_connection_string",
        r"(?:Endpoint=)?https://[a-z0-9\-]+\.azconfig\.io;\s*Id=[^;\s]{2,};\s*Secret=(?P<secret>[A-Za-z0-9+/=]{20,})",
        0.95,
    ),
    SecretRule(
        "azure-ad-client-secret",
        "azure_client_secret",
        r"""(?:^|[\s"'`=:(])(?P<secret>[A-Za-z0-9_~.\-]{3}\dQ~[A-Za-z0-9_~.\-]{31,34})\b""",
        0.9,
        "entropy",
        min_entropy=3.5,
    ),
    SecretRule(
        "azure-devops-pat",
        "azure_devops_pat",
        r"\b(?P<secret>[A-Za-z0-9]{52,76}AZDO[A-Za-z0-9]{4})\b",
        0.9,
        "entropy",
        min_entropy=3.8,
    ),
    SecretRule(
        "digitalocean-token",
        "digitalocean_token",
        r"\b(?P<secret>do[opr]_v1_[a-f0-9]{64})\b",
        0.95,
    ),
    SecretRule(
        "heroku-api-key",
        "heroku_api_key",
        r"heroku[\w\-. ]{0,30}(?:key|token|secret|auth)"
        + _ASSIGN
        + _Q
        + r"(?P<secret>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",
        0.85,
        caseless=True,
    ),
    SecretRule(
        "databricks-token",
        "databricks_token",
        r"\b(?P<secret>dapi[a-f0-9]{32}(?:-\d)?)\b",
        0.9,
        "entropy",
        min_entropy=3.0,
    ),
    SecretRule(
        "cloudflare-api-token",
        "cloudflare_api_token",
        r"cloudflare[\w\-. ]{0,30}(?:key|token)"
        + _ASSIGN
        + _Q
        + r"(?P<secret>[A-Za-z0-9_\-]{40})\b",
        0.85,
        "entropy",
        caseless=True,
    ),
    SecretRule(
        "vercel-token",
        "vercel_token",
        r"vercel[\w\-. ]{0,30}(?:key|token)"
        + _ASSIGN
        + _Q
        + r"(?P<secret>[A-Za-z0-9]{24})\b",
        0.85,
        "entropy",
        caseless=True,
    ),
    # --- source hosting / CI -------------------------------------------------------------
    SecretRule(
        "github-token",
        "github_token",
        r"\b(?P<secret>gh[pousr]_[A-Za-z0-9]{36,255})\b",
        0.95,
    ),
    SecretRule(
        "github-fine-grained-pat",
        "github_token",
        r"\b(?P<secret>github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})\b",
        0.99,
    ),
    SecretRule(
        "gitlab-token",
        "gitlab_token",
        r"\b(?P<secret>gl(?:pat|ptt|rt|dt|cbt|oas|soat|ft|imt|agent)-[A-Za-z0-9_\-]{20,64})",
        0.95,
    ),
    SecretRule("npm-token", "npm_token", r"\b(?P<secret>npm_[A-Za-z0-9]{36})\b", 0.95),
    SecretRule(
        "pypi-token", "pypi_token", r"\b(?P<secret>pypi-AgE[A-Za-z0-9_\-]{50,})", 0.99
    ),
    SecretRule(
        "rubygems-api-key",
        "rubygems_api_key",
        r"\b(?P<secret>rubygems_[a-f0-9]{48})\b",
        0.95,
    ),
    SecretRule(
        "sourcegraph-token",
        "sourcegraph_token",
        r"\b(?P<secret>sgp_(?:[a-fA-F0-9]{16}_)?[a-fA-F0-9]{40})\b",
        0.95,
    ),
    SecretRule(
        "sourcegraph-legacy-token",
        "sourcegraph_token",
        r"sourcegraph[\w\-. ]{0,30}"
        + _ASSIGN
        + _Q
        + r"(?P<secret>[a-fA-F0-9]{40})\b",
        0.85,
        caseless=True,
    ),
    SecretRule(
        "segment-token", "segment_token", r"\b(?P<secret>sgp_[A-Za-z0-9]{64})\b", 0.9
    ),
    SecretRule(
        "sonarqube-token",
        "sonarqube_token",
        r"\b(?P<secret>sq[pua]_[a-f0-9]{40})\b",
        0.95,
    ),
    SecretRule(
        "dependency-track-key",
        "dependency_track_key",
        r"\b(?P<secret>odt_[A-Za-z0-9]{32,40})\b",
        0.95,
    ),
    SecretRule(
        "teamcity-token",
        "teamcity_token",
        r"\b(?P<secret>eyJ0eXAiOiAiVENWMiJ9\.[A-Za-z0-9_\-]{36}\.[A-Za-z0-9_\-]{48})",
        0.95,
    ),
    SecretRule(
        "sonarqube-login",
        "sonarqube_token",
        r"""sonar[\w.]{0,20}(?:login|token)[\s'",=:]{1,8}(?P<secret>[a-f0-9]{40})\b""",
        0.85,
        caseless=True,
    ),
    SecretRule(
        "jenkins-token",
        "jenkins_token",
        r"jenkins[\w\-. ]{0,30}(?:token|crumb|key)"
        + _ASSIGN
        + _Q
        + r"(?P<secret>[0-9a-f]{32,34})\b",
        0.85,
        caseless=True,
    ),
    SecretRule(
        "artifactory-key",
        "artifactory_key",
        r"\b(?P<secret>AKCp[A-Za-z0-9]{69})\b",
        0.95,
    ),
    SecretRule(
        "terraform-cloud-token",
        "terraform_token",
        r"\b(?P<secret>[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_\-=]{60,70})",
        0.95,
    ),
    SecretRule(
        "vault-token",
        "vault_token",
        r"\b(?P<secret>hv[sbr]\.[A-Za-z0-9_\-]{24,250})",
        0.9,
        "entropy",
        min_entropy=3.5,
    ),
    SecretRule(
        "vault-legacy-token",
        "vault_token",
        r"""(?:vault|token)[\w\-. ]{0,20}"""
        + _ASSIGN
        + _Q
        + r"(?P<secret>[sb]\.[A-Za-z0-9]{24})\b",
        0.85,
        caseless=True,
    ),
    SecretRule(
        "doppler-token",
        "doppler_token",
        r"\b(?P<secret>dp\.(?:st|sa|ct|pt|scim|audit)\.[A-Za-z0-9_\-.]{40,64})",
        0.95,
    ),
    SecretRule(
        "prefect-token", "prefect_token", r"\b(?P<secret>pnu_[A-Za-z0-9]{36})\b", 0.95
    ),
    SecretRule(
        "octopus-deploy-key",
        "octopus_key",
        r"\b(?P<secret>API-[A-Z0-9]{26})\b",
        0.85,
        "entropy",
        min_entropy=3.3,
    ),
    SecretRule(
        "infracost-token",
        "infracost_token",
        r"\b(?P<secret>ico-[A-Za-z0-9]{32})\b",
        0.95,
    ),
    SecretRule(
        "kubernetes-bootstrap-token",
        "kubernetes_token",
        r"""token[\w\-]{0,30}[\s"'=:]{1,6}(?P<secret>[a-z0-9]{6}\.[a-z0-9]{16})\b""",
        0.85,
        "entropy",
        min_entropy=3.0,
    ),
    SecretRule(
        "openshift-token",
        "openshift_token",
        r"\b(?P<secret>sha256~[A-Za-z0-9_\-]{43})\b",
        0.95,
    ),
    # --- chat, mail, payments, SaaS ------------------------------------------------------
    SecretRule(
        "slack-token",
        "slack_token",
        r"\b(?P<secret>xox[abposre]-(?:\d{8,14}-){1,3}[0-9A-Za-z]{10,64}|xox[ar]-\d-[0-9A-Za-z\-]{20,250})\b",
        0.9,
        "entropy",
        min_entropy=3.0,
    ),
    SecretRule(
        "slack-config-token",
        "slack_token",
        r"\b(?P<secret>xoxe(?:\.xox[bp])?-\d-[A-Z0-9]{140,180})\b",
        0.95,
    ),
    SecretRule(
        "slack-webhook",
        "slack_webhook",
        r"(?P<secret>https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_]{20,120})",
        0.95,
    ),
    SecretRule(
        "teams-webhook-legacy",
        "teams_webhook",
        r"(?P<secret>https://outlook\.office(?:365)?\.com/webhook/[a-f0-9\-]{36}@[a-f0-9\-]{36}/IncomingWebhook/[a-f0-9]{32}/[a-f0-9\-]{36})",
        0.95,
    ),
    SecretRule(
        "teams-webhook",
        "teams_webhook",
        r"(?P<secret>https://[a-z0-9\-]+\.webhook\.office\.com/webhookb2/[A-Za-z0-9@\-]{40,}/IncomingWebhook/[a-f0-9]{32}/[a-f0-9\-]{36})",
        0.95,
    ),
    SecretRule(
        "discord-webhook",
        "discord_webhook",
        r"(?P<secret>https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d{17,20}/[A-Za-z0-9_\-]{60,70})",
        0.95,
    ),
    SecretRule(
        "discord-bot-token",
        "discord_bot_token",
        r"\b(?P<secret>[MNO][A-Za-z0-9_\-]{23,25}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,38})\b",
        0.85,
        "entropy",
        min_entropy=4.0,
    ),
    SecretRule(
        "telegram-bot-token",
        "telegram_bot_token",
        r"\b(?P<secret>\d{8,10}:AA[A-Za-z0-9_\-]{33})\b",
        0.9,
    ),
    SecretRule(
        "facebook-app-token",
        "facebook_token",
        r"\b(?P<secret>\d{15,16}\|[A-Za-z0-9_\-]{27})\b",
        0.85,
        "entropy",
        min_entropy=3.0,
    ),
    SecretRule(
        "stripe-key",
        "stripe_key",
        r"\b(?P<secret>(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,247})\b",
        0.95,
    ),
    SecretRule(
        "twilio-api-key",
        "twilio_key",
        r"\b(?P<secret>SK[0-9a-fA-F]{32})\b",
        0.8,
        "entropy",
        min_entropy=3.0,
    ),
    SecretRule(
        "twilio-account-sid",
        "twilio_key",
        r"\b(?P<secret>AC[0-9a-f]{32})\b",
        0.7,
        "entropy",
        min_entropy=3.0,
    ),
    SecretRule(
        "sendgrid-api-key",
        "sendgrid_api_key",
        r"\b(?P<secret>SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43})\b",
        0.99,
    ),
    SecretRule(
        "mailgun-api-key", "mailgun_api_key", r"\b(?P<secret>key-[a-f0-9]{32})\b", 0.85
    ),
    SecretRule(
        "mailchimp-api-key",
        "mailchimp_api_key",
        r"\b(?P<secret>[a-f0-9]{32}-us\d{1,2})\b",
        0.85,
    ),
    SecretRule(
        "postmark-token",
        "postmark_token",
        r"postmark[\w\-. ]{0,30}(?:key|token)"
        + _ASSIGN
        + _Q
        + r"(?P<secret>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",
        0.85,
        caseless=True,
    ),
    SecretRule(
        "shopify-token",
        "shopify_token",
        r"\b(?P<secret>shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})\b",
        0.95,
    ),
    SecretRule(
        "square-token",
        "square_token",
        r"\b(?P<secret>(?:EAAA|sq0atp-|sq0csp-)[A-Za-z0-9_\-]{22,60})\b",
        0.85,
        "entropy",
        min_entropy=3.5,
    ),
    SecretRule(
        "facebook-access-token",
        "facebook_token",
        r"\b(?P<secret>EAA[A-Za-z0-9]{80,})",
        0.9,
        "entropy",
        min_entropy=3.5,
    ),
    SecretRule(
        "notion-token",
        "notion_token",
        r"\b(?P<secret>(?:secret_[A-Za-z0-9]{43}|ntn_[0-9]{11}[A-Za-z0-9]{35}))\b",
        0.9,
    ),
    SecretRule(
        "atlassian-token",
        "atlassian_token",
        r"\b(?P<secret>ATATT3[A-Za-z0-9_\-=]{180,})",
        0.95,
    ),
    SecretRule(
        "figma-token",
        "figma_token",
        r"\b(?P<secret>fig[dou]_[A-Za-z0-9_\-]{40,})",
        0.95,
    ),
    SecretRule(
        "linear-api-key",
        "linear_api_key",
        r"\b(?P<secret>lin_api_[A-Za-z0-9]{40})\b",
        0.95,
    ),
    SecretRule(
        "grafana-token",
        "grafana_token",
        r"\b(?P<secret>(?:glsa_[A-Za-z0-9]{32}_[a-f0-9]{8}|glc_[A-Za-z0-9+/]{32,400}={0,2}|eyJrIjoi[A-Za-z0-9]{60,100}={0,2}))",
        0.95,
    ),
    SecretRule(
        "newrelic-key",
        "newrelic_key",
        r"\b(?P<secret>(?:NRAK-[A-Z0-9]{27}|NRI[IQ]-[A-Za-z0-9_\-]{32}|NRJS-[a-f0-9]{19}|NRAA-[a-f0-9]{27}|[a-f0-9]{36}NRAL|px-(?:api|dep)-[a-f0-9\-]{36}))\b",
        0.95,
    ),
    SecretRule(
        "dynatrace-token",
        "dynatrace_token",
        r"\b(?P<secret>dt0[a-z]\d{2}\.[A-Z0-9]{24}\.[A-Z0-9]{64})\b",
        0.95,
    ),
    SecretRule(
        "mapbox-token",
        "mapbox_token",
        r"\b(?P<secret>[st]k\.eyJ[A-Za-z0-9_\-]{20,}\.[A-Za-z0-9_\-]{20,})",
        0.9,
    ),
    SecretRule(
        "okta-token",
        "okta_token",
        r"okta[\w\-. ]{0,30}(?:key|token|ssws)"
        + _ASSIGN
        + r"""(?:["'`]?SSWS\s+)?"""
        + _Q
        + r"(?P<secret>00[A-Za-z0-9_\-]{40})\b",
        0.85,
        caseless=True,
    ),
    SecretRule(
        "okta-ssws", "okta_token", r"SSWS\s+(?P<secret>00[A-Za-z0-9_\-]{40})\b", 0.9
    ),
    SecretRule(
        "1password-service-token",
        "onepassword_token",
        r"\b(?P<secret>ops_eyJ[A-Za-z0-9+/=_\-]{100,})",
        0.95,
    ),
    SecretRule(
        "1password-secret-key",
        "onepassword_secret_key",
        r"\b(?P<secret>A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5})\b",
        0.95,
    ),
    SecretRule(
        "tailscale-key",
        "tailscale_key",
        r"(?:^|[^A-Za-z])(?P<secret>tskey-[a-z]+-[A-Za-z0-9]{6,}-[A-Za-z0-9]{16,})",
        0.95,
    ),
    SecretRule(
        "age-secret-key",
        "age_secret_key",
        r"\b(?P<secret>AGE-SECRET-KEY-1[0-9A-Z]{58})\b",
        0.99,
    ),
    SecretRule(
        "easypost-token",
        "easypost_token",
        r"\b(?P<secret>EZ[AT]K[A-Za-z0-9]{54})\b",
        0.95,
    ),
    SecretRule(
        "privateai-token",
        "privateai_token",
        r"private[_\-]?ai[\w\-. ]{0,30}(?:key|token)"
        + _ASSIGN
        + _Q
        + r"(?P<secret>[A-Za-z0-9]{32})\b",
        0.85,
        "entropy",
        caseless=True,
    ),
    SecretRule(
        "adafruit-key", "adafruit_key", r"\b(?P<secret>aio_[A-Za-z0-9]{28})\b", 0.9
    ),
    SecretRule(
        "stackhawk-key",
        "stackhawk_key",
        r"\b(?P<secret>hawk\.[A-Za-z0-9_\-]{20}\.[A-Za-z0-9_\-]{20})\b",
        0.95,
    ),
    SecretRule(
        "meraki-key",
        "meraki_key",
        r"meraki[\w\-. ]{0,30}(?:key|token)"
        + _ASSIGN
        + _Q
        + r"(?P<secret>[0-9a-f]{40})\b",
        0.85,
        caseless=True,
    ),
    SecretRule(
        "sumologic-key",
        "sumologic_key",
        r"sumo[\w\-. ]{0,30}(?:id|key|token)"
        + _ASSIGN
        + _Q
        + r"(?P<secret>(?:su[A-Za-z0-9]{12}|[A-Za-z0-9]{64}))\b",
        0.85,
        "entropy",
        caseless=True,
    ),
    SecretRule(
        "thingsboard-device-token",
        "thingsboard_token",
        r"/api/v1/(?P<secret>[A-Za-z0-9]{20})/(?:telemetry|attributes|rpc|claim)\b",
        0.7,
        "entropy",
        min_entropy=3.0,
    ),
    SecretRule(
        "truenas-api-key",
        "truenas_api_key",
        r"\b(?P<secret>\d{1,5}-[A-Za-z0-9]{64})\b",
        0.85,
        "entropy",
        min_entropy=4.5,
    ),
    SecretRule(
        "salesforce-token",
        "salesforce_token",
        r"\b(?P<secret>00[A-Za-z0-9]{13}![A-Za-z0-9_.]{96})",
        0.9,
    ),
    SecretRule(
        "twitch-stream-key",
        "twitch_stream_key",
        r"\b(?P<secret>live_\d{6,10}_[A-Za-z0-9]{30})\b",
        0.9,
    ),
    SecretRule(
        "laravel-app-key",
        "laravel_app_key",
        r"""APP_KEY\s*[=:]\s*["']?(?P<secret>base64:[A-Za-z0-9+/]{43}=)""",
        0.95,
    ),
    SecretRule(
        "django-secret-key",
        "django_secret_key",
        r"SECRET_KEY" + _ASSIGN + r"""["'](?P<secret>[^"'\s]{40,60})["']""",
        0.85,
        "entropy",
        min_entropy=3.5,
    ),
    SecretRule(
        "particle-token",
        "particle_token",
        r"particle[\w\-. ]{0,40}(?:token|key|access_token)"
        + _ASSIGN
        + _Q
        + r"(?P<secret>[a-f0-9]{40})\b",
        0.85,
        caseless=True,
    ),
    SecretRule(
        "blynk-token",
        "blynk_token",
        r"blynk[\w\-. /]{0,40}(?:token|auth|secret)"
        + _ASSIGN
        + _Q
        + r"(?P<secret>[A-Za-z0-9_\-]{32})\b",
        0.85,
        caseless=True,
    ),
    # --- more providers with a documented prefix ---------------------------------------------
    SecretRule(
        "openrouter-api-key",
        "openrouter_api_key",
        r"\b(?P<secret>sk-or-v1-[a-f0-9]{64})\b",
        0.95,
    ),
    SecretRule("xai-api-key", "xai_api_key", r"\b(?P<secret>xai-[A-Za-z0-9]{80})\b", 0.95),
    SecretRule(
        "replicate-api-token",
        "replicate_api_token",
        r"\b(?P<secret>r8_[A-Za-z0-9]{37})\b",
        0.9,
        "entropy",
        min_entropy=3.5,
    ),
    SecretRule(
        "langsmith-api-key",
        "langsmith_api_key",
        r"\b(?P<secret>lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10})\b",
        0.95,
    ),
    SecretRule(
        "pinecone-api-key",
        "pinecone_api_key",
        r"\b(?P<secret>pcsk_[A-Za-z0-9]{4,8}_[A-Za-z0-9]{40,80})\b",
        0.9,
        "entropy",
        min_entropy=3.5,
    ),
    SecretRule(
        "elevenlabs-api-key",
        "elevenlabs_api_key",
        r"\b(?P<secret>sk_[a-f0-9]{48})\b",
        0.8,
        "entropy",
        min_entropy=3.3,
    ),
    SecretRule(
        "stripe-webhook-secret",
        "stripe_key",
        r"\b(?P<secret>whsec_[A-Za-z0-9+/]{32,64}={0,2})",
        0.95,
    ),
    SecretRule(
        "supabase-token",
        "supabase_token",
        r"\b(?P<secret>sbp_[a-f0-9]{40}|sb_secret_[A-Za-z0-9_\-]{31,64})\b",
        0.95,
    ),
    SecretRule(
        "heroku-api-key-v2",
        "heroku_api_key",
        r"\b(?P<secret>HRKU-[A-Za-z0-9_\-]{60})\b",
        0.95,
    ),
    SecretRule(
        "postman-api-key",
        "postman_api_key",
        r"\b(?P<secret>PMAK-[a-f0-9]{24}-[a-f0-9]{34})\b",
        0.95,
    ),
    SecretRule(
        "pulumi-token", "pulumi_token", r"\b(?P<secret>pul-[a-f0-9]{40})\b", 0.95
    ),
    SecretRule(
        "sentry-token",
        "sentry_token",
        r"\b(?P<secret>sntrys_eyJ[A-Za-z0-9+/=_\-]{60,}|sntryu_[a-f0-9]{64})",
        0.95,
    ),
    SecretRule(
        "brevo-api-key",
        "brevo_api_key",
        r"\b(?P<secret>xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16})\b",
        0.95,
    ),
    SecretRule(
        "shippo-api-token",
        "shippo_api_token",
        r"\b(?P<secret>shippo_(?:live|test)_[a-f0-9]{40})\b",
        0.95,
    ),
    SecretRule(
        "bitbucket-app-password",
        "bitbucket_token",
        r"\b(?P<secret>ATBB[A-Za-z0-9_=.\-]{28,})",
        0.9,
        "entropy",
        min_entropy=3.5,
    ),
    SecretRule(
        "typeform-token",
        "typeform_token",
        r"\b(?P<secret>tfp_[A-Za-z0-9_\-=.]{59})",
        0.9,
    ),
    SecretRule(
        "planetscale-token",
        "planetscale_token",
        r"\b(?P<secret>pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_\-=.]{32,64})",
        0.95,
    ),
    SecretRule(
        "flyio-token",
        "flyio_token",
        r"\b(?P<secret>fo1_[A-Za-z0-9_\-]{43}|fm[12][ar]?_[A-Za-z0-9+/]{100,}={0,3})",
        0.95,
    ),
    SecretRule(
        "flutterwave-secret-key",
        "flutterwave_key",
        r"\b(?P<secret>FLWSECK(?:_TEST)?-[a-h0-9]{32}-X)",
        0.95,
    ),
    SecretRule(
        "duffel-token",
        "duffel_token",
        r"\b(?P<secret>duffel_(?:test|live)_[A-Za-z0-9_\-=]{43})",
        0.95,
    ),
    SecretRule(
        "frameio-token",
        "frameio_token",
        r"\b(?P<secret>fio-u-[A-Za-z0-9_\-=]{64})",
        0.95,
    ),
    SecretRule(
        "readme-api-key",
        "readme_api_key",
        r"\b(?P<secret>rdme_[a-z0-9]{70})\b",
        0.95,
    ),
    SecretRule(
        "clojars-token",
        "clojars_token",
        r"\b(?P<secret>CLOJARS_[a-z0-9]{60})\b",
        0.95,
    ),
    SecretRule(
        "contentful-token",
        "contentful_token",
        r"\b(?P<secret>CFPAT-[A-Za-z0-9_\-=]{43})",
        0.95,
    ),
    SecretRule(
        "docker-hub-pat",
        "docker_hub_token",
        r"\b(?P<secret>dckr_pat_[A-Za-z0-9_\-]{27})",
        0.95,
    ),
    SecretRule(
        "alibaba-access-key-id",
        "alibaba_access_key",
        r"\b(?P<secret>LTAI[A-Za-z0-9]{12,20})\b",
        0.85,
        "entropy",
        min_entropy=3.3,
    ),
    SecretRule(
        "tencent-secret-id",
        "tencent_secret_id",
        r"\b(?P<secret>AKID[A-Za-z0-9]{32})\b",
        0.85,
        "entropy",
        min_entropy=3.5,
    ),
    SecretRule(
        "azure-sas-signature",
        "azure_sas_token",
        r"[?&]sv=\d{4}-\d{2}-\d{2}&[^\s\"'<>]{0,300}?\bsig=(?P<secret>[A-Za-z0-9%+/]{40,}(?:%3D|=){0,2})",
        0.9,
    ),
    SecretRule(
        "google-oauth-refresh-token",
        "google_oauth_refresh_token",
        r"\b(?P<secret>1//0[A-Za-z0-9_\-]{40,})",
        0.85,
        "entropy",
        min_entropy=3.5,
    ),
    SecretRule(
        "firebase-fcm-server-key",
        "firebase_fcm_key",
        r"\b(?P<secret>AAAA[A-Za-z0-9_\-]{7}:APA91b[A-Za-z0-9_\-]{134})",
        0.95,
    ),
    SecretRule(
        "slack-app-token",
        "slack_token",
        r"\b(?P<secret>xapp-\d-[A-Z0-9]{8,14}-\d{8,16}-[a-f0-9]{32,64})\b",
        0.95,
    ),
    SecretRule(
        "asana-pat",
        "asana_token",
        r"\b(?P<secret>[12]/\d{10,20}(?:/\d{10,20})?:[A-Za-z0-9]{32})\b",
        0.9,
        "entropy",
        min_entropy=3.3,
    ),
    # --- keys, tokens and hashes with a structure -----------------------------------------
    SecretRule(
        "jwt",
        "jwt",
        r"(?:\b|_)(?P<secret>eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{20,})",
        0.85,
    ),
    SecretRule(
        "private-key",
        "private_key",
        r"(?P<secret>-----BEGIN[ A-Z0-9]{0,24}PRIVATE KEY(?: BLOCK)?-----[\s\S]{64,12000}?-----END[ A-Z0-9]{0,24}PRIVATE KEY(?: BLOCK)?-----)",
        0.99,
        reach=12100,
    ),
    SecretRule(
        "private-key-escaped",
        "private_key",
        r"(?P<secret>-----BEGIN[ A-Z0-9]{0,24}PRIVATE KEY-----(?:\\n|\\r\\n)[A-Za-z0-9+/=\\]{64,})",
        0.95,
    ),
    SecretRule(
        "private-key-base64",
        "private_key",
        r"\b(?P<secret>LS0tLS1CRUdJTi[A-Za-z0-9+/]{40,}={0,2})",
        0.95,
    ),
    SecretRule(
        "putty-private-key",
        "private_key",
        r"(?P<secret>PuTTY-User-Key-File-\d: [\s\S]{0,200}Private-Lines: \d+)",
        0.9,
    ),
    SecretRule(
        "wireguard-key",
        "wireguard_key",
        r"(?:PrivateKey|PresharedKey)\s*=\s*(?P<secret>[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=)",
        0.95,
    ),
    SecretRule(
        "secp256k1-private-key",
        "crypto_private_key",
        r"(?:private[_\-]?key|privkey|secret[_\-]?key|DOTENV_PRIVATE_KEY\w*)"
        + _ASSIGN
        + _Q
        + r"(?P<secret>(?:0x)?[a-f0-9]{64})\b",
        0.9,
        "entropy",
        caseless=True,
    ),
    SecretRule(
        "password-hash-bcrypt",
        "password_hash",
        r"(?P<secret>\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53})",
        0.9,
    ),
    SecretRule(
        "password-hash-crypt",
        "password_hash",
        r"(?P<secret>\$(?:1|5|6)\$(?:rounds=\d+\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{22,86})",
        0.9,
    ),
    SecretRule(
        "password-hash-cisco",
        "password_hash",
        r"(?P<secret>\$[89]\$[./A-Za-z0-9]{14}\$[./A-Za-z0-9]{43})",
        0.9,
    ),
    SecretRule(
        "password-hash-kerberos",
        "password_hash",
        r"(?P<secret>\$krb5(?:asrep|tgs)\$\d{2}\$[^\s:$]{0,120}[:$]?[a-f0-9]{32}\$[a-f0-9]{64,})",
        0.9,
    ),
    SecretRule(
        "vault-unseal-key",
        "vault_unseal_key",
        r"Unseal Key(?: \d)?:\s*(?P<secret>[A-Za-z0-9+/]{43,44}={0,2})",
        0.95,
    ),
    # --- credentials inside URLs, connection strings and commands -------------------------
    _slot(
        "url-credentials",
        "connection_string_password",
        r"""\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|redis|rediss|amqps?|mssql|sqlserver|oracle|jdbc:[a-z]+|ftp|sftp|smtp|https?|ldaps?|sidekiq|nats|kafka)://(?P<user>[^\s:@/'"]{0,100}):(?P<secret>[^\s@/'"]{3,200})@[^\s'"]{3,}""",
        0.9,
    ),
    SecretRule(
        "connection-string-password",
        "connection_string_password",
        r"""(?:^|[;"'\s])(?:password|pwd)\s*=\s*(?P<secret>[^;"'\s{}$%<>]{3,100})\s*(?:;|["']|$)""",
        0.85,
        "bare_password",
        caseless=True,
    ),
    # The same key inside a connection string: another "Key=value;" pair before it, or
    # one after it. No spaces around "=", so "x = 1; password = pw;" in code is not one.
    _slot(
        "connection-string-slot",
        "connection_string_password",
        r"""\w=[^;\n]{0,200};[ \t]*(?:password|pwd)=(?P<secret>[^;"'\s]{3,100})(?:[;"'\s]|$)""",
        0.85,
    ),
    _slot(
        "connection-string-slot-first",
        "connection_string_password",
        r"""(?:^|[\s"'`])(?:password|pwd)=(?P<secret>[^;"'\s]{3,100});[ \t]*[A-Za-z][\w ]{0,30}=""",
        0.85,
    ),
    SecretRule(
        "basic-auth-header",
        "http_basic_auth",
        _AUTH_HEADER + r"""Basic\s+(?P<secret>[A-Za-z0-9+/]{8,}={0,2})""",
        0.85,
        "entropy",
        caseless=True,
        min_entropy=2.5,
    ),
    SecretRule(
        "bearer-auth-header",
        "http_bearer_token",
        _AUTH_HEADER + r"""(?:Bearer|Token)\s+(?P<secret>[A-Za-z0-9_\-.~+/]{16,}=*)""",
        0.85,
        "entropy",
        caseless=True,
    ),
    _slot(
        "curl-user",
        "curl_credentials",
        r"""\bcurl\b[\s\S]{0,300}?\s(?:-u|--user)\s*["']?(?P<user>[^\s:'"$]{1,64}):["']?(?P<secret>[^\s'"$]{3,100})["']?""",
        0.85,
        caseless=False,
    ),
    _slot(
        "netrc",
        "netrc_credentials",
        r"\bmachine\s+\S+\s+login\s+(?P<user>\S+)\s+password\s+(?P<secret>\S{3,})",
        0.9,
        caseless=False,
    ),
    SecretRule(
        "cli-password-flag",
        "command_line_password",
        # "-p" alone is a port, a parent-directory or a plugin flag as often as a password: only
        # right after a user flag ("-u DOMAIN\\admin -p ...", sqlcmd's "-U sa -P ...") or for sshpass
        r"""(?:\s-u\s*\S+\s+-p|\bsshpass\s+-p|\s--password|\s-password)[\s=]+["']?"""
        # (not a port or port mapping: "-p 8080:80", "-p 127.0.0.1:53:53/udp")
        r"""(?P<secret>(?![\d:.]+(?:/(?:tcp|udp))?(?![^\s"']))[^\s"'$%{<-][^\s"']{3,100})""",
        0.75,
        "bare_password",
        caseless=True,
    ),
    # A long option given its value with "=" ("--password=..."); "-p" may be a port or a
    # directory flag and "--password VALUE" may be a prompt followed by an operand.
    _slot(
        "cli-password-option",
        "command_line_password",
        r"""\s--(?:password|passwd|pass)=["']?(?P<secret>[^\s"']{3,100})""",
        0.8,
    ),
    # The MySQL / MariaDB clients take the password glued to "-p" ("mysql -uroot -pS3cret db"):
    # a space after "-p" makes it a prompt and the next word a database name.
    _slot(
        "mysql-client-password",
        "command_line_password",
        r"""\b(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlshow|mysqlcheck|mariadb|mariadb-dump)\b"""
        r"""[^\n|;&]{0,200}?\s-p["']?(?P<secret>[^\s"'$%{<-][^\s"']{3,100})""",
        0.8,
        caseless=False,
    ),
    _slot(
        "sql-identified-by",
        "generic_password",
        r"""\bIDENTIFIED\s+(?:WITH\s+\w+\s+)?BY\s+(?:PASSWORD\s+)?["'](?P<secret>[^"'\s]{4,128})["']""",
        0.85,
    ),
    # .NET credentials passed positionally: NetworkCredential(user, password[, domain]),
    # DirectoryEntry(path, user, password).
    _slot(
        "network-credential",
        "dotnet_credentials",
        r"""NetworkCredential\(\s*"(?P<user>[^"]{1,100})"\s*,\s*"(?P<secret>[^"]{3,100})\"""",
        0.9,
        caseless=False,
    ),
    _slot(
        "directory-entry",
        "dotnet_credentials",
        r"""DirectoryEntry\(\s*"[^"]{1,200}"\s*,\s*"(?P<user>[^"]{1,100})"\s*,\s*"(?P<secret>[^"]{3,100})\"""",
        0.9,
        caseless=False,
    ),
    # --- generic assignments and context -------------------------------------------------
    # XML / config elements: <password>...</password>, <add key="ApiKey" value="..."/>.
    _password(
        "xml-password-element",
        r"<[\w.:\-]{0,30}" + _PASSWORD_NAMES + r">\s*(?P<secret>[^<>\s]{4,128})\s*</",
        0.7,
    ),
    SecretRule(
        "xml-secret-element",
        "generic_api_key",
        r"<[\w.:\-]{0,30}" + _XML_KEY_NAMES + r">\s*(?P<secret>[^<>\s]{10,256})\s*</",
        0.6,
        "entropy",
        caseless=True,
        min_entropy=3.2,
    ),
    _password(
        "config-key-value-attribute",
        r"""\b(?:key|name)\s*=\s*["'][\w.:\-]{0,40}"""
        + _ANY_SECRET_NAME
        + r"""["']\s+value\s*=\s*["'](?P<secret>[^"'\s]{4,256})["']""",
        0.7,
    ),
    _password(
        "generic-password",
        # a longer name may run on ("passwordHash"); a bare "pass" may not ("passerby")
        r"(?:(?:password|passwd|passphrase|pwd|db_?pass)[A-Za-z0-9_]{0,12}|pass(?:[_\-.][A-Za-z0-9_]{0,12})?)"
        + _ASSIGN
        + r"""\\?["'`](?P<secret>[^"'\s]{3,127}[^"'\s\\])\\?["'`]""",
        0.7,
    ),
    _bare_password(
        "generic-password-unquoted",
        _BARE_PASSWORD_NAMES + r"""[ \t]*[=:][ \t]*(?P<secret>[^"'`\s;,]{6,128})""",
    ),
    # "pass" alone is also an English word ("First pass: determine ..."): its value needs
    # two character classes.
    _bare_password(
        "generic-pass-unquoted",
        r"""\bpass[ \t]*[=:][ \t]*(?P<secret>[^"'`\s;,]{6,128})""",
        min_classes=2,
    ),
    _password(
        "prose-password",
        r"""\bpass(?:word|phrase|code)?\b[^\n.]{0,40}?\b(?:is|was)\s*["'](?P<secret>[^"'\s]{4,64})["']""",
        0.6,
    ),
    # The same in chat without quotes ("my password is Tr0ub4dor&3"): the value needs two
    # character classes, so "the password is stored in ..." stays prose.
    _bare_password(
        "prose-password-unquoted",
        r"""\bpass(?:word|phrase|code)?\b[^\n.]{0,24}?\b(?:is|was)[ \t]+(?P<secret>[^\s"'`]{5,63}[^\s"'`.,;:!?)])""",
        min_classes=2,
    ),
    _password(
        "password-literal-argument",
        r"""\bpassword\s*\(?\s*["'](?P<secret>[^"'\s]{4,128})["']""",
        0.6,
    ),
    SecretRule(
        "generic-secret-comparison",
        "generic_secret",
        r"""(?:secret|password|passwd|token)\w{0,20}\s*(?:==|!=)\s*["'](?P<secret>[^"'\s]{6,128})["']""",
        0.6,
        "password",
        caseless=True,
    ),
    _generic_key(
        "generic-api-key",
        _KEY_NAMES
        + r"(?:_?id|_?\d{1,2})?"
        + _ASSIGN
        + _Q
        + "(?P<secret>"
        + _TOKEN_CHARS
        + "{10,256})",
    ),
    # Quoted values may hold any printable character ("7`D'}/vY)T;W..."): one rule per quote
    # kind. Such punctuation also fills ordinary settings ("en-US,en;q=0.9"), so these need a
    # longer, more random value than the plain token rule above.
    _generic_key(
        "generic-api-key-double-quoted",
        _KEY_NAMES + _ASSIGN + r'"(?P<secret>[^"\s]{16,256})"',
        min_entropy=4.0,
    ),
    _generic_key(
        "generic-api-key-single-quoted",
        _KEY_NAMES + _ASSIGN + r"'(?P<secret>[^'\s]{16,256})'",
        min_entropy=4.0,
    ),
    # A name/value pair passed as two arguments: setenv("API_KEY", "..."), buildConfigField(..., 'API_KEY', '"..."').
    _generic_key(
        "generic-key-argument",
        r"""["'`][\w\-.]{0,30}"""
        + _ANY_SECRET_NAME
        + r"""["'`]\s*,\s*\\?["'`]{1,2}(?P<secret>"""
        + _TOKEN_CHARS
        + r"""{10,256})\\?["'`]""",
    ),
    # Terraform: variable "db_password" { ... default = "..." }
    SecretRule(
        "terraform-variable-default",
        "generic_api_key",
        r"""\bvariable\s+"[\w\-]{0,40}"""
        + _ANY_SECRET_NAME
        + r"""[\w\-]{0,20}"\s*\{[^}]{0,300}?\bdefault\s*=\s*"(?P<secret>[^"\s]{8,256})\"""",
        0.7,
        "entropy",
        caseless=True,
        min_entropy=3.2,
    ),
    SecretRule(
        "contextual-high-entropy",
        "high_entropy_token",
        r"""(?:key|token|secret|password|credential|bearer|auth)[^\n]{0,40}?[\s"'`:=(](?P<secret>[A-Za-z0-9+/_\-]{24,200}={0,2})\b""",
        0.5,
        "entropy",
        caseless=True,
        min_entropy=4.0,
        named=True,
    ),
) + IDENTIFIER_RULES
