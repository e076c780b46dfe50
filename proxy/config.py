"""Configuration: one YAML file plus `CASEMATE_*` environment variables.

Precedence: built-in defaults < YAML file < environment < command-line flags.
Everything is validated at start-up; a bad value raises `ConfigError` naming the
key (e.g. ``providers[0].kind: must be one of anthropic, azure, openai``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from pipeline.ratelimit import MAX_RPM, MAX_TPM

PROVIDER_KINDS = ("openai", "azure", "anthropic")
ROLES = ("all", "proxy", "admin")


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key."""


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    name: str
    kind: str = "openai"
    base_url: str = "https://api.openai.com/v1"
    api_key: str | None = None
    api_key_env: str | None = None
    models: tuple[str, ...] = ("*",)
    api_version: str | None = None
    deployments: Mapping[str, str] = field(default_factory=dict)
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    total_timeout_s: float = 300.0
    max_retries: int = 2
    backoff_base_s: float = 0.2
    fallback: str | None = None
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    headers: Mapping[str, str] = field(default_factory=dict)
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BootstrapKey:
    key: str
    tenant: str = "default"
    name: str = "bootstrap"
    rpm: int | None = None
    tpm: int | None = None
    role: str = "owner"
    allowed_models: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class KillSwitchSettings:
    global_: bool = False
    tenants: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = 8080
    admin_host: str = "127.0.0.1"
    admin_port: int = 8081
    workers: int = 1
    role: str = "all"
    max_body_bytes: int = 1_048_576
    max_messages: int = 2048
    shutdown_grace_s: float = 30.0
    database_url: str | None = None              # default: sqlite in data_dir
    redis_url: str | None = None
    secret_key: str | None = None                # master secret (base64/hex/text, >= 32 bytes)
    log_level: str = "INFO"
    log_json: bool = True
    access_log: bool = False                     # one JSON line per proxied request (INFO)
    # rate limits (platform defaults; tenants and keys override)
    default_rpm: int = 600
    default_tpm: int = 1_000_000
    ratelimit_fail_open: bool = True
    # response cache
    cache_enabled: bool = True
    cache_ttl_s: int = 300
    cache_max_entries: int = 10_000
    # audit
    audit_queue_size: int = 10_000
    audit_batch_size: int = 500
    audit_flush_interval_s: float = 0.5
    audit_completed_events: bool = False          # opt-in gateway.request.completed events
    # directory refresh (change feed polling)
    directory_poll_s: float = 1.0
    # metrics
    metrics_tenant_labels: bool = False
    # optional remote prompt-injection classifier (tier 3), consulted only for uncertain scores
    injection_remote_url: str | None = None
    injection_remote_timeout_s: float = 0.3
    # MCP firewall: the upstream MCP server (streamable HTTP) fronted at /mcp
    mcp_upstream_url: str | None = None
    providers: tuple[ProviderSettings, ...] = ()
    default_provider: str | None = None
    keys: tuple[BootstrapKey, ...] = ()
    kill_switch: KillSwitchSettings = KillSwitchSettings()
    policy: Mapping[str, Any] = field(default_factory=dict)   # platform default policy document
    demo: bool = False

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'casemate.db').resolve()}"


# --- environment --------------------------------------------------------------------------

