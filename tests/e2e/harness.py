"""Start real processes for end-to-end tests: the mock upstream and `casemate serve`."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml


def inherited(name: str) -> bool:
    """The parent's environment minus its Casemate settings; compiled detector databases are shared."""
    return not name.startswith("CASEMATE_") or name == "CASEMATE_HS_CACHE_DIR"


ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 40.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered:\n{out[-4000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s ({last})")


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class MockUpstream:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.mock_upstream", "--host", "127.0.0.1",
                                      "--port", str(self.port)], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.proc.stdout.read().decode(errors="replace"))
                time.sleep(0.05)
        raise RuntimeError("mock upstream did not start")

    def requests(self) -> list[dict[str, Any]]:
        r = httpx.get(self.url + "/_mock/requests", timeout=5)
        r.raise_for_status()
        doc = r.json()
        return doc["requests"] if isinstance(doc, dict) else doc

    def clear(self) -> None:
        httpx.delete(self.url + "/_mock/requests", timeout=5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class CasemateServer:
    """`casemate serve --config <yaml>` in a subprocess, ready when /ready answers 200."""

    def __init__(self, tmp: Path, config: dict[str, Any], *, workers: int = 1, role: str = "all",
                 env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.admin_port = free_port()
        cfg = dict(config)
        cfg.setdefault("data_dir", str(tmp / "data"))
        server = dict(cfg.get("server") or {})
        server.update({"host": "127.0.0.1", "port": self.port, "admin_port": self.admin_port, "workers": workers,
                       "role": role})
        server.setdefault("shutdown_grace_s", 20)
        cfg["server"] = server
        cfg.setdefault("logging", {"level": "INFO", "json": True})
        self.config = cfg
        self.path = tmp / "casemate.yaml"
        self.path.write_text(yaml.safe_dump(cfg))
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        full_env = {k: v for k, v in os.environ.items() if inherited(k)}
        full_env["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
        full_env.update(env or {})
        self.log_path = tmp / "casemate.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "proxy.cli", "serve", "--config", str(self.path)],
                                     cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_http(self.url + "/ready", proc=None)
            if role in ("all", "admin"):
                wait_port(self.admin_port)     # with several workers the admin app lives in worker 0 only
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"casemate did not become ready:\n{self.log()[-6000:]}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


def base_config(mock: MockUpstream, keys: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "providers": [
            {"name": "mock", "kind": "openai", "base_url": mock.url + "/v1", "api_key": "sk-mock", "models": ["*"],
             "max_retries": 2, "backoff_base_s": 0.05, "read_timeout_s": 5,
             "prices": {"gpt-4o-mini": [0.00015, 0.0006]}},
            {"name": "claude", "kind": "anthropic", "base_url": mock.url + "/v1", "api_key": "sk-ant-mock",
             "models": ["claude-3-5-sonnet"]},
            {"name": "azure", "kind": "azure", "base_url": mock.url, "api_key": "az-mock",
             "models": ["azure-gpt"], "deployments": {"azure-gpt": "gpt4-deploy"}, "api_version": "2024-10-21"},
            {"name": "slow", "kind": "openai", "base_url": mock.url + "/v1", "api_key": "sk-mock",
             "models": ["slow-model"], "read_timeout_s": 0.5, "max_retries": 0},
        ],
        "default_provider": "mock",
        "keys": keys,
    }
    cfg.update(extra)
    return cfg
