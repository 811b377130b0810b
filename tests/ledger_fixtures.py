"""Pytest fixtures for a real ledger Postgres: one embedded server per test process.

Why one server and a database per test: `initdb` costs ~1 s and a cluster ~40 MB, but
`CREATE DATABASE ... TEMPLATE` of an already-migrated template costs ~50 ms with fsync off, and
gives each test a clean, isolated ledger. The server runs with `durable=False` (fsync off): its
data is thrown away at the end of the session.

The server is a process-wide singleton rather than plain fixture state, so the fixtures work both
when wired into conftest.py and when a test module imports them directly (each import would
otherwise register its own session fixture and start its own server).

The data dir lives at `<tmp>/home/postgres/data`, the layout `ledger_dsn(settings)` uses for
`settings.home = <tmp>/home`, so a test can check that local mode reuses a running server.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from recon_assets.ledger.migrations import apply_migrations
from recon_assets.local.postgres import EmbeddedPostgres

TEMPLATE_DB = "recon_ledger_template"

_lock = threading.Lock()
_server: EmbeddedPostgres | None = None
_base: Path | None = None


def _admin_dsn(dsn: str) -> str:
    return dsn.rsplit("/", 1)[0] + "/postgres"


def _db_dsn(dsn: str, dbname: str) -> str:
    return dsn.rsplit("/", 1)[0] + "/" + dbname


def traversable_tmpdir(prefix: str) -> Path:
    """A fresh folder the `postgres` user can traverse, on tmpfs when there is one.

    tmpfs because initdb and deleting a cluster are several times faster there than on a disk
    mounted with `discard`. mkdtemp makes a 0700 folder: we open our own throwaway folder for
    traversal so the `postgres` user can reach the data dir when the tests run as root.
    """
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None
    base = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    base.chmod(0o755)
    return base


def _shared_server() -> EmbeddedPostgres:
    global _server, _base
    with _lock:
        if _server is None:
            _base = traversable_tmpdir("recon-ledger-pg-")
            server = EmbeddedPostgres(_base / "home" / "postgres" / "data", durable=False)
            dsn = server.start()
            with psycopg.connect(dsn, autocommit=True) as conn:
                apply_migrations(conn)
            with psycopg.connect(_admin_dsn(dsn), autocommit=True) as conn:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                        sql.Identifier(TEMPLATE_DB), sql.Identifier(server.dbname)
                    )
                )
            _server = server
        return _server


def _shutdown() -> None:
    global _server, _base
    with _lock:
        if _server is not None:
            _server.stop()
            _server = None
        if _base is not None:
            shutil.rmtree(_base, ignore_errors=True)
            _base = None


@pytest.fixture(scope="session")
def ledger_pg() -> Iterator[EmbeddedPostgres]:
    """The session's embedded Postgres (fsync off), stopped and deleted at the end."""
    server = _shared_server()
    yield server
    _shutdown()


@pytest.fixture(scope="session")
def ledger_home(ledger_pg: EmbeddedPostgres) -> Path:
    """A RECON_HOME whose `postgres/data` is the running session server."""
    return ledger_pg.data_dir.parent.parent


def _create_db(server_dsn: str, template: str) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_dsn(server_dsn), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return name


def _drop_db(server_dsn: str, name: str) -> None:
    with psycopg.connect(_admin_dsn(server_dsn), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def database_copy(server_dsn: str, template: str = TEMPLATE_DB) -> Iterator[str]:
    """DSN of a new database copied from `template` on the server, dropped on exit."""
    name = _create_db(server_dsn, template)
    try:
        yield _db_dsn(server_dsn, name)
    finally:
        _drop_db(server_dsn, name)


@pytest.fixture
def ledger_db_dsn(ledger_pg: EmbeddedPostgres) -> Iterator[str]:
    """DSN of a fresh database with the ledger migrations applied, dropped after the test."""
    with database_copy(ledger_pg.dsn) as dsn:
        yield dsn


@pytest.fixture
def empty_db_dsn(ledger_pg: EmbeddedPostgres) -> Iterator[str]:
    """DSN of a fresh, empty database (no migrations), dropped after the test."""
    with database_copy(ledger_pg.dsn, "template0") as dsn:
        yield dsn


@pytest.fixture
def ledger_conn(ledger_db_dsn: str) -> Iterator[psycopg.Connection]:
    """A connection (not autocommit) to a fresh migrated ledger database."""
    with psycopg.connect(ledger_db_dsn) as conn:
        yield conn


__all__ = ["empty_db_dsn", "ledger_conn", "ledger_db_dsn", "ledger_home", "ledger_pg"]