_ENV_SCALARS: dict[str, str] = {
    "CASEMATE_DATA_DIR": "data_dir",
    "CASEMATE_HOST": "host",
    "CASEMATE_PORT": "port",
    "CASEMATE_ADMIN_HOST": "admin_host",
    "CASEMATE_ADMIN_PORT": "admin_port",
    "CASEMATE_WORKERS": "workers",
    "CASEMATE_ROLE": "role",
    "CASEMATE_MAX_BODY_BYTES": "max_body_bytes",
    "CASEMATE_DATABASE_URL": "database_url",
    "CASEMATE_REDIS_URL": "redis_url",
    "CASEMATE_SECRET_KEY": "secret_key",
    "CASEMATE_LOG_LEVEL": "log_level",
    "CASEMATE_LOG_JSON": "log_json",
    "CASEMATE_ACCESS_LOG": "access_log",
    "CASEMATE_DEFAULT_RPM": "default_rpm",
    "CASEMATE_DEFAULT_TPM": "default_tpm",
    "CASEMATE_RATELIMIT_FAIL_OPEN": "ratelimit_fail_open",
    "CASEMATE_CACHE_ENABLED": "cache_enabled",
    "CASEMATE_CACHE_TTL_S": "cache_ttl_s",
    "CASEMATE_SHUTDOWN_GRACE_S": "shutdown_grace_s",
    "CASEMATE_DEFAULT_PROVIDER": "default_provider",
    "CASEMATE_MCP_UPSTREAM_URL": "mcp_upstream_url",
}

_TOP_KEYS = {f.name for f in fields(Settings)} - {"providers", "keys", "kill_switch", "policy", "demo"}
# YAML groups: `server:` holds host/port/admin_*/workers/role/max_body_bytes/shutdown_grace_s,
# `ratelimit:` / `cache:` / `audit:` hold their prefixed keys.
_GROUPS: dict[str, dict[str, str]] = {
    "server": {"host": "host", "port": "port", "admin_host": "admin_host", "admin_port": "admin_port",
               "workers": "workers", "role": "role", "max_body_bytes": "max_body_bytes",
               "max_messages": "max_messages", "shutdown_grace_s": "shutdown_grace_s"},
    "ratelimit": {"default_rpm": "default_rpm", "default_tpm": "default_tpm", "fail_open": "ratelimit_fail_open"},
    "cache": {"enabled": "cache_enabled", "ttl_s": "cache_ttl_s", "max_entries": "cache_max_entries"},
    "audit": {"queue_size": "audit_queue_size", "batch_size": "audit_batch_size",
              "flush_interval_s": "audit_flush_interval_s", "completed_events": "audit_completed_events"},
    "logging": {"level": "log_level", "json": "log_json", "access": "access_log"},
    "metrics": {"tenant_labels": "metrics_tenant_labels"},
    "mcp": {"upstream_url": "mcp_upstream_url"},
    "detectors": {"remote_classifier_url": "injection_remote_url",
                  "remote_classifier_timeout_s": "injection_remote_timeout_s"},
}


def _coerce(key: str, value: Any, want: Any) -> Any:
    """Coerce a YAML/env value to the field's type or raise ConfigError naming the key."""
    if value is None:
        return None
    want_s = str(want)
    try:
        if want_s in ("int", "<class 'int'>"):
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if want_s in ("float", "<class 'float'>"):
            return float(value)
        if want_s in ("bool", "<class 'bool'>"):
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if want_s in ("Path", "<class 'pathlib.Path'>"):
            return Path(str(value)).expanduser()
        if "str" in want_s:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected {want_s.replace('<class ', '').strip('>').strip(chr(39))}, got {value!r}") from None
    return value


_FIELD_TYPES = {f.name: f.type for f in fields(Settings)}


