"""The ledger's one entry point, `stage_ledger`, and the warehouse side of late ledger data: a
backdated posting, an edit of an old entry and a re-pointed entry reach the warehouse on the
next run through the changes file, replaced by id, without touching the rest of their day; an
entry of a day never loaded waits for its day."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest

from recon_assets.ledger.stage import stage_ledger
from recon_assets.stage.manifest import read_keyed_manifest, read_manifest
from recon_assets.stage.store import LocalStageStore
from recon_assets.timewindows import day_window
from recon_assets.warehouse.duckdb_loader import DuckDBLoader

pytestmark = pytest.mark.timeout(120)

D1, D2, D3 = date(2024, 3, 9), date(2024, 3, 10), date(2024, 3, 11)  # D2 has 23 hours


def at(day: date, hours: float) -> datetime:
    return datetime.fromtimestamp(day_window(day).start + int(hours * 3600), UTC)


def insert(conn: psycopg.Connection, ref: str, posted: datetime, amount: int = 100) -> int:
    row = conn.execute(
        "INSERT INTO ledger_entries (entry_type, external_ref, account, amount_minor, currency, "
        "posted_at, source_system) VALUES ('charge', %s, 'stripe_clearing', %s, 'USD', %s, "
        "'test') RETURNING id",
        (ref, amount, posted),
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def test_days_and_late_changes_reach_the_warehouse_by_id(
    ledger_db_dsn: str, tmp_path: Path
) -> None:
    store = LocalStageStore(tmp_path / "stage")
    loader = DuckDBLoader(tmp_path / "w.duckdb")
    with psycopg.connect(ledger_db_dsn) as conn:
        a = insert(conn, "ch_a", at(D1, 2))
        b = insert(conn, "ch_b", at(D1, 5))
        c = insert(conn, "ch_c", at(D1, 23.5))  # 23:30 ET: still D1
        insert(conn, "ch_d", at(D2, 1))

    # -- run 1: D1 and D2; nothing loaded before, so no changes are read
    r1 = stage_ledger(ledger_db_dsn, store, [D1, D2], "run-1", changed_since=None)
    assert {d: (n.fetched, n.staged) for d, n in r1.per_day.items()} == {
        D1: (3, 3),
        D2: (1, 1),
    }
    assert r1.keyed is not None and r1.keyed.files == ()
    assert [m.day for m in r1.manifests] == [D1, D2]
    assert read_manifest(store, "ledger_entries", D1) == r1.manifests[0]
    loader.load(store, "ledger_entries", [D1, D2], run_id="run-1")
    synced = loader.query("select max(_synced_at) from raw.ledger_entries")[0][0]

    # -- after the extract: an old entry is edited, one is re-pointed to another charge, a
    # backdated posting lands on D1, and an entry is booked on D3 (never loaded yet)
    with psycopg.connect(ledger_db_dsn) as conn:
        conn.execute("UPDATE ledger_entries SET amount_minor = 999 WHERE id = %s", (a,))
        conn.execute("UPDATE ledger_entries SET external_ref = 'ch_z' WHERE id = %s", (b,))
        conn.commit()
        late = insert(conn, "ch_late", at(D1, 12))
        insert(conn, "ch_future", at(D3, 3))

    # -- run 2: only D2 is in the window; the changes on loaded days come along
    loaded_days = [r[0] for r in loader.query("select distinct partition_date from raw.load_log")]
    r2 = stage_ledger(
        ledger_db_dsn,
        store,
        [D2],
        "run-2",
        changed_since=synced,  # no look-back here: the test knows no transaction is in flight
        loaded_days=loaded_days,  # type: ignore[arg-type]
    )
    changes = read_keyed_manifest(store, "ledger_entries", "changes", "run-2")
    assert changes == r2.keyed and changes is not None
    assert [(f.day, f.rows) for f in changes.files] == [(D1, 3)]
    assert r2.counters["changed_entries"] == 3 and r2.keyed_rows_by_day == {D1: 3}
    keyed = loader.load_keyed(store, changes, run_id="run-2")
    assert (keyed.replaced_rows, keyed.inserted_rows) == (2, 3)

    rows = dict(
        (r[0], (r[1], r[2], r[3]))  # type: ignore[misc]
        for r in loader.query(
            "select id, external_ref, amount_minor, _partition_date from raw.ledger_entries"
        )
    )
    assert rows[a] == ("ch_a", 999, D1)  # the edit
    assert rows[b] == ("ch_z", 100, D1)  # re-pointed
    assert rows[late] == ("ch_late", 100, D1)  # the backdated posting
    assert rows[c] == ("ch_c", 100, D1)  # the rest of D1 untouched
    assert "ch_future" not in {v[0] for v in rows.values()}  # waits for its own day
    # the charge that lost its entry is recorded, so the marts rebuild it too
    dropped = loader.query("select external_ref, entry_id from raw.ledger_dropped_refs")
    assert dropped == [("ch_b", b)]
    kinds = loader.query(
        "select partition_date, load_kind, rows from raw.load_log order by loaded_at, 1"
    )
    assert kinds == [(D1, "day", 3), (D2, "day", 1), (D1, "changes", 3)]

    # -- a re-load of D1 as a whole day gives the same rows: nothing depends on the path taken
    r3 = stage_ledger(ledger_db_dsn, store, [D1], "run-3")
    loader.load(store, "ledger_entries", [D1], run_id="run-3")
    again = dict(
        (r[0], (r[1], r[2], r[3]))  # type: ignore[misc]
        for r in loader.query(
            "select id, external_ref, amount_minor, _partition_date from raw.ledger_entries"
        )
    )
    assert again == rows and r3.per_day[D1].staged == 4


def test_the_late_changes_read_is_an_index_range_scan(ledger_db_dsn: str) -> None:
    """Every nightly reads the entries changed since its last extract. Unless that read can use
    an index on `updated_at`, it scans the whole ledger and the nightly grows with history (1.9 M
    entries: ~150 ms warm, over a second cold). Sequential scans are priced out so the planner's
    choice on this small table is about what the query and the schema allow, not the table size."""
    from recon_assets.ledger.stage import _CHANGED

    window = day_window(D3)
    params = {"since": at(D1, 0), "start": window.start, "end": window.end, "days": [D1, D2]}
    with psycopg.connect(ledger_db_dsn) as conn:
        for day, n in ((D1, 30), (D2, 30)):
            for i in range(n):
                insert(conn, f"ch_{day}_{i}", at(day, i / 2))
        conn.execute("ANALYZE ledger_entries")
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + _CHANGED, params))
    assert "ledger_entries_updated_at_idx" in plan, plan
    assert "Seq Scan" not in plan, plan
