"""``make bench``: direct, bare hop and Casemate side by side, JSON and streaming.

One run starts the mock upstream, the bare aiohttp hop and Casemate (``casemate serve
--role proxy``) as subprocesses and drives each with the closed-loop load generator
using a ~1 KB chat request. Where the machine has two or more cores the process under
test runs on core 0 while the mock and the load generator share core 1. Every scenario
has a warm-up phase, then a measured phase bounded in request count and time; the
CPU cost per request of the process under test (and of its worker children) comes
from ``/proc/<pid>/stat`` utime + stime over the measured phase.

The scenarios the ratios compare (bare hop, Casemate, Casemate's core chain; JSON and
stream; and the MCP server direct and through ``/mcp``) run side by side: all three servers are up at once and are measured in
alternating rounds (``--rounds``, default 3), each round a share of the measured phase,
and a scenario's figures combine its rounds. A shared or virtual machine's speed
drifts by tens of percent within minutes; alternating spreads that drift over every
scenario instead of loading it onto whichever ran in a slow minute.

Results: ``bench/results/bench.json`` (stable shape, read by CI) and
``bench/results/bench.md``; a table is printed as well. The process exits 1 when a
Casemate scenario could not run, with the reason in the table and the JSON.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import secrets
import shutil
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench.loadgen import NONCE, LoadResult, LoadSpec, chat_body, run

__all__ = ["BenchConfig", "main", "process_cpu_seconds"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REDIS_URL = "redis://127.0.0.1:6379/15"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_MOCK_KEY = "sk-mock"
_TAIL_LINES = 15
_MAX_ERROR_RATE = 0.01
_IDLE_PROBE_REQUESTS = 100
_IDLE_PROBE_SECONDS = 5.0
_IDLE_CHECK_REQUESTS = 2000


class ScenarioFailed(RuntimeError):
    """A scenario could not be measured (its server did not come up, or every request failed)."""


@dataclass(frozen=True, slots=True)
class BenchConfig:
    json_requests: int = 5000
    stream_requests: int = 1000
    mcp_requests: int = 1000
    warmup_requests: int = 400
    concurrency: int = 16
    phase_seconds: float = 20.0
    warmup_seconds: float = 5.0
    body_bytes: int = 1024
    stream_chunk_delay_ms: int = 1
    total_budget_s: float = 480.0
    casemate: bool = True
    rounds: int = 3
    round_warmup_requests: int = 100


# --- processes and CPU accounting ---------------------------------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and all its live descendants, in seconds."""
    ticks = 0
    for member in _descendants(pid):
        fields = _stat_fields(member)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / _CLK_TCK


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(slots=True)
class _Server:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-_TAIL_LINES:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _http_status(url: str, headers: Mapping[str, str] | None = None) -> int | None:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def _wait_ready(server: _Server, url: str, headers: Mapping[str, str] | None, timeout_s: float,
                accept: frozenset[int]) -> None:
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise ScenarioFailed(f"{server.name} exited with code {server.proc.returncode} before it was ready; "
                                 f"log tail:\n{server.tail()}")
        status = _http_status(url, headers)
        if status in accept:
            return
        time.sleep(0.2)
    raise ScenarioFailed(f"{server.name} did not answer {sorted(accept)} on {url} within {timeout_s:.0f}s "
                         f"(last status {status}); log tail:\n{server.tail()}")


@contextmanager
def _serve(name: str, argv: Sequence[str], workdir: Path, ready_url: str, *, cores: set[int] | None,
           ready_headers: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None,
           ready_timeout_s: float = 30.0, ready_status: frozenset[int] = frozenset({200})) -> Iterator[_Server]:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        try:
            proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT,
                                    env={**os.environ, **(env or {})})
        except OSError as exc:
            raise ScenarioFailed(f"{name} could not start: {exc}") from None
    if cores:
        # before the interpreter has started: worker processes forked later inherit the mask
        os.sched_setaffinity(proc.pid, cores)
    server = _Server(name, proc, log)
    try:
        _wait_ready(server, ready_url, ready_headers, ready_timeout_s, ready_status)
        yield server
    finally:
        server.stop()


