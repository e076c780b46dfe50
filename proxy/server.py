"""Server bootstrap: uvloop, one or N worker processes (SO_REUSEPORT), graceful shutdown.

SIGTERM / SIGINT: stop accepting, drain in-flight requests and streams (up to
`shutdown_grace_s`), flush the audit queue, close upstream pools, exit.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from proxy.config import BootstrapKey, ProviderSettings, Settings

log = logging.getLogger("casemate.server")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def demo_key(data_dir: Path) -> str:
    """The demo API key, made once and kept in `<data_dir>/demo_key` (mode 0600)."""
    from pipeline.secrets_box import generate_api_key

    path = data_dir / "demo_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = generate_api_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def prepare_demo(settings: Settings, env: dict[str, str]) -> tuple[Settings, int | None, str]:
    """Demo mode: a demo key, and OpenAI when OPENAI_API_KEY is set, else the local mock upstream."""
    key = demo_key(Path(settings.data_dir))
    keys = settings.keys + (BootstrapKey(key=key, tenant="demo", name="demo", role="owner"),)
    mock_port: int | None = None
    providers = settings.providers
    default = settings.default_provider
    if not providers:
        if env.get("OPENAI_API_KEY"):
            providers = (ProviderSettings(name="openai", kind="openai", base_url="https://api.openai.com/v1",
                                          api_key=env["OPENAI_API_KEY"], models=("*",)),)
            default = "openai"
        else:
            mock_port = 9911 if _port_free("127.0.0.1", 9911) else free_port()
            providers = (ProviderSettings(name="mock", kind="openai", base_url=f"http://127.0.0.1:{mock_port}/v1",
                                          api_key="sk-mock", models=("*",)),)
            default = "mock"
    return replace(settings, keys=keys, providers=providers, default_provider=default, workers=1), mock_port, key


def demo_banner(settings: Settings, key: str, mock_port: int | None) -> str:
    base = f"http://{settings.host}:{settings.port}"
    upstream = (f"the local mock upstream on 127.0.0.1:{mock_port} (no OPENAI_API_KEY set)" if mock_port
                else "OpenAI (OPENAI_API_KEY is set)")
    return f"""
Casemate is running (demo mode).
  proxy  {base}        admin  http://{settings.admin_host}:{settings.admin_port}
  upstream: {upstream}
  demo API key (also in {Path(settings.data_dir) / 'demo_key'}):
    {key}

Try it:
  curl -s {base}/v1/chat/completions \\
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "Hello, Casemate!"}}]}}'

  from openai import OpenAI
  client = OpenAI(base_url="{base}/v1", api_key="{key}")
  print(client.chat.completions.create(model="gpt-4o-mini",
        messages=[{{"role": "user", "content": "Hello, Casemate!"}}]).choices[0].message.content)
"""


async def run_worker(settings: Settings, index: int, *, mock_port: int | None = None,
                     ready: Callable[[], None] | None = None, detectors: Any = None) -> None:
    """One worker: the proxy app (every worker) and the admin app (worker 0), until SIGTERM/SIGINT."""
    from aiohttp import web

    from proxy.app import create_proxy_app
    from proxy.runtime import Runtime

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    runners: list[web.AppRunner] = []
    mock_runner = None
    if mock_port is not None:
        from bench.mock_upstream import create_app as create_mock

        mock_runner = web.AppRunner(create_mock(), access_log=None)
        await mock_runner.setup()
        await web.TCPSite(mock_runner, "127.0.0.1", mock_port).start()

    rt = Runtime(settings, detectors=detectors, worker=index)
    await rt.start()
    reuse = settings.workers > 1
    grace = settings.shutdown_grace_s
    if settings.role in ("all", "proxy"):
        r = web.AppRunner(create_proxy_app(rt, manage_runtime=False), access_log=None, shutdown_timeout=grace)
        await r.setup()
        await web.TCPSite(r, settings.host, settings.port, reuse_port=reuse, backlog=1024).start()
        runners.append(r)
    if settings.role in ("all", "admin") and index == 0:
        admin_app = _admin_app(rt)
        if admin_app is not None:
            r = web.AppRunner(admin_app, access_log=None, shutdown_timeout=grace)
            await r.setup()
            await web.TCPSite(r, settings.admin_host, settings.admin_port).start()
            runners.append(r)
    freeze_heap()
    log.info("worker %d listening (proxy %s:%d, role %s)", index, settings.host, settings.port, settings.role)
    if ready is not None:
        ready()
    await stop.wait()
    log.info("worker %d draining", index)
    for r in runners:
        await r.cleanup()          # stop accepting, wait for in-flight requests and streams
    await rt.close()               # flush audit, close pools
    if mock_runner is not None:
        await mock_runner.cleanup()
    log.info("worker %d stopped", index)


#: Young, middle and old generation thresholds of the collector while serving.
GC_THRESHOLDS = (50_000, 20, 50)


def freeze_heap() -> None:
    """Move everything built at start-up (detector databases, Presidio's recognizers, the app) out of
    the garbage collector's reach.

    Those objects live as long as the process; without this, every full collection walks hundreds of
    thousands of them in the middle of a request (measured: a fifth of the MCP path's time). Before a
    fork it also keeps the shared pages shared (the collector writes to every object it visits).
    """
    gc.collect()
    gc.freeze()
    # A request allocates a few hundred container objects, most freed by reference counting at once;
    # the default young-generation threshold (700) runs a collection every few requests and promotes
    # whatever 16 in-flight requests hold at that moment. Measured on the core chain: ~400 -> ~390 µs
    # of CPU per request (garbage collection off entirely: ~383).
    gc.set_threshold(*GC_THRESHOLDS)


def _admin_app(rt: Any) -> Any:
    try:
        from admin_api.app import create_admin_app
    except ImportError:
        log.warning("admin API not available in this build; serving the proxy only")
        return None
    return create_admin_app(rt)


def _install_uvloop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a hard dependency; keep asyncio as a fallback
        pass


def serve(settings: Settings, *, mock_port: int | None = None, banner: str | None = None) -> int:
    workers = settings.workers
    if workers > 1:
        mp = Path(settings.data_dir) / "prometheus"
        shutil.rmtree(mp, ignore_errors=True)
        mp.mkdir(parents=True, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(mp)
    _install_uvloop()
    from proxy.runtime import prepare_store

    asyncio.run(prepare_store(settings))
    from proxy.detection import build_detectors

    detectors = build_detectors() if settings.role in ("all", "proxy") else None   # once, shared by forks
    freeze_heap()

    def announce() -> None:
        if banner:
            print(banner, flush=True)

    if workers == 1:
        asyncio.run(run_worker(settings, 0, mock_port=mock_port, ready=announce, detectors=detectors))
        return 0

    children: list[int] = []
    for i in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                asyncio.run(run_worker(settings, i, detectors=detectors))
            except Exception:  # noqa: BLE001
                log.exception("worker %d crashed", i)
                code = 1
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: Any) -> None:
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    announce()
    status = 0
    for pid in children:
        while True:
            try:
                _, st = os.waitpid(pid, 0)
                if os.waitstatus_to_exitcode(st) != 0:
                    status = 1
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break
    return status
