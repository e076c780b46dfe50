"""Secrets detector: provider key formats, generic credential assignments, infrastructure identifiers.

Each finding has a ``kind``. ``"credential"`` grants access (provider keys, tokens, private
keys, passwords). ``"identifier"`` only names internal cloud infrastructure: AWS ARNs (any
partition, service, region; an account ID or an account-less resource such as an S3 bucket),
AWS account IDs where the text names them as such, S3 buckets (virtual-hosted and path-style
endpoints, ``s3://`` URIs), GCS buckets (``storage.googleapis.com/<bucket>``,
``<bucket>.storage.googleapis.com``, ``gs://``), Azure storage account endpoints
(``*.blob|queue|table|file|dfs|web.core.windows.net``), Shopify store domains, ECR registries,
SQS queue URLs and RDS endpoints. Identifiers are not secrets, so callers act on them under
their own policy (flag-only by default); their templates are not reported: documentation and
filler account IDs ("123456789012", "111122223333"), names that are the slot's own name
("bucket", "my-bucket", "bucket_name", "your-store"), placeholders, AWS-managed ARNs and
account-less ARNs that name no resource (``arn:aws:s3:::*``). An identifier never hides a
credential: where the two overlap, the credential is kept.

All rules (:mod:`detectors.rules.secrets_rules`) live in one Hyperscan block-mode
database compiled in prefilter mode: one pass over the text says which rules can
match and where their matches end. Only those rules then run their exact Python
regex, and only on windows reaching back ``rule.reach`` characters from those ends
(so a busy rule costs in proportion to its hits, not to the text), and every candidate goes
through cheap post-checks (placeholder rejection, variable references, character-class
mix, Shannon entropy). Overlapping findings keep the most confident rule.

A value in a *credential slot* (URI userinfo, a connection string's ``Password=``, a
positional password argument) is a password by syntax, so a short plain word there
("postgresql://app:secret@db") is reported as a weak password; only templates are not:
the slot's own name, the user name again, a reference, a stand-in or placeholder filler.
"""

from __future__ import annotations

import base64
import bisect
import binascii
import math
import re
from collections import Counter
from dataclasses import dataclass

import hyperscan
import numpy as np

from . import _hs
from .operators import resolve_overlaps
from .rules.secrets_rules import RULES, SecretRule

__all__ = [
    "SecretFinding",
    "SecretsDetector",
    "looks_like_placeholder",
    "looks_sequential",
    "shannon_entropy",
]

#: Substrings that mark a documentation placeholder rather than a real credential.
_PLACEHOLDER_WORDS = (
    "xxxx",
    "example",
    "your_",
    "your-",
    "yourkey",
    "yourtoken",
    "yoursecret",
    "yourpassword",
    "placeholder",
    "insert",
    "redacted",
    "dummy",
    "sample",
    "...",
    "***",
    "replace_me",
    "replaceme",
    "changeit",
    "not-set",
    "notset",
    "todo",
    "replace_with",
    "replace-with",
)
# "<your-token>", "<TOKEN", "api_key>": an angle-bracketed name.
_ANGLE_NAME = re.compile(r"<[A-Za-z][\w\- .]*>|^<|>$")
_FILLER_RUN = re.compile(r"([xX*.#0•])\1{5,}")
# Stand-ins for a missing or described value: a serialised null ("None" from an unset
# variable), a type or label word ("string", "required"), a documented default ("changeme").
_STAND_IN_VALUES = frozenset(
    {
        "none",
        "null",
        "nil",
        "true",
        "false",
        "undefined",
        "required",
        "optional",
        "string",
        "empty",
        "hidden",
        "masked",
        "default",
        "value",
        "changeme",
    }
)
# Values a password-like name is often assigned without being a secret: the stand-ins, the
# names of credential fields, and "secret" (outside a credential slot, more often a word).
_NON_SECRET_VALUES = _STAND_IN_VALUES | frozenset(
    {"password", "passwd", "secret", "token", "pass", "username", "user"}
)
# A credential slot filled with a field's own name, perhaps owned or qualified, once
# separators are dropped: "password", "PASSWORD", "your_password", "myPass", "db-pwd", "token".
_SLOT_NAME = re.compile(
    r"(?:your|my|the|some|db|user|new)?"
    r"(?:password|passwd|passphrase|pass|pwd|pw|token|username|user|login)s?"
)
_NON_ALNUM = re.compile(r"[\W_]+")
_REFERENCE = re.compile(
    r"^(?:\$|%|\{|@|&|\(|\[|process\.env|os\.environ|os\.getenv|getenv|env\.|ENV\[|config\.|settings\.|self\.|this\.)"
    r"|\{\{|\$\{|\$\(|%\(|%s\b|#\{|^[/.:]|:$"
    # a CSS id selector, page anchor or colour: "#add-password", "#fff"
    r"|^#(?:[a-z][a-z_\-]*|[0-9a-f]{3,8})$",
    re.IGNORECASE,
)