# --- scenarios ------------------------------------------------------------------------------------

def _measure(name: str, spec: LoadSpec, warmup: LoadSpec, pid: int, mock_pid: int, *,
             idle_probe: bool = True) -> dict[str, Any]:
    warm = run(warmup)
    if warm.requests == 0:
        raise ScenarioFailed(f"{name}: every warm-up request failed: {warm.statuses}")
    cpu0, mock0 = process_cpu_seconds(pid), process_cpu_seconds(mock_pid)
    ours0, busy0, t0 = process_cpu_seconds(os.getpid()), _busy_cpu_seconds(), time.monotonic()
    result: LoadResult = run(spec)
    cpu1, mock1 = process_cpu_seconds(pid), process_cpu_seconds(mock_pid)
    ours1, busy1, t1 = process_cpu_seconds(os.getpid()), _busy_cpu_seconds(), time.monotonic()
    # CPU that processes outside this bench (and its servers) took meanwhile, in % of the machine:
    # on a shared host a busy neighbour inflates CPU per request and deflates throughput
    other = max(0.0, (busy1 - busy0) - (ours1 - ours0))
    answered = result.requests + result.errors
    if result.errors > answered * _MAX_ERROR_RATE:
        raise ScenarioFailed(f"{name}: {result.errors} of {answered} measured requests failed "
                             f"({result.statuses}); CPU per request would be meaningless")
    out: dict[str, Any] = {
        "rps": result.rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
        "cpu_us_per_req": round((cpu1 - cpu0) * 1e6 / answered, 1),
        "upstream_cpu_us_per_req": round((mock1 - mock0) * 1e6 / answered, 1),
        "requests": result.requests, "errors": result.errors, "statuses": result.statuses,
        "duration_s": result.duration_s, "p90_ms": result.p90_ms, "mean_ms": result.mean_ms,
        "other_load_pct": round(100 * other / max(1e-9, (t1 - t0) * (os.cpu_count() or 1)), 1),
    }
    if spec.stream:
        out["ttft_p50_ms"] = result.ttft_p50_ms
        out["ttft_p99_ms"] = result.ttft_p99_ms
    if spec.stream and idle_probe:
        # one connection, no queueing: the time to first token the proxy itself adds
        idle = run(replace(spec, concurrency=1, requests=_IDLE_PROBE_REQUESTS, duration_s=_IDLE_PROBE_SECONDS))
        out["ttft_idle_p50_ms"] = idle.ttft_p50_ms
    return out


_SUMMED = ("requests", "errors", "duration_s")
_MEDIAN = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "ttft_p50_ms", "ttft_p99_ms", "ttft_idle_p50_ms")


