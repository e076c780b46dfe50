from pathlib import Path

import pytest

from proxy.config import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "casemate.yaml"
    p.write_text(text)
    return p


def test_defaults_bind_loopback_on_8080_and_8081():
    s = load_settings(None, env={})
    assert (s.host, s.port, s.admin_host, s.admin_port) == ("127.0.0.1", 8080, "127.0.0.1", 8081)
    assert s.effective_database_url.startswith("sqlite:///")
    assert s.redis_url is None


def test_yaml_groups_and_providers_are_read(tmp_path):
    p = write(tmp_path, """
server: {port: 9000, workers: 2}
ratelimit: {default_rpm: 10}
providers:
  - {name: a, kind: anthropic, base_url: "http://127.0.0.1:1/v1", models: [claude-x], fallback: b}
  - {name: b, kind: openai, base_url: "http://127.0.0.1:2/v1"}
default_provider: b
keys:
  - {key: cm_live_abcdefghijklmnopqrstuvwxyz, tenant: t1, rpm: 5}
""")
    s = load_settings(p, env={})
    assert s.port == 9000 and s.workers == 2 and s.default_rpm == 10
    assert s.providers[0].kind == "anthropic" and s.providers[0].models == ("claude-x",)
    assert s.keys[0].rpm == 5 and s.keys[0].tenant == "t1"


def test_environment_overrides_the_file(tmp_path):
    p = write(tmp_path, "server: {port: 9000}\n")
    s = load_settings(p, env={"CASEMATE_PORT": "9100", "CASEMATE_REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert s.port == 9100 and s.redis_url == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize("text, env, fragment", [
    ("server: {port: nope}\n", {}, "server.port"),
    ("server: {wokers: 2}\n", {}, "server.wokers: unknown key"),
    ("bogus: 1\n", {}, "bogus: unknown key"),
    ("providers:\n  - {name: x, kind: cohere}\n", {}, "providers[0].kind"),
    ("providers:\n  - {kind: openai}\n", {}, "providers[0].name"),
    ("providers:\n  - {name: x, fallback: y}\n", {}, "providers[0].fallback"),
    ("default_provider: nobody\n", {}, "default_provider"),
    ("providers:\n  - {name: x, base_url: 'ftp://h/v1'}\n", {}, "providers[0].base_url: unsupported URL"),
    ("providers:\n  - {name: x, base_url: 'https://u:pw@h/v1'}\n", {}, "providers[0].base_url: credentials"),
    ("mcp: {upstream_url: 'http://u:pw@127.0.0.1:9/mcp'}\n", {}, "mcp.upstream_url: credentials"),
    ("", {"CASEMATE_MCP_UPSTREAM_URL": "localhost:9000"}, "mcp.upstream_url: unsupported URL"),
    ("keys:\n  - {key: short}\n", {}, "keys[0].key"),
    ("keys:\n  - {key: cm_live_abcdefghijklmnopqrstuvwx, rpm: 1000000000}\n", {}, "keys[0].rpm: must be between"),
    ("keys:\n  - {key: cm_live_abcdefghijklmnopqrstuvwx, tpm: 0}\n", {}, "keys[0].tpm: must be between"),
    ("ratelimit: {default_tpm: 10000000000000}\n", {}, "ratelimit.default_tpm: must be between"),
    ("policy: {injection: {action: explode}}\n", {}, "policy: injection.action"),
    ("", {"CASEMATE_WORKERS": "many"}, "CASEMATE_WORKERS"),
    ("", {"CASEMATE_DATABASE_URL": "mysql://x"}, "CASEMATE_DATABASE_URL"),
    ("server: [1, 2]\n", {}, "server: expected a mapping"),
])
def test_bad_values_name_the_key(tmp_path, text, env, fragment):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_settings(p, env=env)
    assert fragment in str(exc.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.yaml", env={})