# An unquoted value that is code, not a literal: a call, an attribute path, a type.
_CODE_LIKE = re.compile(
    r"[()\[\]{}/,]|^[A-Za-z_]\w*\.[A-Za-z_]|^(?:str|int|bool|String|None)$"
)


# A prefilter match may end a little before the exact one (relaxed bounds): verify this far past it.
_SLACK = 320
# Generic rules look this far before their match for the variable's full name.
_LOOKBACK = 24


@dataclass(frozen=True, slots=True)
class SecretFinding:
    """One credential or infrastructure identifier: ``text[start:end]`` is the value itself.

    ``kind`` is "credential" (grants access: keys, tokens, passwords) or "identifier" (names
    internal infrastructure: an ARN, a bucket endpoint, a store domain), which callers act on
    separately.
    """

    secret_type: str
    rule_id: str
    start: int
    end: int
    confidence: float
    kind: str = "credential"

    @property
    def entity_type(self) -> str:
        """Type name used by the anonymisation operators (one policy entry covers all secrets)."""
        return "SECRET"

    @property
    def score(self) -> float:
        return self.confidence


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``'s character distribution."""
    n = len(value)
    if n == 0:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _ascending_run(chars: str, length: int, wrap: bool) -> bool:
    """True if ``chars`` holds ``length`` consecutive ascending characters ("abcdef", "456789", "7890")."""
    run = 1
    for prev, cur in zip(chars, chars[1:]):
        step = ord(cur) - ord(prev)
        if step == 1 or (wrap and prev == "9" and cur == "0"):
            run += 1
            if run >= length:
                return True
        else:
            run = 1
    return False


def looks_sequential(value: str, length: int = 6) -> bool:
    """Keyboard-walk filler: the value's letters or its digits, read on their own, hold an ascending run.

    "1234567890", "a1b2c3d4e5f6g7", "abcdefgh" are what people type for a made-up
    token; in a random token a six-long consecutive run is vanishingly rare.
    """
    letters = "".join(c for c in value.lower() if "a" <= c <= "z")
    digits = "".join(c for c in value if c.isdigit())
    return _ascending_run(letters, length, wrap=False) or _ascending_run(
        digits, length, wrap=True
    )


_BASE64 = re.compile(r"^[A-Za-z0-9+/]{16,}={0,2}$")


def _encoded_filler(value: str) -> bool:
    """Base64 of plain filler text: "YWJjZGVmZ2hpams=" is "abcdefghijk", not key material."""
    if _BASE64.match(value) is None:
        return False
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    if not decoded.isascii() or not decoded.decode().isprintable():
        return False
    text = decoded.decode()
    return looks_sequential(text) or looks_like_placeholder(text)


def looks_like_placeholder(value: str) -> bool:
    """Documentation filler: "xxxx", "EXAMPLE", "your_api_key", "<token>", "****", one repeated character."""
    low = value.lower()
    if any(w in low for w in _PLACEHOLDER_WORDS):
        return True
    if _FILLER_RUN.search(value) or _ANGLE_NAME.search(value):
        return True
    return len(set(value)) <= 2


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PARTS = re.compile(r"[-_./+]+")
_ALPHA = re.compile(r"^[A-Za-z]+$")
# One word of an identifier, in one consistent case, perhaps with a number in it ("ARGON2ID", "R2", "Dev").
_WORD = re.compile(r"^(?:[A-Z]+\d*[A-Z]*|[a-z]+\d*[a-z]*|[A-Z][a-z]+\d*)$")
# The humps of a CamelCase name: "X509WorkloadIdentityAuth" -> X, 509, Workload, Identity, Auth.
_HUMP = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# A route or file path made of words ("cms/sites/passwords#update", "/etc/app/config").
_WORD_PATH = re.compile(r"^/?[A-Za-z]+(?:[-_][A-Za-z]+)*(?:[/#][A-Za-z]+(?:[-_][A-Za-z]+)*)+/?$")
# What directly follows a shown-but-cut credential: an ellipsis or a mask ("sk-abc...", "xoxp-1-2-####").
_CUT_OFF = re.compile(r"[-_]?(?:\.\.|\u2026|[#*\u2022]{2})")
# Between a variable's name and its value: quotes, spaces, an assignment ("\": \"", " => '", "=").
_ASSIGNMENT_CHARS = " \t\"'`\\=:>,("
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
_ID_NAME = re.compile(r"(?i:(?:^|[_\-.])(?:id|ids|uuid|guid))$|[a-z0-9](?:Id|ID|Ids|IDs)$")
_SECRET_WORD = re.compile(r"secret|pass|pwd", re.IGNORECASE)
# An unquoted identifier holding one of these ("resolved_password") is a variable, not the secret.
_CREDENTIAL_WORD = re.compile(r"pass|pwd|secret|token|credential|api_?key|auth", re.IGNORECASE)
# One capitalised word, perhaps numbered: a type or a label ("Authorization", "Credentials").
_CAPITALISED = re.compile(r"^[A-Z][a-z]+(?:\d{0,4}|[A-Z])$")  # also a type variable "EncodableT"
_PUBLIC_WORD = re.compile(r"public|publishable|pub[_\-.]?key", re.IGNORECASE)


