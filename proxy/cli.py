"""`casemate` command line."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Sequence

DESCRIPTION = """Casemate: an inline security proxy for LLM traffic.

Point an OpenAI SDK at http://HOST:PORT/v1 with a Casemate API key; every request runs
the compiled chain of security stages (authentication, kill switch, rate limit, parse,
policy, prompt-injection scan, PII redaction, secrets scan, cache, upstream, output scan,
cache store, audit). The admin API (tenants, keys, policies, providers, kill switch,
audit) listens on the admin port.

Configuration: a YAML file (--config) plus CASEMATE_* environment variables
(CASEMATE_DATA_DIR, CASEMATE_DATABASE_URL, CASEMATE_REDIS_URL, CASEMATE_SECRET_KEY,
CASEMATE_LOG_LEVEL, ...); flags override both. CASEMATE_HS_CACHE_DIR names a private
directory where compiled detector databases are kept, so a restart loads them in
milliseconds instead of compiling them again (seconds)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="casemate", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the proxy and/or admin API",
                       description="Run the proxy (default 127.0.0.1:8080) and the admin API (127.0.0.1:8081).")
    s.add_argument("--config", metavar="FILE", help="YAML configuration file")
    s.add_argument("--role", choices=["all", "proxy", "admin"], help="which apps to serve (default all)")
    s.add_argument("--workers", type=int, metavar="N",
                   help="worker processes sharing the proxy port via SO_REUSEPORT (default 1)")
    s.add_argument("--host", help="proxy bind address (default 127.0.0.1)")
    s.add_argument("--port", type=int, help="proxy port (default 8080)")
    s.add_argument("--admin-port", type=int, help="admin API port (default 8081)")
    s.add_argument("--demo", action="store_true",
                   help="quickstart: make a demo API key (written to $CASEMATE_DATA_DIR/demo_key, mode 0600); "
                        "without providers configured, proxy to OpenAI when OPENAI_API_KEY is set, else start "
                        "the local mock upstream from bench/")

    m = sub.add_parser("migrate", help="apply database migrations and exit")
    m.add_argument("--config", metavar="FILE")

    b = sub.add_parser("bootstrap", help="create the first tenant, owner user and API key")
    b.add_argument("--config", metavar="FILE")
    b.add_argument("--tenant", required=True, help="organization name")
    b.add_argument("--email", required=True, help="owner's email")
    b.add_argument("--password", help="owner's password (default: read CASEMATE_BOOTSTRAP_PASSWORD)")

    sub.add_parser("version", help="print the version")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    from proxy.config import ConfigError, load_settings

    if args.command == "version":
        print("casemate 0.1.0")
        return 0
    try:
        overrides = {}
        if args.command == "serve":
            overrides = {"role": args.role, "workers": args.workers, "host": args.host, "port": args.port,
                         "admin_port": args.admin_port, "demo": args.demo or None}
        settings = load_settings(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"casemate: configuration error: {exc}", file=sys.stderr)
        return 2

    from proxy.logs import configure_logging

    configure_logging(settings.log_level, settings.log_json)

    if args.command == "serve":
        from proxy.server import demo_banner, prepare_demo, serve

        banner = None
        mock_port = None
        if settings.demo:
            settings, mock_port, key = prepare_demo(settings, dict(os.environ))
            banner = demo_banner(settings, key, mock_port)
        return serve(settings, mock_port=mock_port, banner=banner)

    if args.command == "migrate":
        from admin_api.store import open_store

        async def _migrate() -> None:
            store = await open_store(settings.effective_database_url)
            try:
                await store.migrate()
            finally:
                await store.close()

        asyncio.run(_migrate())
        print("migrations applied")
        return 0

    if args.command == "bootstrap":
        password = args.password or os.environ.get("CASEMATE_BOOTSTRAP_PASSWORD")
        if not password:
            print("casemate: bootstrap needs --password or CASEMATE_BOOTSTRAP_PASSWORD", file=sys.stderr)
            return 2
        from admin_api.bootstrap import run_bootstrap

        result = asyncio.run(run_bootstrap(settings, tenant=args.tenant, email=args.email, password=password))
        print(result)
        return 0
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