def _str_tuple(key: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected a list of strings")
    return tuple(value)


def _check_mapping(where: str, raw: Any, known: set[str]) -> None:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping")
    for k in raw:
        if k not in known:
            raise ConfigError(f"{where}.{k}: unknown key (known: {', '.join(sorted(known))})")


def _provider(i: int, raw: Any) -> ProviderSettings:
    where = f"providers[{i}]"
    _check_mapping(where, raw, {f.name for f in fields(ProviderSettings)})
    if not raw.get("name") or not isinstance(raw["name"], str):
        raise ConfigError(f"{where}.name: required string")
    kind = raw.get("kind", "openai")
    if kind not in PROVIDER_KINDS:
        raise ConfigError(f"{where}.kind: must be one of {', '.join(sorted(PROVIDER_KINDS))}")
    out: dict[str, Any] = {"name": raw["name"], "kind": kind}
    for k in ("base_url", "api_key", "api_key_env", "api_version", "fallback"):
        if k in raw:
            out[k] = _coerce(f"{where}.{k}", raw[k], "str")
    for k in ("connect_timeout_s", "read_timeout_s", "total_timeout_s", "backoff_base_s", "breaker_reset_s"):
        if k in raw:
            v = _coerce(f"{where}.{k}", raw[k], "float")
            if v <= 0:
                raise ConfigError(f"{where}.{k}: must be > 0")
            out[k] = v
    for k in ("max_retries", "breaker_failures"):
        if k in raw:
            v = _coerce(f"{where}.{k}", raw[k], "int")
            if v < 0:
                raise ConfigError(f"{where}.{k}: must be >= 0")
            out[k] = v
    if "models" in raw:
        out["models"] = _str_tuple(f"{where}.models", raw["models"]) or ("*",)
    for k in ("deployments", "headers"):
        if k in raw:
            if not isinstance(raw[k], dict):
                raise ConfigError(f"{where}.{k}: expected a mapping")
            out[k] = {str(a): str(b) for a, b in raw[k].items()}
    if "prices" in raw:
        prices = {}
        if not isinstance(raw["prices"], dict):
            raise ConfigError(f"{where}.prices: expected a mapping model -> [input_per_1k, output_per_1k]")
        for model, pair in raw["prices"].items():
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                raise ConfigError(f"{where}.prices.{model}: expected [input_per_1k, output_per_1k]")
            prices[str(model)] = (float(pair[0]), float(pair[1]))
        out["prices"] = prices
    if out.get("api_key") is None and out.get("api_key_env"):
        out["api_key"] = os.environ.get(out["api_key_env"])
    if kind == "azure" and not out.get("api_version"):
        out["api_version"] = "2024-10-21"
    return ProviderSettings(**out)


def _bootstrap_key(i: int, raw: Any) -> BootstrapKey:
    where = f"keys[{i}]"
    _check_mapping(where, raw, {f.name for f in fields(BootstrapKey)})
    key = raw.get("key")
    if not isinstance(key, str) or len(key) < 20:
        raise ConfigError(f"{where}.key: required string of at least 20 characters")
    out: dict[str, Any] = {"key": key}
    for k in ("tenant", "name", "role"):
        if k in raw:
            out[k] = _coerce(f"{where}.{k}", raw[k], "str")
    for k in ("rpm", "tpm"):
        if k in raw and raw[k] is not None:
            v = _coerce(f"{where}.{k}", raw[k], "int")
            top = MAX_RPM if k == "rpm" else MAX_TPM
            if not 0 < v <= top:
                raise ConfigError(f"{where}.{k}: must be between 1 and {top}")
            out[k] = v
    if "allowed_models" in raw:
        out["allowed_models"] = _str_tuple(f"{where}.allowed_models", raw["allowed_models"])
    return BootstrapKey(**out)


def _kill_switch(raw: Any) -> KillSwitchSettings:
    if raw is None:
        return KillSwitchSettings()
    if not isinstance(raw, dict):
        raise ConfigError("kill_switch: expected a mapping")
    allowed = {"global", "tenants", "keys", "providers", "models"}
    for k in raw:
        if k not in allowed:
            raise ConfigError(f"kill_switch.{k}: unknown key (known: {', '.join(sorted(allowed))})")
    return KillSwitchSettings(
        global_=bool(_coerce("kill_switch.global", raw.get("global", False), "bool")),
        tenants=_str_tuple("kill_switch.tenants", raw.get("tenants")) or (),
        keys=_str_tuple("kill_switch.keys", raw.get("keys")) or (),
        providers=_str_tuple("kill_switch.providers", raw.get("providers")) or (),
        models=_str_tuple("kill_switch.models", raw.get("models")) or (),
    )


def load_settings(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build validated Settings from a YAML file, the environment and CLI overrides."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {p}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping")
        raw = loaded

    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _GROUPS:
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a mapping")
            for sub, sval in value.items():
                target = _GROUPS[key].get(sub)
                if target is None:
                    raise ConfigError(f"{key}.{sub}: unknown key (known: {', '.join(sorted(_GROUPS[key]))})")
                values[target] = _coerce(f"{key}.{sub}", sval, _FIELD_TYPES[target])
        elif key == "providers":
            if not isinstance(value, list):
                raise ConfigError("providers: expected a list")
            values["providers"] = tuple(_provider(i, p) for i, p in enumerate(value))
        elif key == "keys":
            if not isinstance(value, list):
                raise ConfigError("keys: expected a list")
            values["keys"] = tuple(_bootstrap_key(i, k) for i, k in enumerate(value))
        elif key == "kill_switch":
            values["kill_switch"] = _kill_switch(value)
        elif key == "policy":
            if not isinstance(value, dict):
                raise ConfigError("policy: expected a mapping (a policy document)")
            values["policy"] = value
        elif key in _TOP_KEYS:
            values[key] = _coerce(key, value, _FIELD_TYPES[key])
        else:
            known = sorted(_TOP_KEYS | set(_GROUPS) | {"providers", "keys", "kill_switch", "policy"})
            raise ConfigError(f"{key}: unknown key (known: {', '.join(known)})")

    for env_name, target in _ENV_SCALARS.items():
        if env_name in env and env[env_name] != "":
            values[target] = _coerce(env_name, env[env_name], _FIELD_TYPES[target])

    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value

    settings = Settings(**values)
    return _validate(settings)


def _validate(s: Settings) -> Settings:
    if s.role not in ROLES:
        raise ConfigError(f"server.role: must be one of {', '.join(ROLES)}")
    for name in ("port", "admin_port"):
        v = getattr(s, name)
        if not 0 <= v <= 65535:
            raise ConfigError(f"server.{name}: must be a TCP port (0-65535)")
    if s.workers < 1 or s.workers > 64:
        raise ConfigError("server.workers: must be between 1 and 64")
    if s.max_body_bytes < 1024:
        raise ConfigError("server.max_body_bytes: must be at least 1024")
    if not 0 < s.default_rpm <= MAX_RPM:
        raise ConfigError(f"ratelimit.default_rpm: must be between 1 and {MAX_RPM}")
    if not 0 < s.default_tpm <= MAX_TPM:
        raise ConfigError(f"ratelimit.default_tpm: must be between 1 and {MAX_TPM}")
    if s.database_url and not s.database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError("CASEMATE_DATABASE_URL: must start with sqlite:/// or postgresql://")
    if s.redis_url and not s.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("CASEMATE_REDIS_URL: must start with redis://, rediss:// or unix://")
    names = [p.name for p in s.providers]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(f"providers: duplicate name {sorted(dupes)[0]!r}")
    for i, p in enumerate(s.providers):
        if p.fallback and p.fallback not in names:
            raise ConfigError(f"providers[{i}].fallback: no provider named {p.fallback!r}")
        _check_upstream_url(f"providers[{i}].base_url", p.base_url)
    if s.mcp_upstream_url:
        _check_upstream_url("mcp.upstream_url", s.mcp_upstream_url)
    if s.default_provider and s.default_provider not in names:
        raise ConfigError(f"default_provider: no provider named {s.default_provider!r}")
    if s.policy:
        try:
            from pipeline.policy import validate_policy
        except ImportError:  # pragma: no cover - policy module always ships
            return s
        errors = validate_policy(dict(s.policy))
        if errors:
            raise ConfigError(f"policy: {errors[0]}")
    return s


def _check_upstream_url(key: str, url: str) -> None:
    """An upstream URL the HTTP/1.1 client can call: http(s), a host, no credentials in it."""
    from proxy.providers.http1 import check_url

    try:
        check_url(url)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def with_overrides(s: Settings, **kw: Any) -> Settings:
    return _validate(replace(s, **{k: v for k, v in kw.items() if v is not None}))