def _camel_case(part: str) -> bool:
    """A CamelCase name ("AccessTokenProvider", "MLKEM768X25519PublicKey"): at least two humps of
    three or more letters and at most one single-character hump (random mixed case has many)."""
    humps = _HUMP.findall(part)
    if len(humps) < 2 or sum(map(len, humps)) != len(part):
        return False
    words = sum(len(h) >= 3 and h[-1].isalpha() for h in humps)
    return words >= 2 and sum(len(h) == 1 for h in humps) <= 1


def _identifier_like(value: str, single_word: bool = True) -> bool:
    """A name, not a value: words joined by separators ("public_hex", "PASSWORD_DEFAULT/ARGON2ID",
    "CF_R2_ACCESS_KEY_ID") or CamelCase ("AgentBrowserAuthenticationSubmitParam", "_AzureApiKeyT")."""
    parts = [p for p in _PARTS.split(value) if p]
    if not parts:
        return False
    if single_word and len(parts) == 1 and _CAPITALISED.match(parts[0]):
        return True
    if all(
        (len(p) <= 24 and (_WORD.match(p) or _ALPHA.match(p)))
        or _camel_case(p)
        or (len(p) <= 4 and p.isdigit())
        for p in parts
    ):
        return len(parts) >= 2 or _camel_case(parts[0])
    words = [p for p in parts if _ALPHA.match(p) and len(p) <= 12]
    return sum(len(p) >= 3 for p in words) >= 3


def _classes(value: str) -> int:
    return (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )


def _names_a_non_secret(prefix: str) -> bool:
    """The variable a generic rule matched names a public key or an identifier, not a secret.

    ``prefix`` is the text from a little before the match up to the value:
    "DOTENV_PUBLIC_KEY=\"", "\"credentialId\": \"", "AUTH0_CLIENT_ID=\"".
    """
    if _PUBLIC_WORD.search(prefix):
        return True
    head = prefix.rstrip(_ASSIGNMENT_CHARS)
    i = len(head)
    while i > 0 and head[i - 1] in _NAME_CHARS:
        i -= 1
    name = head[i:].rstrip("_-.")
    return _ID_NAME.search(name) is not None and _SECRET_WORD.search(name) is None


def _names_a_credential(value: str) -> bool:
    """A variable or field named after a credential: "user_password", "DB_PASSWORD", "githubToken"."""
    return (
        _CREDENTIAL_WORD.search(value) is not None
        and _identifier_like(value, single_word=False)
    )


def _slot_template(value: str) -> bool:
    """A credential slot (URI userinfo, ``Password=`` of a connection string, a password argument)
    filled with a template rather than a password, however weak.

    The slot's own name ("password", "PASSWORD", "your_password", "DB_PASSWORD"), a
    reference ("${PW}", "$(PW)", "{password}", "%s", "<pw>") or a stand-in ("None",
    "string", "changeme"). Placeholder filler ("xxxx", "EXAMPLE") is rejected before this,
    as for every rule, and so is the user name again ("postgres:postgres", a default account).
    """
    low = value.lower()
    return (
        low in _STAND_IN_VALUES
        or _SLOT_NAME.fullmatch(_NON_ALNUM.sub("", low)) is not None
        or _names_a_credential(value)
        or _REFERENCE.search(value) is not None
    )


