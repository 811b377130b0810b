"""Connection failures are clear and never carry the password."""

from __future__ import annotations

import psycopg
import pytest

from recon_assets.ledger.connection import (
    LedgerConnectionError,
    connect,
    describe_dsn,
    redact,
)
from recon_assets.local.postgres import EmbeddedPostgres, free_port

pytest_plugins = ["tests.ledger_fixtures"]

pytestmark = pytest.mark.timeout(120)

SECRET = "s3cr3t-Pa55w0rd"


def _assert_clean(exc: BaseException) -> None:
    rendered = f"{exc!s} {exc!r} {exc.__cause__!r}"
    assert SECRET not in rendered
    assert exc.__cause__ is None and exc.__suppress_context__


def test_nothing_listening_is_a_clear_redacted_error() -> None:
    port = free_port()
    dsn = f"postgresql://ledger_reader:{SECRET}@127.0.0.1:{port}/ledger"
    with pytest.raises(LedgerConnectionError) as info:
        connect(dsn, connect_timeout=5)
    _assert_clean(info.value)
    assert f"ledger_reader@127.0.0.1:{port}/ledger" in str(info.value)
    assert "refused" in str(info.value).lower()


def test_a_wrong_password_is_a_clear_redacted_error(
    ledger_pg: EmbeddedPostgres, ledger_db_dsn: str
) -> None:
    """The embedded server trusts 127.0.0.1; a role that must use scram shows the real failure."""
    role = "recon_pw_probe"
    with psycopg.connect(ledger_db_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'right-password'")
        hba = conn.execute("SHOW hba_file").fetchone()[0]  # type: ignore[index]
        with open(hba, "r+") as fh:  # tests run as root or as the server's owner
            rules = fh.read()
            fh.seek(0)
            fh.write(f"host all {role} 127.0.0.1/32 scram-sha-256\n{rules}")
        conn.execute("SELECT pg_reload_conf()")
    port = ledger_pg.dsn.rsplit(":", 1)[1].split("/")[0]
    try:
        for dsn in (
            f"postgresql://{role}:{SECRET}@127.0.0.1:{port}/postgres",
            f"host=127.0.0.1 port={port} user={role} password={SECRET} dbname=postgres",
        ):
            with pytest.raises(
                LedgerConnectionError, match="password authentication failed"
            ) as info:
                connect(dsn)
            _assert_clean(info.value)
        connect(f"postgresql://{role}:right-password@127.0.0.1:{port}/postgres").close()
    finally:
        with open(hba, "w") as fh:
            fh.write(rules)
        with psycopg.connect(ledger_db_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")


def test_a_malformed_dsn_is_redacted_too() -> None:
    dsn = f"host=127.0.0.1 password={SECRET} port=5432 dbname"  # missing "=" after dbname
    with pytest.raises(LedgerConnectionError) as info:
        connect(dsn)
    _assert_clean(info.value)


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql://u:{SECRET}@h:5432/db",
        f"postgres://u:{SECRET}@h/db?sslmode=require",
        f"host=h password={SECRET} dbname=x",
        f"host=h password='{SECRET} x' dbname=x",
        f"postgresql://u@h/db?password={SECRET}&sslmode=require",
    ],
)
def test_redact_removes_passwords_in_every_dsn_form(text: str) -> None:
    assert SECRET not in redact(text, text)
    assert SECRET not in redact(f"error near {text!r}")


def test_describe_dsn_names_the_server_without_the_secret() -> None:
    assert (
        describe_dsn(f"postgresql://u:{SECRET}@db.internal:6432/ledger")
        == "u@db.internal:6432/ledger"
    )


def test_a_read_only_session_refuses_every_write_and_keeps_the_dsns_own_options(
    ledger_db_dsn: str,
) -> None:
    """Every read of a ledger recon does not own is a session the server itself keeps
    read-only: a write fails there, whatever the role may do."""
    dsn = f"{ledger_db_dsn}?options=-c%20search_path%3Dpublic"
    with connect(dsn, read_only=True, autocommit=True) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert conn.execute("SHOW search_path").fetchone() == ("public",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE recon_must_not_write (x int)")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM ledger_entries")
    with connect(ledger_db_dsn, autocommit=True) as conn:  # a writer (seeding) is not
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("off",)


def test_a_connection_failure_is_one_line() -> None:
    """libpq's message spans lines ('Is the server running ...?'): a CLI prints ours as is."""
    port = free_port()
    with pytest.raises(LedgerConnectionError) as info:
        connect(f"postgresql://u:{SECRET}@127.0.0.1:{port}/books", read_only=True)
    assert "\n" not in str(info.value)
    assert f"127.0.0.1:{port}/books" in str(info.value)
    _assert_clean(info.value)
