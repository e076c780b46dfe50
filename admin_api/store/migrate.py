"""Versioned SQL migrations: `admin_api/migrations/<dialect>/NNNN_name.sql`, applied in order.

Applied versions are recorded in `schema_migrations`. Each file runs in its own
transaction together with its bookkeeping row, so a failed migration leaves no
half-applied schema. Statements are separated by `;` at the end of a line
(migration files hold no triggers or procedural bodies).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from admin_api.store.backend import Backend
from admin_api.store.codec import utcnow

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_SPLIT = re.compile(r";[ \t]*(?:--[^\n]*)?\n")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(dialect: str) -> list[Migration]:
    """The migration files of one dialect, in version order."""
    found: list[Migration] = []
    for path in sorted((MIGRATIONS_DIR / dialect).glob("*.sql")):
        m = _NAME.match(path.name)
        if m is None:
            raise ValueError(f"migration file name must look like 0001_name.sql: {path.name}")
        found.append(Migration(int(m.group(1)), m.group(2), path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {dialect}")
    return found


def _statements(sql: str) -> list[str]:
    parts = _SPLIT.split(sql + "\n")
    out = []
    for part in parts:
        lines = [ln for ln in part.splitlines() if ln.strip() and not ln.strip().startswith("--")]
        if lines:
            out.append("\n".join(lines))
    return out


async def apply_migrations(db: Backend, schema: str | None = None) -> list[int]:
    """Apply every pending migration; returns the versions applied now."""
    applied_now: list[int] = []
    async with db.transaction() as conn:
        if db.dialect == "postgres":
            await conn.execute("SELECT pg_advisory_xact_lock(7420112)")
            if schema:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
    for migration in load_migrations(db.dialect):
        async with db.transaction() as conn:
            if db.dialect == "postgres":
                await conn.execute("SELECT pg_advisory_xact_lock(7420112)")
            done = await conn.fetchval("SELECT 1 FROM schema_migrations WHERE version = $1", migration.version)
            if done:
                continue
            for statement in _statements(migration.sql):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                migration.version, migration.name, utcnow().isoformat(),
            )
            applied_now.append(migration.version)
    return applied_now