# An identifier's name that only says what the slot is, perhaps owned or numbered: "bucket",
# "my-bucket", "your_bucket_name", "bucket1", "test-store", "storageaccount", "foo".
_ID_SLOT_NAME = re.compile(
    r"(?:your|my|the|some|test|demo|foo|bar|baz|acme|new)*"
    r"(?:bucket|store|shop|account|storageaccount|container|project|resource|site|domain)?"
    r"(?:name|id)?s?\d{0,2}"
)
# Names that are public, not anyone's infrastructure: the Azure storage emulator's account,
# the JSON API's path words of storage.googleapis.com.
_PUBLIC_ID_NAMES = frozenset({"devstoreaccount1", "download", "upload", "storage"})
# Documentation names of buckets ("amzn-s3-demo-bucket", "DOC-EXAMPLE-BUCKET").
_ID_PLACEHOLDER_WORDS = ("demo",)
# Before an identifier, a template's expansion or a cut name: "${ENV}-store.myshopify.com".
_TEMPLATE_EDGE = ("$", "%", "{", "}", "<", "-")
# ARN resources that are a service integration, not a resource of anyone's account.
_ACCOUNTLESS_PUBLIC_SERVICES = frozenset({"states"})


def _filler_account(account: str) -> bool:
    """A documentation or filler AWS account ID: "123456789012", "111122223333", "0000-0000-0000"."""
    digits = account.replace("-", "")
    return len(set(digits)) <= 3 or looks_sequential(digits)


def _template_name(name: str) -> bool:
    low = name.lower()
    return (
        low in _PUBLIC_ID_NAMES
        or _ID_SLOT_NAME.fullmatch(_NON_ALNUM.sub("", low)) is not None
        or looks_like_placeholder(name)
        or any(w in low for w in _ID_PLACEHOLDER_WORDS)
    )


def _identifier_template(match: re.Match[str], value: str, prefix: str) -> bool:
    """An infrastructure identifier that names nothing real: a template or documentation value.

    Rejected are placeholder filler anywhere in the value ("<bucket>", "EXAMPLE", "xxxx"), a
    value glued to a template expansion ("${ENV}-store..."), a filler account ID, a bucket /
    store / account name that is the slot's own name ("bucket", "my-bucket", "bucket_name",
    "your-store"), AWS-managed ARNs (account "aws") and account-less ARNs that name no resource
    ("arn:aws:s3:::*", "arn:aws:ec2:*:*:instance/*", Step Functions' "arn:aws:states:::sqs:...").
    """
    if looks_like_placeholder(value) or prefix.endswith(_TEMPLATE_EDGE):
        return True
    groups = match.groupdict()
    account = groups.get("account")
    if account == "aws":
        return True
    has_account = bool(account) and account != "*"
    if has_account and _filler_account(account):
        return True
    name = groups.get("name")
    if name is not None and _template_name(name):
        return True
    service = groups.get("service")
    if service is None:
        return False
    resource = groups.get("resource") or ""
    if service == "s3":
        return _template_name(resource.split("/", 1)[0])
    if has_account:
        return False
    if service in _ACCOUNTLESS_PUBLIC_SERVICES:
        return True
    # "instance/*", "key:*": a resource type and a wildcard name nothing
    rest = re.split(r"[:/]", resource, maxsplit=1)[-1]
    return not any(c.isalnum() for c in rest)


def _accept(rule: SecretRule, value: str, prefix: str, after: str) -> bool:
    """Post-checks of one candidate: ``prefix`` is the text before the value, ``after`` what follows it."""
    if looks_like_placeholder(value) or _CUT_OFF.match(after):
        return False
    if rule.check == "format":
        return True
    if rule.check == "slot":
        # The syntax says this is the password: a short, plain word is a weak password.
        return len(value) >= 4 and not _slot_template(value)
    if rule.check == "bare_password" and (
        _CODE_LIKE.search(value)
        or _camel_case(value.strip("_"))
        or _CAPITALISED.match(value)
    ):
        return False  # code: a call, an attribute, a type ("HiddenText", "Credentials")
    if rule.check in ("password", "bare_password"):
        return (
            len(value) >= 4
            and _classes(value) >= rule.min_classes
            # "user_password", "challengePassword": a name; "Secret123" stays a password
            and not _names_a_credential(value)
            and value.lower() not in _NON_SECRET_VALUES
            and _REFERENCE.search(value) is None
            and _WORD_PATH.match(value) is None
        )
    # entropy
    if (
        _REFERENCE.search(value)
        or value.lower() in _NON_SECRET_VALUES
        or _EMAIL.match(value)
        or ".." in value
        or "://" in value  # a URL: its credentials are the userinfo rule's
    ):
        return False
    if rule.named and (
        _names_a_non_secret(prefix)
        or looks_sequential(value)
        or _encoded_filler(value)
    ):
        return False
    if _identifier_like(value):
        return False
    if _classes(value) < 2:
        return False
    return shannon_entropy(value) >= rule.min_entropy