def combine_rounds(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One scenario measured in several rounds: CPU per request over all requests, throughput over
    the whole measured time, the median round's latency percentiles, the worst round's outside load,
    and each round's CPU per request (``rounds_cpu_us_per_req``) to show the spread."""
    if len(parts) == 1:
        return dict(parts[0])
    out: dict[str, Any] = dict(parts[-1])
    answered = [p["requests"] + p["errors"] for p in parts]
    total = sum(answered)
    for key in _SUMMED:
        out[key] = round(sum(p[key] for p in parts), 3) if key == "duration_s" else sum(p[key] for p in parts)
    statuses: dict[str, int] = {}
    for p in parts:
        for code, n in (p.get("statuses") or {}).items():
            statuses[code] = statuses.get(code, 0) + n
    out["statuses"] = statuses
    out["rps"] = round(out["requests"] / out["duration_s"], 1) if out["duration_s"] else 0.0
    for key in ("cpu_us_per_req", "upstream_cpu_us_per_req"):
        out[key] = round(sum(p[key] * n for p, n in zip(parts, answered)) / max(1, total), 1)
    for key in _MEDIAN:
        values = sorted(p[key] for p in parts if p.get(key) is not None)
        if values:
            out[key] = values[(len(values) - 1) // 2]
    out["other_load_pct"] = max(p.get("other_load_pct") or 0.0 for p in parts)
    out["rounds_cpu_us_per_req"] = [p["cpu_us_per_req"] for p in parts]
    return out


class _Bench:
    def __init__(self, config: BenchConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.started = time.monotonic()
        cores = sorted(os.sched_getaffinity(0))
        self.pinned = len(cores) >= 2
        self.proxy_cores = {cores[0]} if self.pinned else None
        self.client_cores = {cores[1]} if self.pinned else None
        self.all_cores = set(cores)
        self.scenarios: dict[str, dict[str, Any]] = {}
        self.failed: list[str] = []

    def specs(self, url: str, key: str, stream: bool) -> tuple[LoadSpec, LoadSpec]:
        c = self.config
        body = chat_body(c.body_bytes, stream=stream)
        headers = {"Authorization": f"Bearer {key}"}
        measured = LoadSpec(url=url, body=body, headers=headers, concurrency=c.concurrency,
                            requests=c.stream_requests if stream else c.json_requests,
                            duration_s=c.phase_seconds, stream=stream)
        warmup = LoadSpec(url=url, body=body, headers=headers, concurrency=c.concurrency,
                          requests=c.warmup_requests, duration_s=c.warmup_seconds, stream=stream)
        return measured, warmup

    def scenario(self, name: str, url: str, key: str, stream: bool, pid: int, mock_pid: int) -> None:
        if time.monotonic() - self.started > self.config.total_budget_s:
            self.fail(name, f"skipped: the run exceeded its {self.config.total_budget_s:.0f}s budget")
            return
        print(f"  {name} ...", flush=True)
        measured, warmup = self.specs(url, key, stream)
        try:
            self.scenarios[name] = _measure(name, measured, warmup, pid, mock_pid)
        except ScenarioFailed as exc:
            self.fail(name, str(exc))

    def fail(self, name: str, reason: str) -> None:
        print(f"  {name} FAILED: {reason}", file=sys.stderr, flush=True)
        self.scenarios[name] = {"error": reason, "rps": None, "p50_ms": None, "p99_ms": None,
                                "cpu_us_per_req": None}
        self.failed.append(name)

    def run(self) -> None:
        py = sys.executable
        if self.client_cores:
            os.sched_setaffinity(0, self.client_cores)
        mock_port, hop_port = _free_port(), _free_port()
        mock_url = f"http://127.0.0.1:{mock_port}"
        mock_argv = [py, "-m", "bench.mock_upstream", "--port", str(mock_port), "--no-record",
                     "--chunk-delay-ms", str(self.config.stream_chunk_delay_ms)]
        with _serve("mock", mock_argv,
                    self.workdir, f"{mock_url}/v1/models", cores=self.client_cores,
                    ready_headers={"Authorization": f"Bearer {_MOCK_KEY}"}) as mock:
            mock_pid = mock.proc.pid
            chat = "/v1/chat/completions"
            self.scenario("direct", mock_url + chat, _MOCK_KEY, False, mock_pid, mock_pid)
            self.scenario("direct_stream", mock_url + chat, _MOCK_KEY, True, mock_pid, mock_pid)
            hop_url = f"http://127.0.0.1:{hop_port}"
            with ExitStack() as stack:
                side_by_side: list[tuple[str, str, str, int]] = []
                try:
                    hop = stack.enter_context(_serve(
                        "bare_hop", [py, "-m", "bench.bare_hop", "--port", str(hop_port), "--upstream", mock_url],
                        self.workdir, f"{hop_url}{chat}", cores=self.proxy_cores,
                        ready_timeout_s=15, ready_status=frozenset({405})))
                    side_by_side.append(("bare_hop", hop_url + chat, _MOCK_KEY, hop.proc.pid))
                except ScenarioFailed as exc:
                    self.fail("bare_hop", str(exc))
                    self.fail("bare_hop_stream", str(exc))
                full: tuple[_Server, str, str] | None = None
                if self.config.casemate:
                    # the full chain and the data-plane chain alone (issue 2's target: every detector off)
                    for name, policy in (("casemate", None), ("casemate_core", CORE_POLICY)):
                        try:
                            server, url, key = stack.enter_context(
                                self.casemate(name, mock_url, 1, self.proxy_cores, {}, policy))
                        except ScenarioFailed as exc:
                            self.fail(name, str(exc))
                            self.fail(f"{name}_stream", str(exc))
                            continue
                        side_by_side.append((name, url, key, server.proc.pid))
                        if policy is None:
                            full = (server, url, key)
                for stream in (False, True):
                    self.alternate(side_by_side, stream, mock_pid)
                if full is not None:
                    server, url, key = full
                    self.check_scenario(url.rsplit("/v1/", 1)[0], key, server.proc.pid, mock_pid)
            if self.config.casemate:
                self.run_workers(mock_url, mock_pid)
                self.run_mcp(mock_url)

    def alternate(self, servers: Sequence[tuple[str, str, str, int]], stream: bool, mock_pid: int) -> None:
        """Measure every server in turn, ``rounds`` times, each round a share of the measured phase."""
        c = self.config
        rounds = max(1, c.rounds)
        parts: dict[str, list[dict[str, Any]]] = {}
        failed: set[str] = set()
        for i in range(rounds):
            for name, url, key, pid in servers:
                scenario = f"{name}_stream" if stream else name
                if scenario in failed:
                    continue
                if time.monotonic() - self.started > c.total_budget_s:
                    if scenario not in parts:
                        self.fail(scenario, f"skipped: the run exceeded its {c.total_budget_s:.0f}s budget")
                        failed.add(scenario)
                    continue
                print(f"  {scenario} (round {i + 1}/{rounds}) ...", flush=True)
                measured, warmup = self.specs(url, key, stream)
                measured = replace(measured, requests=max(1, -(-measured.requests // rounds)),
                                   duration_s=measured.duration_s / rounds)
                if i:
                    warmup = replace(warmup, requests=c.round_warmup_requests, duration_s=1.0)
                try:
                    parts.setdefault(scenario, []).append(
                        _measure(scenario, measured, warmup, pid, mock_pid, idle_probe=i == rounds - 1))
                except ScenarioFailed as exc:
                    self.fail(scenario, str(exc))
                    failed.add(scenario)
        for scenario, measured_parts in parts.items():
            if scenario not in failed:
                self.scenarios[scenario] = combine_rounds(measured_parts)

    def run_workers(self, mock_url: str, mock_pid: int) -> None:
        runs: list[tuple[str, dict[str, str]]] = [("casemate_2_workers", {})]
        if _redis_answers():
            runs.append(("casemate_2_workers_redis", {"CASEMATE_REDIS_URL": REDIS_URL}))
        for name, env in runs:
            try:
                with self.casemate(name, mock_url, 2, self.all_cores, env) as (server, url, key):
                    self.scenario(name, url, key, False, server.proc.pid, mock_pid)
            except ScenarioFailed as exc:
                if name not in self.scenarios:
                    self.fail(name, str(exc))

    # -- agent tool-call gating (issue 5): POST /api/v1/check, kept apart from the chat scenarios --
    def check_scenario(self, base_url: str, key: str, pid: int, mock_pid: int) -> None:
        """`casemate_check`: a typical tool call (read-only SQL) through the decision path and audit queue."""
        name = "casemate_check"
        if time.monotonic() - self.started > self.config.total_budget_s:
            self.fail(name, f"skipped: the run exceeded its {self.config.total_budget_s:.0f}s budget")
            return
        print(f"  {name} ...", flush=True)
        c = self.config
        body = orjson.dumps({"agent_id": "bench-agent", "tool_name": "run_sql", "arguments": {
            "query": "SELECT id, status, total FROM orders WHERE customer_id = 42 ORDER BY created_at DESC LIMIT 20"}})
        measured = LoadSpec(url=f"{base_url}/api/v1/check", body=body, headers={"Authorization": f"Bearer {key}"},
                            concurrency=c.concurrency, requests=c.json_requests, duration_s=c.phase_seconds)
        warmup = replace(measured, requests=c.warmup_requests, duration_s=c.warmup_seconds)
        try:
            self.scenarios[name] = result = _measure(name, measured, warmup, pid, mock_pid)
        except ScenarioFailed as exc:
            self.fail(name, str(exc))
            return
        # one connection, no queueing: the latency of a check is then the proxy's own time (plus loopback)
        idle = run(replace(measured, concurrency=1, requests=_IDLE_CHECK_REQUESTS, duration_s=_IDLE_PROBE_SECONDS,
                           server_timing=True))
        result["idle_p50_ms"], result["idle_p99_ms"] = idle.p50_ms, idle.p99_ms
        # the proxy's own time per check (its Server-Timing header), without the client and the loopback
        result["idle_proxy_p50_ms"], result["idle_proxy_p99_ms"] = idle.server_p50_ms, idle.server_p99_ms

    # -- MCP firewall (issue 5): tools/call straight to a real MCP server, then through Casemate's /mcp --
    def run_mcp(self, mock_url: str) -> None:
        """`mcp_direct` and `casemate_mcp`: one connection (no queueing), so the difference of the two
        latencies is the time the firewall adds to a `tools/call` (check, relay, result scan)."""
        names = ("mcp_direct", "casemate_mcp")
        if time.monotonic() - self.started > self.config.total_budget_s:
            for name in names:
                self.fail(name, f"skipped: the run exceeded its {self.config.total_budget_s:.0f}s budget")
            return
        port = _free_port()
        upstream = f"http://127.0.0.1:{port}/mcp"
        argv = [sys.executable, "-m", "bench.mcp_upstream", "--port", str(port)]
        try:
            with _serve("mcp_upstream", argv, self.workdir, upstream, cores=self.client_cores,
                        ready_status=frozenset({400, 405, 406})) as up, \
                    self.casemate("casemate_mcp", mock_url, 1, self.proxy_cores, {}, None,
                                  {"mcp": {"upstream_url": upstream}}) as (server, url, key):
                proxy = url.rsplit("/v1/", 1)[0] + "/mcp"
                auth = {"Authorization": f"Bearer {key}", "X-Casemate-Agent-Id": "bench-agent"}
                # alternating rounds, like the chat scenarios: the added time is a difference of two
                # latencies, so both must see the same machine
                targets = [("mcp_direct", upstream, {}, up.proc.pid), ("casemate_mcp", proxy, auth, server.proc.pid)]
                rounds = max(1, self.config.rounds)
                parts: dict[str, list[dict[str, Any]]] = {}
                sessions: dict[str, dict[str, str]] = {}
                for i in range(rounds):
                    for name, target, headers, pid in targets:
                        if name in self.scenarios:          # failed
                            continue
                        print(f"  {name} (round {i + 1}/{rounds}) ...", flush=True)
                        if name not in sessions:
                            try:
                                sessions[name] = self.mcp_headers(target, headers)
                            except OSError as exc:
                                self.fail(name, f"MCP initialize failed: {exc}")
                                continue
                        try:
                            parts.setdefault(name, []).append(
                                self.mcp_round(name, target, sessions[name], pid, up.proc.pid, first=i == 0))
                        except ScenarioFailed as exc:
                            self.fail(name, str(exc))
                for name, measured in parts.items():
                    if name not in self.scenarios:
                        self.scenarios[name] = combine_rounds(measured)
        except ScenarioFailed as exc:
            for name in names:
                if name not in self.scenarios:
                    self.fail(name, str(exc))

    @staticmethod
    def mcp_headers(url: str, auth: Mapping[str, str]) -> dict[str, str]:
        """Request headers for `url` after the MCP handshake (with the session id it gave)."""
        headers = {**auth, "Accept": "application/json, text/event-stream"}
        session = _mcp_session(url, headers)
        if session:
            headers["Mcp-Session-Id"] = session
        return headers

    def mcp_round(self, name: str, url: str, headers: Mapping[str, str], pid: int, upstream_pid: int, *,
                  first: bool) -> dict[str, Any]:
        """One round of `tools/call` on one connection: a share of the measured phase."""
        c = self.config
        rounds = max(1, c.rounds)
        measured = LoadSpec(url=url, body=MCP_CALL, headers=dict(headers), concurrency=1,
                            requests=max(1, -(-c.mcp_requests // rounds)), duration_s=c.phase_seconds / rounds)
        warmup = (replace(measured, requests=min(c.warmup_requests, 200), duration_s=c.warmup_seconds) if first
                  else replace(measured, requests=min(c.round_warmup_requests, 50), duration_s=1.0))
        return _measure(name, measured, warmup, pid, upstream_pid)

    @contextmanager
    def casemate(self, name: str, mock_url: str, workers: int, cores: set[int] | None,
                 env: Mapping[str, str], policy: dict[str, Any] | None = None,
                 extra: Mapping[str, Any] | None = None) -> Iterator[tuple[_Server, str, str]]:
        binary = Path(sys.executable).with_name("casemate")
        if not binary.exists():
            found = shutil.which("casemate")
            if found is None:
                raise ScenarioFailed("the `casemate` command is not installed (pip install -e . in the venv)")
            binary = Path(found)
        port = _free_port()
        key = "cm_live_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
        data_dir = self.workdir / f"{name}-data"
        data_dir.mkdir()
        config = {
            "data_dir": str(data_dir),
            "server": {"host": "127.0.0.1", "port": port, "workers": 1},
            "providers": [{"name": "mock", "kind": "openai", "base_url": f"{mock_url}/v1", "api_key": _MOCK_KEY,
                           "models": ["*"]}],
            "default_provider": "mock",
            "keys": [{"key": key, "tenant": "bench", "rpm": 100_000_000, "tpm": 10_000_000_000}],
            # the tenant's own limit falls back to the platform default (600 rpm); lift it too so the
            # limiter is measured at work, not refusing
            "ratelimit": {"default_rpm": 100_000_000, "default_tpm": 10_000_000_000},
        }
        if policy is not None:
            config["policy"] = policy
        config.update(extra or {})
        config_path = self.workdir / f"{name}.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        argv = [str(binary), "serve", "--config", str(config_path), "--role", "proxy", "--workers", str(workers)]
        url = f"http://127.0.0.1:{port}"
        with _serve(name, argv, self.workdir, f"{url}/ready", cores=cores, env=env, ready_timeout_s=60) as server:
            yield server, f"{url}/v1/chat/completions", key


# a typical read-only tool call; the JSON-RPC id is unique per request (the load generator's nonce)
MCP_CALL = (b'{"jsonrpc":"2.0","id":' + NONCE + b',"method":"tools/call",'
            b'"params":{"name":"get_weather","arguments":{"city":"Paris"}}}')


def _mcp_session(url: str, headers: Mapping[str, str]) -> str | None:
    """Run the MCP handshake (initialize, notifications/initialized); the session id the server gave."""
    def post(doc: dict[str, Any], session: str | None) -> tuple[str | None, bytes]:
        h = {**headers, "Content-Type": "application/json"}
        if session:
            h["Mcp-Session-Id"] = session
        request = urllib.request.Request(url, data=orjson.dumps(doc), headers=h, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers.get("Mcp-Session-Id"), response.read()

    session, _ = post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "casemate-bench", "version": "1"}}},
        None)
    post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    return session


CORE_POLICY: dict[str, Any] = {"injection": {"enabled": False}, "pii": {"enabled": False},
                               "secrets": {"enabled": False}, "output": {"enabled": False}}


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# --- report ---------------------------------------------------------------------------------------

def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> float | None:
    if not a or not b or not a.get(key) or not b.get(key):
        return None
    return round(a[key] / b[key], 3)


def _derive(scenarios: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    for stream, base in (("bare_hop_stream", "direct_stream"), ("casemate_stream", "bare_hop_stream"),
                         ("casemate_core_stream", "bare_hop_stream")):
        s, b = scenarios.get(stream), scenarios.get(base)
        if s and b and s.get("ttft_p50_ms") is not None and b.get("ttft_p50_ms") is not None:
            s["ttft_added_ms"] = round(s["ttft_p50_ms"] - b["ttft_p50_ms"], 3)
            if s.get("ttft_idle_p50_ms") is not None and b.get("ttft_idle_p50_ms") is not None:
                s["ttft_idle_added_ms"] = round(s["ttft_idle_p50_ms"] - b["ttft_idle_p50_ms"], 3)
    mcp, mcp_direct = scenarios.get("casemate_mcp"), scenarios.get("mcp_direct")
    if mcp and mcp_direct and mcp.get("p50_ms") is not None and mcp_direct.get("p50_ms") is not None:
        mcp["added_p50_ms"] = round(mcp["p50_ms"] - mcp_direct["p50_ms"], 3)
        mcp["added_p99_ms"] = round(mcp["p99_ms"] - mcp_direct["p99_ms"], 3)
    return {
        "mcp_added_p50_ms": (mcp or {}).get("added_p50_ms"),
        "cpu_per_req_vs_bare_hop": _ratio(scenarios.get("casemate"), scenarios.get("bare_hop"), "cpu_us_per_req"),
        "core_cpu_per_req_vs_bare_hop": _ratio(scenarios.get("casemate_core"), scenarios.get("bare_hop"),
                                               "cpu_us_per_req"),
        "core_stream_cpu_vs_bare_hop": _ratio(scenarios.get("casemate_core_stream"), scenarios.get("bare_hop_stream"),
                                              "cpu_us_per_req"),
        "stream_cpu_vs_bare_hop": _ratio(scenarios.get("casemate_stream"), scenarios.get("bare_hop_stream"),
                                         "cpu_us_per_req"),
        "rps_2_workers_vs_1": _ratio(scenarios.get("casemate_2_workers"), scenarios.get("casemate"), "rps"),
        "rps_2_workers_redis_vs_1": _ratio(scenarios.get("casemate_2_workers_redis"), scenarios.get("casemate"),
                                           "rps"),
    }


def _busy_cpu_seconds() -> float:
    """CPU seconds the whole machine spent busy (every core; /proc/stat's first line, idle and iowait excluded)."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def _machine(pinned: bool, usable_cores: int) -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_model": model, "cores": os.cpu_count(), "usable_cores": usable_cores,
            "python": platform.python_version(), "platform": platform.platform(),
            "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "pinning": ("process under test on core 0; mock upstream and load generator on core 1; "
                        "multi-worker scenarios on all cores") if pinned else "none (single core)"}


_COLUMNS = (("scenario", None), ("rps", "rps"), ("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"),
            ("CPU µs/req", "cpu_us_per_req"), ("upstream µs/req", "upstream_cpu_us_per_req"),
            ("TTFT p50 ms", "ttft_p50_ms"), ("TTFT added ms", "ttft_added_ms"),
            ("idle TTFT ms", "ttft_idle_p50_ms"), ("idle TTFT added ms", "ttft_idle_added_ms"),
            ("idle p99 ms", "idle_p99_ms"), ("idle proxy p99 ms", "idle_proxy_p99_ms"),
            ("MCP added p50 ms", "added_p50_ms"), ("errors", "errors"),
            ("other load %", "other_load_pct"))


def _rows(scenarios: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for name, values in scenarios.items():
        if "error" in values:
            rows.append([name, "FAILED"] + [""] * (len(_COLUMNS) - 2))
            continue
        row = [name]
        for _, key in _COLUMNS[1:]:
            value = values.get(key)
            row.append("" if value is None else f"{value:g}" if isinstance(value, float) else str(value))
        rows.append(row)
    return rows


def render_table(scenarios: dict[str, dict[str, Any]]) -> str:
    header = [title for title, _ in _COLUMNS]
    rows = _rows(scenarios)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths)))
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _stream_chunks(body_bytes: int) -> int:
    """SSE chunks in the mock's streamed answer to the bench request: role, one per word, finish, usage, DONE."""
    messages = orjson.loads(chat_body(body_bytes, stream=True))["messages"]
    return len(("Echo: " + messages[-1]["content"]).split()) + 4


def render_markdown(report: dict[str, Any], config: BenchConfig) -> str:
    header = [title for title, _ in _COLUMNS]
    machine = report["machine"]
    out = ["# Casemate benchmark", "",
           (f"{machine['date']} · {machine['cpu_model']} · {machine['cores']} cores · "
            f"Python {machine['python']}"), "",
           (f"Closed loop, {config.concurrency} connections, ~{config.body_bytes} B chat request with a unique "
           f"nonce per request; {config.warmup_requests} warm-up requests, then up to {config.json_requests} "
           f"(JSON) / {config.stream_requests} (stream) measured requests or {config.phase_seconds:g}s. "
           f"CPU is utime+stime of the process under test (and its workers) over the measured phase; "
           f"for `direct` that process is the mock upstream itself. "
           f"bare_hop, casemate and casemate_core (JSON, then stream), and mcp_direct and casemate_mcp, run "
           f"side by side, measured in "
           f"{config.rounds} alternating rounds that share the measured phase, so a drift in the machine's "
           f"speed hits each of them alike; their rows combine the rounds (each round's CPU per request: "
           f"`rounds_cpu_us_per_req` in bench.json). "
           f"Pinning: {machine['pinning']}. Streams relay the mock's echo of the user message, "
           f"one SSE chunk per word ({_stream_chunks(config.body_bytes)} chunks per response, "
           f"{config.stream_chunk_delay_ms} ms apart, so that every hop relays chunk by chunk as it would "
           f"with a real model)."), ""]
    if machine["usable_cores"] < 4:
        out += [(f"With {machine['usable_cores']} usable cores the multi-worker scenarios share the "
                 f"CPUs with the mock upstream and the load generator, so `rps_2_workers_vs_1` shows "
                 f"contention, not the scaling a host with spare cores would see."), ""]
    busy = [name for name, values in report["scenarios"].items() if (values.get("other_load_pct") or 0) >= 10]
    if busy:
        out += [(f"Other processes on this machine took 10 % of it or more during {', '.join(busy)} "
                 f"(column `other load %`): those rows are inflated (CPU per request) or deflated (rps)."), ""]
    out += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in _rows(report["scenarios"])]
    out += ["", "| ratio | value |", "|---|---|"]
    out += [f"| {k} | {'n/a' if v is None else v} |" for k, v in report["ratios"].items()]
    errors = [(name, s["error"]) for name, s in report["scenarios"].items() if "error" in s]
    if errors:
        out += ["", "## Scenarios that did not run", ""]
        for name, reason in errors:
            first, *rest = reason.splitlines()
            out.append(f"- **{name}**: {first}")
            if rest:
                out += ["", "  ```", *(f"  {line}" for line in rest), "  ```"]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    defaults = BenchConfig()
    parser.add_argument("--json-requests", type=int, default=defaults.json_requests)
    parser.add_argument("--stream-requests", type=int, default=defaults.stream_requests)
    parser.add_argument("--warmup-requests", type=int, default=defaults.warmup_requests)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--phase-seconds", type=float, default=defaults.phase_seconds)
    parser.add_argument("--stream-chunk-delay-ms", type=int, default=defaults.stream_chunk_delay_ms,
                        help="the mock's pause between streamed chunks (0: send the whole answer at once)")
    parser.add_argument("--rounds", type=int, default=defaults.rounds,
                        help="alternating rounds of the side-by-side scenarios (bare hop, casemate, casemate_core)")
    parser.add_argument("--skip-casemate", action="store_true", help="measure only direct and bare hop")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    config = BenchConfig(json_requests=args.json_requests, stream_requests=args.stream_requests,
                         warmup_requests=args.warmup_requests, concurrency=args.concurrency,
                         phase_seconds=args.phase_seconds, stream_chunk_delay_ms=args.stream_chunk_delay_ms,
                         casemate=not args.skip_casemate, rounds=args.rounds)
    workdir = Path(tempfile.mkdtemp(prefix="casemate-bench-"))
    bench = _Bench(config, workdir)
    print(f"casemate bench (work dir {workdir})", flush=True)
    try:
        bench.run()
    except ScenarioFailed as exc:
        print(f"bench aborted: {exc}", file=sys.stderr)
        return 1
    scenarios = bench.scenarios
    ratios = _derive(scenarios)
    report = {"scenarios": scenarios, "ratios": ratios,
              "machine": _machine(bench.pinned, len(bench.all_cores))}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    (args.out / "bench.md").write_text(render_markdown(report, config))
    print()
    print(render_table(scenarios))
    print()
    for name, value in ratios.items():
        print(f"{name}: {'n/a' if value is None else value}")
    print(f"\nwrote {args.out / 'bench.json'} and {args.out / 'bench.md'}")
    if bench.failed:
        print(f"FAILED scenarios: {', '.join(bench.failed)} (see above)", file=sys.stderr)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
