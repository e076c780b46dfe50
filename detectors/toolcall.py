"""Tool-call signals: what an agent's tool arguments try to do, found by precompiled patterns.

`ToolCallScanner.scan(text)` returns the signal names present in the flattened argument text
(see `flatten_arguments`); `classify(tool_name, arg_keys)` names the tool's category. Every
pattern is compiled once into one Hyperscan block database; the two signals Hyperscan cannot
express (a DELETE / UPDATE statement without WHERE) are confirmed by precompiled `re` patterns,
run only when Hyperscan saw the statement. URL hosts are parsed once per URL and checked with
`ipaddress` for internal targets. Pure, synchronous, no I/O; imports nothing of the project.

Signals (stable names, the decision engine maps them to risk):

    sql_injection       tautologies, UNION SELECT, stacked queries, comment truncation, time-based probes
    sql_destructive     DROP / TRUNCATE / ALTER ... DROP
    sql_unbounded_write DELETE or UPDATE without WHERE
    sql_privilege       GRANT / REVOKE / CREATE USER / ALTER ROLE
    sql_write           INSERT / UPDATE / DELETE / CREATE / ALTER / MERGE / REPLACE (any write at all)
    shell_metachar      command separators or substitutions: ; && || | ` $( > <
    shell_destructive   rm -rf on / ~ or *, mkfs, dd to a device, fork bomb, shred, chmod -R 777 /
    shell_remote_exec   curl|wget piped into a shell, base64 -d | sh, python -c with urllib
    shell_reverse       /dev/tcp redirection, nc -e, mkfifo + nc, socat exec, interactive shells to a socket
    privilege_escalation sudo, su -, chmod u+s, setuid, /etc/sudoers, usermod -aG sudo
    path_traversal      ../ (raw or encoded) and absolute escapes such as /..%2f
    sensitive_path      /etc/shadow, /etc/passwd, ~/.ssh, id_rsa, .env, .aws/credentials, /proc/self/environ, ...
    ssrf_metadata       cloud metadata endpoints (169.254.169.254, metadata.google.internal, fd00:ec2::254, ...)
    ssrf_internal       loopback, private, link-local or unspecified addresses; localhost names
    ssrf_scheme         file://, gopher://, dict://, ftp://, ldap://, jar:, netdoc:
    dns_rebinding       wildcard DNS services resolving to chosen IPs (nip.io, sslip.io, ...), numeric IP forms
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from detectors._hs import CASELESS, DOTALL, SINGLEMATCH, compile_block, scan_ids

__all__ = ["CATEGORIES", "SIGNALS", "ToolCallScanner", "classify", "flatten_arguments", "url_hosts"]

CATEGORIES = ("database", "shell", "filesystem", "http", "email", "payment", "code_execution", "other")

_F = CASELESS | SINGLEMATCH | DOTALL
_FCS = SINGLEMATCH | DOTALL           # case-sensitive

# (signal, pattern, flags). Patterns are Hyperscan-compatible (no look-around, no back-references).
_PATTERNS: tuple[tuple[str, str, int], ...] = (
    # --- SQL ---------------------------------------------------------------------------------
    ("sql_injection", r"'\s*(or|and)\s+'?\w+'?\s*=\s*'?\w+", _F),
    ("sql_injection", r"\b(or|and)\s+1\s*=\s*1\b", _F),
    ("sql_injection", r"\bunion\s+(all\s+)?select\b", _F),
    ("sql_injection", r"'\s*;\s*(drop|delete|update|insert|exec|shutdown)\b", _F),
    ("sql_injection", r"'\s*(--|#|/\*)", _F),
    ("sql_injection", r"\b(sleep\s*\(\s*\d+\s*\)|pg_sleep\s*\(|waitfor\s+delay\s+'|benchmark\s*\(\s*\d{4,})", _F),
    ("sql_injection", r"\b(xp_cmdshell|load_file\s*\(|into\s+(out|dump)file)\b", _F),
    ("sql_destructive", r"\bdrop\s+(table|database|schema|index|view|user|role)\b", _F),
    ("sql_destructive", r"\btruncate\s+(table\s+)?[\w\"`\[.]", _F),
    ("sql_destructive", r"\balter\s+table\s+\S+\s+drop\b", _F),
    ("sql_privilege", r"\b(grant\s+(all|select|insert|update|delete|usage|execute|create|\w+\s*,)|revoke\s+\w+)", _F),
    ("sql_privilege", r"\b(create|alter)\s+(user|role|login)\b", _F),
    ("sql_write", r"\b(insert\s+into|update\s+[\w\"`\[.]+\s+set|delete\s+from|create\s+(table|index|view|database)|"
                  r"alter\s+table|merge\s+into|replace\s+into|drop\s+\w+|truncate\s)", _F),
    ("_sql_delete", r"\bdelete\s+from\b", _F),
    ("_sql_update", r"\bupdate\s+[\w\"`\[.]+\s+set\b", _F),
    # --- shell -------------------------------------------------------------------------------
    ("shell_metachar", r"(;|&&|\|\|)\s*[a-z/.~]", _F),
    ("shell_metachar", r"\|\s*[a-z/.~]", _F),
    ("shell_metachar", r"`[^`]+`", _F),
    ("shell_metachar", r"\$\([^)]+\)", _F),
    ("shell_metachar", r"(^|\s)>>?\s*[/~]", _F),
    ("shell_destructive",
     r"\brm\s+(-[a-z]*[rf][a-z]*\s+)+(--no-preserve-root\s+)?(/|~|\*|\$home|/\*)(\s|$|;|&|\|)", _F),
    ("shell_destructive", r"\bmkfs(\.\w+)?\s", _F),
    ("shell_destructive", r"\bdd\s+.*\bof=/dev/(sd|nvme|hd|xvd|disk)", _F),
    ("shell_destructive", r":\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:", _F),
    ("shell_destructive", r"\bshred\s+.*(/dev/|-u)", _F),
    ("shell_destructive", r"\bchmod\s+-R\s+0?777\s+/(\s|$)", _F),
    ("shell_destructive", r">\s*/dev/(sd|nvme|hd)[a-z]", _F),
    ("shell_destructive", r"\bfind\s+/\s.*-delete\b", _F),
    ("shell_remote_exec", r"\b(curl|wget|fetch)\b[^|;&\n]*\|\s*(sudo\s+)?(ba|z|da|k)?sh\b", _F),
    ("shell_remote_exec", r"\b(curl|wget)\b[^|;&\n]*\|\s*(sudo\s+)?(python\d?|perl|ruby|node)\b", _F),
    ("shell_remote_exec", r"\bbase64\s+(-d|--decode)\b[^|\n]*\|\s*(ba|z|da)?sh\b", _F),
    ("shell_remote_exec", r"\b(ba|z)?sh\s+-c\s+[\"']?\$\((curl|wget)", _F),
    ("shell_remote_exec", r"\b(ba|z)?sh\s+<\s*\(\s*(curl|wget)", _F),
    ("shell_reverse", r"/dev/(tcp|udp)/[\w.\-]+/\d+", _F),
    ("shell_reverse", r"\b(nc|ncat|netcat)\b[^\n]*\s-[a-z]*[ec]\s", _F),
    ("shell_reverse", r"\bmkfifo\b[^\n]*\b(nc|ncat|netcat|telnet)\b", _F),
    ("shell_reverse", r"\bsocat\b[^\n]*\bexec:", _F),
    ("shell_reverse", r"\bsocket\.socket\b[^\n]*\bconnect\b", _F),
    ("shell_reverse", r"\b(ba)?sh\s+-i\s+[>&]", _F),
    ("privilege_escalation", r"(^|[\s;&|(`])sudo\s+(-[a-z]+\s+)*[a-z/]", _F),
    ("privilege_escalation", r"(^|[\s;&|])su\s+(-|root)(\s|$)", _F),
    ("privilege_escalation", r"\bchmod\s+([ugo]*\+s|[24][0-7]{3})\b", _F),
    ("privilege_escalation", r"/etc/sudoers", _F),
    ("privilege_escalation", r"\busermod\s+-a?G\s+(sudo|wheel|admin|root)\b", _F),
    ("privilege_escalation", r"\bchown\s+root\b", _F),
    # --- paths -------------------------------------------------------------------------------
    ("path_traversal", r"(^|[/\\=\s\"'])\.\.[/\\]", _F),
    ("path_traversal", r"%2e%2e(%2f|%5c|/|\\)", _F),
    ("path_traversal", r"\.\.%(2f|5c|c0%af|252f)", _F),
    ("sensitive_path", r"/etc/(shadow|gshadow|passwd|master\.passwd|sudoers)\b", _F),
    ("sensitive_path", r"(^|[/\\\s\"'=~])\.ssh([/\\]|\b)", _F),
    ("sensitive_path", r"\bid_(rsa|dsa|ecdsa|ed25519)\b", _F),
    ("sensitive_path", r"(^|[/\\\s\"'=])\.env(\.[a-z]+)?(\s|$|[\"',])", _F),
    ("sensitive_path", r"\.aws[/\\](credentials|config)", _F),
    ("sensitive_path", r"\.(kube|docker)[/\\]config", _F),
    ("sensitive_path", r"/proc/(self|\d+)/(environ|mem|maps|cmdline)", _F),
    ("sensitive_path", r"\.(git-credentials|netrc|pgpass|npmrc|pypirc)\b", _F),
    ("sensitive_path", r"/var/run/(secrets|docker\.sock)", _F),
    ("sensitive_path", r"\\(windows\\system32\\config\\sam|sam$)", _F),
    # --- network -----------------------------------------------------------------------------
    ("ssrf_scheme", r"\b(file|gopher|dict|ldap|ldaps|tftp|jar|netdoc|php|expect|phar)://", _F),
    ("_url", r"\b[a-z][a-z0-9+.\-]{1,15}://[^\s\"'<>]+", _F),
    ("ssrf_metadata", r"169\.254\.169\.254|169\.254\.170\.2|100\.100\.100\.200|fd00:ec2::254", _F),
    ("ssrf_metadata", r"metadata\.(google\.internal|azure\.com|packet\.net)|instance-data(\.ec2\.internal)?\b", _F),
    ("ssrf_metadata", r"/latest/meta-data|/computeMetadata/v1|/metadata/instance\?", _F),
    ("dns_rebinding", r"\.(nip\.io|xip\.io|sslip\.io|localtest\.me|lvh\.me|traefik\.me|1u\.ms|rbndr\.us|"
                      r"lock\.cmpxchg8b\.com|vcap\.me)\b", _F),
)

SIGNALS: tuple[str, ...] = (*dict.fromkeys(s for s, _, _ in _PATTERNS if not s.startswith("_")),
                             "sql_unbounded_write", "ssrf_internal")

# DELETE / UPDATE statements; a statement ends at ';' or the end of the text.
_DELETE_STMT = re.compile(r"\bdelete\s+from\s+[^;]*", re.I | re.S)
_UPDATE_STMT = re.compile(r"\bupdate\s+[\w\"`\[.]+\s+set\b[^;]*", re.I | re.S)
_WHERE = re.compile(r"\bwhere\b", re.I)
_URL = re.compile(r"\b[a-z][a-z0-9+.\-]{1,15}://[^\s\"'<>]+", re.I)
_INTERNAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "0", "kubernetes",
                   "kubernetes.default", "kubernetes.default.svc")
_INTERNAL_SUFFIXES = (".localhost", ".internal", ".local", ".svc", ".cluster.local", ".corp", ".lan", ".intranet")


def url_hosts(text: str) -> list[str]:
    """Host names of the URLs in `text`, lower-cased, brackets and userinfo removed."""
    hosts: list[str] = []
    for m in _URL.finditer(text):
        try:
            host = urlsplit(m.group(0)).hostname
        except ValueError:
            continue
        if host:
            hosts.append(unquote(host).lower().rstrip("."))
    return hosts


def _ip_of(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host literal denotes, including the numeric forms browsers and curl accept."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host.isdigit():                                  # 2130706433 == 127.0.0.1
        n = int(host)
        return ipaddress.IPv4Address(n) if n < 2**32 else None
    if host.startswith("0x") and all(c in "0123456789abcdef" for c in host[2:]) and len(host) > 2:
        n = int(host, 16)
        return ipaddress.IPv4Address(n) if n < 2**32 else None
    parts = host.split(".")
    if len(parts) == 4 and all(p and (p.isdigit() or p.startswith("0x")) for p in parts):
        try:                                            # 0177.0.0.1 (octal), 0x7f.0.0.1 (hex)
            vals = [int(p, 16) if p.startswith("0x") else int(p, 8) if len(p) > 1 and p[0] == "0" else int(p)
                    for p in parts]
        except ValueError:
            return None
        if all(0 <= v < 256 for v in vals):
            return ipaddress.IPv4Address(".".join(map(str, vals)))
    return None


def host_signals(host: str) -> set[str]:
    """Signals of one URL host: internal address, metadata endpoint, rebinding-style numeric forms."""
    out: set[str] = set()
    if host in _INTERNAL_NAMES or host.endswith(_INTERNAL_SUFFIXES):
        out.add("ssrf_internal")
    ip = _ip_of(host)
    if ip is not None:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if str(ip) in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254"):
            out.add("ssrf_metadata")
        if ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified or ip.is_reserved:
            out.add("ssrf_internal")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            out.add("dns_rebinding")                    # a numeric form other than dotted decimal
    return out


@dataclass(frozen=True, slots=True)
class ScanResult:
    signals: frozenset[str]
    hosts: tuple[str, ...]


class ToolCallScanner:
    """One compiled database for every signal; build once per process, use from one thread."""

    def __init__(self) -> None:
        self._names = tuple(s for s, _, _ in _PATTERNS)
        self._db = compile_block([p for _, p, _ in _PATTERNS], [f for _, _, f in _PATTERNS])

    def scan(self, text: str) -> ScanResult:
        if not text:
            return ScanResult(frozenset(), ())
        ids = scan_ids(self._db, text.encode("utf-8", "surrogatepass"))
        if not ids:
            return ScanResult(frozenset(), ())
        names = self._names
        found = {names[i] for i in ids}
        hosts: tuple[str, ...] = ()
        if "_sql_delete" in found and any(not _WHERE.search(m.group(0)) for m in _DELETE_STMT.finditer(text)):
            found.add("sql_unbounded_write")
        if "_sql_update" in found and any(not _WHERE.search(m.group(0)) for m in _UPDATE_STMT.finditer(text)):
            found.add("sql_unbounded_write")
        if "_url" in found:
            hosts = tuple(url_hosts(text))
            for h in hosts:
                found |= host_signals(h)
        return ScanResult(frozenset(s for s in found if s[0] != "_"), hosts)


# --- classification ------------------------------------------------------------------------------

_CATEGORY_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("payment", ("pay", "payment", "payments", "transfer", "charge", "refund", "invoice", "payout", "stripe",
                 "wire", "purchase", "checkout", "billing", "transaction")),
    ("code_execution", ("python", "code", "eval", "interpreter", "javascript", "js", "notebook", "jupyter",
                        "repl", "script", "sandbox")),
    ("shell", ("shell", "bash", "sh", "zsh", "terminal", "command", "cmd", "exec", "subprocess", "powershell",
               "run_command", "execute_command", "ssh")),
    ("database", ("sql", "query", "db", "database", "postgres", "postgresql", "mysql", "sqlite", "mongo",
                  "mongodb", "redis", "table", "bigquery", "snowflake", "select")),
    ("email", ("email", "mail", "smtp", "gmail", "outlook", "message", "messages", "slack", "sms", "teams",
               "discord", "telegram", "whatsapp", "notify", "post_message", "chat", "tweet", "reply")),
    ("http", ("http", "https", "fetch", "request", "url", "web", "browse", "browser", "curl", "download",
              "webhook", "api", "scrape", "crawl", "get_url", "navigate")),
    ("filesystem", ("file", "files", "fs", "path", "dir", "directory", "folder", "read_file", "write_file",
                    "delete_file", "upload", "storage", "s3", "blob", "disk")),
)
_ARG_HINTS: tuple[tuple[str, frozenset[str]], ...] = (
    ("database", frozenset({"sql", "query", "statement", "table"})),
    ("shell", frozenset({"command", "cmd", "argv"})),
    ("code_execution", frozenset({"code", "source", "script"})),
    ("email", frozenset({"to", "recipient", "recipients", "subject", "channel", "cc", "bcc"})),
    ("payment", frozenset({"amount", "currency", "iban", "card", "account_number"})),
    ("http", frozenset({"url", "uri", "endpoint", "href"})),
    ("filesystem", frozenset({"path", "file", "filename", "filepath", "directory"})),
)
_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def classify(tool_name: str, arg_keys: Iterable[str] = ()) -> str:
    """The tool's category from the words of its name, else from its argument names; "other" if neither."""
    words = [w for w in _SPLIT.split(_CAMEL.sub("_", tool_name).lower()) if w]
    joined = "_".join(words)
    for category, vocab in _CATEGORY_WORDS:
        for w in vocab:
            if w in words or ("_" in w and w in joined):
                return category
    keys = {k.lower() for k in arg_keys}
    for category, hints in _ARG_HINTS:
        if keys & hints:
            return category
    return "other"


def flatten_arguments(arguments: Any, limit: int = 65536) -> tuple[str, list[str]]:
    """Every string (and number) leaf of `arguments` joined by newlines, and the top-level keys.

    Keys are kept out of the text (they are the tool's vocabulary, not the caller's payload);
    the text is cut at `limit` characters.
    """
    parts: list[str] = []
    size = 0
    stack: list[Any] = [arguments]
    while stack and size < limit:
        v = stack.pop()
        if isinstance(v, str):
            parts.append(v)
            size += len(v) + 1
        elif isinstance(v, Mapping):
            stack.extend(reversed(list(v.values())))
        elif isinstance(v, (list, tuple)):
            stack.extend(reversed(v))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            parts.append(str(v))
            size += 8
    keys = [str(k) for k in arguments] if isinstance(arguments, Mapping) else []
    return "\n".join(parts)[:limit], keys