def _resolve_by_kind(candidates: list[SecretFinding]) -> list[SecretFinding]:
    """Non-overlapping findings: overlaps are settled within each kind, then an identifier that
    overlaps a credential gives way (an identifier never hides a credential)."""
    credentials = [f for f in candidates if f.kind == "credential"]
    if len(credentials) == len(candidates):
        return resolve_overlaps(candidates)
    kept = resolve_overlaps(credentials)
    starts = [c.start for c in kept]  # sorted, and the spans do not overlap
    out = list(kept)
    for f in resolve_overlaps([f for f in candidates if f.kind != "credential"]):
        i = bisect.bisect_left(starts, f.end)  # kept[i - 1] is the last credential starting before f ends
        if i == 0 or kept[i - 1].end <= f.start:
            out.append(f)
    return sorted(out, key=lambda f: f.start)


def _hyperscan_form(pattern: str) -> str:
    """The rule's pattern without the named group and lazy quantifiers (Hyperscan reports every match)."""
    return (
        re.sub(r"\(\?P<\w+>", "(", pattern)
        .replace("}?", "}")
        .replace("*?", "*")
        .replace("+?", "+")
    )


class SecretsDetector:
    """Credential scanner; build once, call :meth:`scan` per text."""

    def __init__(self, rules: tuple[SecretRule, ...] = RULES) -> None:
        self._rules = rules
        self._compiled = [
            re.compile(r.pattern, re.IGNORECASE if r.caseless else 0) for r in rules
        ]
        flags = [
            hyperscan.HS_FLAG_PREFILTER | (_hs.CASELESS if r.caseless else 0)
            for r in rules
        ]
        self._db = _hs.compile_block([_hyperscan_form(r.pattern) for r in rules], flags)

    @property
    def rules(self) -> tuple[SecretRule, ...]:
        return self._rules

    def scan(self, text: str) -> list[SecretFinding]:
        """Findings ordered by position (non-overlapping)."""
        if not text:
            return []
        data = text.encode("utf-8", "replace")
        ends: dict[int, list[int]] = {}

        def on_match(rid: int, start: int, end: int, flags: int, ctx: object) -> None:
            bucket = ends.get(rid)
            if bucket is None:
                ends[rid] = [end]
            elif end - bucket[-1] > 64:  # nearby ends share a verification window
                bucket.append(end)

        self._db.scan(data, match_event_handler=on_match)
        if not ends:
            return []
        to_char = None
        if len(data) != len(text):
            starts = (np.frombuffer(data, dtype=np.uint8) & 0xC0) != 0x80
            to_char = np.concatenate(([0], np.cumsum(starts)))
        n = len(text)
        candidates: list[SecretFinding] = []
        for rid in sorted(ends):
            rule = self._rules[rid]
            compiled = self._compiled[rid]
            windows: list[list[int]] = []
            for end in ends[rid]:
                end_char = int(to_char[end]) if to_char is not None else end
                lo, hi = max(0, end_char - rule.reach), min(n, end_char + _SLACK)
                if windows and lo <= windows[-1][1]:
                    windows[-1][1] = hi
                else:
                    windows.append([lo, hi])
            seen: set[tuple[int, int]] = set()
            has_user = "user" in compiled.groupindex
            for lo, hi in windows:
                for m in compiled.finditer(text, lo, hi):
                    start, end = m.span(
                        "secret" if "secret" in compiled.groupindex else 0
                    )
                    if end <= start or (start, end) in seen:
                        continue
                    seen.add((start, end))
                    if has_user and (m.group("user") or "").lower() == text[start:end].lower():
                        continue  # "postgres:postgres@": a default account, not a leaked secret
                    prefix = text[max(0, m.start() - _LOOKBACK) : start]
                    prefix = prefix[prefix.rfind("\n") + 1 :]  # the name is on the value's line
                    if rule.check == "identifier":
                        if _identifier_template(m, text[start:end], prefix) or _CUT_OFF.match(
                            text, end
                        ):
                            continue
                    elif not _accept(rule, text[start:end], prefix, text[end : end + 3]):
                        continue
                    candidates.append(
                        SecretFinding(
                            rule.secret_type,
                            rule.rule_id,
                            start,
                            end,
                            rule.confidence,
                            rule.kind,
                        )
                    )
        if len(candidates) < 2:
            return candidates
        return _resolve_by_kind(candidates)
