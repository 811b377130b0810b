"""Versioned, plain-SQL migrations of the ledger schema, applied idempotently.

Why not an ORM's migrator: the ledger is a shared production database; its DDL must be readable
SQL that a DBA can review and run by hand. Files are `NNNN_name.sql` in `migrations/`, applied in
order, each once, each in its own transaction together with its row in `schema_migrations` (so a
failed file leaves no trace and the ones before it stay applied). A session advisory lock
serialises concurrent callers (two Dagster runs starting at once): the second waits, then finds
nothing to do. A checksum per file catches a migration edited after it was applied.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import psycopg
from psycopg import pq

MIGRATIONS_LOCK_KEY = 0x7265636F6E4C4D  # "reconLM": a fixed advisory-lock key for this schema
_NAME = re.compile(r"^(?P<version>\d{4})_[a-z0-9_]+\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    filename   text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    applied_by text NOT NULL DEFAULT current_user
)
"""


class MigrationError(RuntimeError):
    """The migration set or the database's record of it is inconsistent."""


@dataclass(frozen=True)
class Migration:
    version: str
    filename: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path | Traversable | None = None) -> list[Migration]:
    """The migration files of `directory` (default: the packaged ones), sorted by version."""
    root = directory if directory is not None else resources.files(__package__) / "migrations"
    found: dict[str, Migration] = {}
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        m = _NAME.match(entry.name)
        if m is None:
            raise MigrationError(f"migration file name {entry.name!r} is not NNNN_name.sql")
        version = m["version"]
        if version in found:
            raise MigrationError(f"two migrations share version {version}")
        found[version] = Migration(version, entry.name, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def apply_migrations(
    conn: psycopg.Connection, directory: Path | Traversable | None = None
) -> list[str]:
    """Apply the pending migrations in order; return the file names applied (empty if none).

    `conn` must not be inside a transaction; its autocommit setting is restored afterwards.
    Raises `MigrationError` if an applied file was edited or is no longer shipped.
    """
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise MigrationError("apply_migrations needs a connection that is not in a transaction")
    migrations = load_migrations(directory)
    previous_autocommit = conn.autocommit
    conn.autocommit = True  # the session lock and each file's own transaction need it
    applied: list[str] = []
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATIONS_LOCK_KEY,))
        try:
            conn.execute(_CREATE_TABLE)
            done = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
            shipped = {m.version for m in migrations}
            unknown = sorted(set(done) - shipped)
            if unknown:
                raise MigrationError(
                    f"the database has migrations this code does not ship: {unknown} "
                    "(is this code older than the schema?)"
                )
            for m in migrations:
                if m.version in done:
                    if done[m.version] != m.checksum:
                        raise MigrationError(
                            f"migration {m.filename} was changed after it was applied; "
                            "add a new migration instead of editing an applied one"
                        )
                    continue
                with conn.transaction():
                    conn.execute(m.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, filename, checksum) "
                        "VALUES (%s, %s, %s)",
                        (m.version, m.filename, m.checksum),
                    )
                applied.append(m.filename)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATIONS_LOCK_KEY,))
    finally:
        conn.autocommit = previous_autocommit
    return applied
