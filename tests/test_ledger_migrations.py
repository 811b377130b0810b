"""The ledger schema: migrations apply once, in order, race-free, and the table enforces its
contract (entry types, ISO currency, updated_at maintained)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from recon_assets.ledger.migrations import MigrationError, apply_migrations, load_migrations

pytest_plugins = ["tests.ledger_fixtures"]

pytestmark = pytest.mark.timeout(120)

_SCHEMA_STATE = """
SELECT 'col', table_name || '.' || column_name || ':' || data_type || ':' || is_nullable
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'idx', indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'con', conrelid::regclass::text || '.' || conname || ':' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'trg', tgname FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'mig', version || ':' || filename || ':' || checksum FROM schema_migrations
ORDER BY 1, 2
"""


def _state(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return conn.execute(_SCHEMA_STATE).fetchall()


def test_migrations_apply_once_and_leave_the_same_state(empty_db_dsn: str) -> None:
    shipped = [m.filename for m in load_migrations()]
    assert shipped and shipped[0].startswith("0001_")
    with psycopg.connect(empty_db_dsn, autocommit=True) as conn:
        assert apply_migrations(conn) == shipped
        first = _state(conn)
        assert apply_migrations(conn) == []
        assert _state(conn) == first
    names = {row[1] for row in first if row[0] == "idx"}
    assert any("(posted_at)" in n for n in names)
    assert any("(external_ref)" in n for n in names)


def test_concurrent_appliers_apply_each_file_once(empty_db_dsn: str) -> None:
    """Two processes starting at once (the advisory lock): one applies, the other finds nothing."""
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        try:
            with psycopg.connect(empty_db_dsn) as conn:
                barrier.wait()
                results.append(apply_migrations(conn))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(len(r) for r in results) == [0, 0, len(load_migrations())]


def test_an_edited_applied_migration_is_refused(empty_db_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "0001_t.sql").write_text("CREATE TABLE t (a int);")
    with psycopg.connect(empty_db_dsn) as conn:
        assert apply_migrations(conn, tmp_path) == ["0001_t.sql"]
        (tmp_path / "0001_t.sql").write_text("CREATE TABLE t (a bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            apply_migrations(conn, tmp_path)


def test_a_failing_migration_leaves_no_trace_and_keeps_earlier_ones(
    empty_db_dsn: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE ok (a int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (a int); SELECT 1/0;")
    with psycopg.connect(empty_db_dsn) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            apply_migrations(conn, tmp_path)
        conn.rollback()
        assert conn.execute("SELECT version FROM schema_migrations").fetchall() == [("0001",)]
        assert conn.execute("SELECT to_regclass('half')").fetchone() == (None,)
        assert conn.execute("SELECT to_regclass('ok')").fetchone() == ("ok",)


def test_migration_file_names_are_validated(tmp_path: Path) -> None:
    (tmp_path / "1_bad.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        load_migrations(tmp_path)


def test_apply_refuses_a_connection_inside_a_transaction(ledger_conn: psycopg.Connection) -> None:
    ledger_conn.execute("SELECT 1")
    with pytest.raises(MigrationError, match="not in a transaction"):
        apply_migrations(ledger_conn)


def _insert(conn: psycopg.Connection, **overrides: object) -> int:
    row: dict[str, object] = {
        "entry_type": "charge",
        "external_ref": "ch_1",
        "account": "stripe_clearing",
        "amount_minor": 1000,
        "currency": "USD",
        "posted_at": datetime(2024, 3, 10, 12, tzinfo=UTC),
        "source_system": "test",
    } | overrides
    cols = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    cur = conn.execute(
        f"INSERT INTO ledger_entries ({cols}) VALUES ({marks}) RETURNING id", list(row.values())
    )
    return int(cur.fetchone()[0])  # type: ignore[index]


@pytest.mark.parametrize(
    "overrides",
    [
        {"entry_type": "payment"},
        {"currency": "usd"},
        {"currency": "US"},
        {"entry_type": "charge", "external_ref": None},
        {"entry_type": "reversal", "reversal_of": None},
        {"account": ""},
    ],
    ids=[
        "entry_type",
        "lowercase_currency",
        "short_currency",
        "charge_without_ref",
        "reversal_without_target",
        "empty_account",
    ],
)
def test_the_table_rejects_what_a_ledger_must_not_hold(
    ledger_conn: psycopg.Connection, overrides: dict[str, object]
) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        _insert(ledger_conn, **overrides)


def test_updated_at_moves_on_a_real_edit_only(ledger_conn: psycopg.Connection) -> None:
    ledger_conn.autocommit = True
    entry = _insert(ledger_conn)
    target = _insert(ledger_conn, entry_type="adjustment", external_ref=None)
    _insert(
        ledger_conn,
        entry_type="reversal",
        external_ref=None,
        reversal_of=target,
        amount_minor=-1000,
    )
    created, updated = ledger_conn.execute(
        "SELECT created_at, updated_at FROM ledger_entries WHERE id = %s", (entry,)
    ).fetchone()  # type: ignore[misc]
    ledger_conn.execute(
        "UPDATE ledger_entries SET amount_minor = amount_minor WHERE id = %s", (entry,)
    )
    (same,) = ledger_conn.execute(
        "SELECT updated_at FROM ledger_entries WHERE id = %s", (entry,)
    ).fetchone()  # type: ignore[misc]
    assert same == updated
    ledger_conn.execute("UPDATE ledger_entries SET amount_minor = 999 WHERE id = %s", (entry,))
    (moved,) = ledger_conn.execute(
        "SELECT updated_at FROM ledger_entries WHERE id = %s", (entry,)
    ).fetchone()  # type: ignore[misc]
    assert moved > updated >= created
