"""Look-ups by id of the charges ledger entries name: over real HTTP to the emulator, through the
same client, limiter and retries as the pull. 404 is the only proof of missing_in_stripe; a charge
that fails validation is quarantined, never missing; more ids than the bound is a clear failure
before any request."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recon_assets.local.stripe_emulator import INVALID_KINDS, ChargeGenerator, FaultConfig
from recon_assets.stage.manifest import KeyedManifest, LookupScan, read_keyed_manifest
from recon_assets.stage.store import LocalStageStore
from recon_assets.stripe.lookup import (
    EPOCH,
    LOOKUP_FULL_SCAN_EVERY,
    LOOKUP_SCAN_MARGIN,
    LOOKUP_SCANS_SQL,
    UNKNOWN_FEE_TXNS_SQL,
    UNKNOWN_REFS_SQL,
    LookupLimitError,
    lookup_charges,
    next_lookup_scan,
)
from recon_assets.timewindows import business_day_of, day_window
from recon_assets.warehouse.duckdb_loader import DuckDBLoader
from tests.stripe_fixtures import client_for, running_emulator

# The fee query's oracle: the plain reading of "a new pair", every fee entry joined to its
# charge, then the pairs of which either side was loaded since. The run's query
# (UNKNOWN_FEE_TXNS_SQL) takes the unheld charges first, to stay within 64MB at any scope.
_FEE_PAIRS_LOADED_SINCE = """
    select c.balance_transaction
    from raw.stripe_charges as c
    inner join raw.ledger_entries as e
        on e.external_ref = c.id
    where {side}._loaded_at > ?
      and lower(e.entry_type) = 'fee'
      and c.status = 'succeeded' and c.captured
      and c.balance_transaction is not null
"""

FEE_TXNS_BY_PAIRS_SQL = f"""
with named as (
{"    union".join(_FEE_PAIRS_LOADED_SINCE.format(side=side) for side in ("e", "c"))}
)
select distinct n.balance_transaction
from named as n
where not exists (
      select 1 from raw.stripe_balance_transactions as x where x.id = n.balance_transaction
  )
  and not exists (
      select 1 from raw.stripe_charge_lookups as l
      where l.charge_id = n.balance_transaction and l.result <> 'found'
  )
order by 1
"""


WORKERS = 2  # lookup threads (callers always say)

DAY = date(2024, 10, 1)
ALL = (EPOCH, EPOCH)  # the look-up queries' `read_from`, twice: every row loaded


def charges_of(emu: object, day: date) -> list[dict]:
    w = day_window(day)
    return list(ChargeGenerator(emu.cfg).iter_charges(w.start, w.end))  # type: ignore[attr-defined]


def test_found_missing_and_unreadable_are_told_apart(local_stage: LocalStageStore) -> None:
    with running_emulator(faults=FaultConfig(malformed_rate=0.05)) as emu:
        charges = charges_of(emu, DAY) + charges_of(emu, date(2024, 10, 2))
        good = [c["id"] for c in charges if emu.malformed_kind(c["id"]) is None][:3]
        bad = [c["id"] for c in charges if emu.malformed_kind(c["id"]) in INVALID_KINDS][:2]
        ghost = "ch_" + "Z" * 24  # well-formed, no such charge
        weird = "ch_1/../../v1/charges"  # never put into a path
        client = client_for(emu)
        result = lookup_charges(
            client,
            local_stage,
            [*good, *bad, ghost, weird, good[0]],
            "run-lookup",
            max_lookups=10,
            concurrency=WORKERS,
        )
    outcomes = {cid: r for cid, r, _ in result.manifest.lookups}
    assert outcomes == {
        **dict.fromkeys(good, "found"),
        **dict.fromkeys(bad, "quarantined"),
        ghost: "not_found",
        weird: "not_found",
    }
    assert (result.found, result.not_found, result.quarantined) == (3, 2, 2)
    assert result.counters["requests"] == 6  # each well-formed id once; the odd one never sent
    assert result.counters["not_found_404"] == 1
    # found charges are staged on their own created day, with the pull's exact schema
    by_day = {c["id"]: business_day_of(c["created"]) for c in charges}
    staged = {}
    for f in result.manifest.files:
        for row in pq.read_table(local_stage.uri(f.key)).to_pylist():
            assert row["_partition_date"] == f.day == by_day[row["id"]]
            staged[row["id"]] = row
    assert set(staged) == set(good)
    assert read_keyed_manifest(local_stage, "stripe_charges", "lookup", "run-lookup") == (
        result.manifest
    )


def test_more_ids_than_the_bound_fail_before_any_request(local_stage: LocalStageStore) -> None:
    with running_emulator() as emu:
        client = client_for(emu)
        ids = [f"ch_{i:024d}" for i in range(11)]
        with pytest.raises(LookupLimitError, match=r"11 ledger charge entries.*bound of 10"):
            lookup_charges(
                client, local_stage, ids, "run-too-many", max_lookups=10, concurrency=WORKERS
            )
        assert client.counters.requests == 0
    assert not local_stage.list_keys("stripe_charges")


def test_lookups_load_by_id_and_are_not_repeated(tmp_path: Path) -> None:
    """The warehouse side: found charges join raw.stripe_charges without touching the rest of
    their day; answered ids are not looked up again; a 404 stays a 404."""
    store = LocalStageStore(tmp_path / "stage")
    loader = DuckDBLoader(tmp_path / "w.duckdb")
    with running_emulator() as emu:
        charges = charges_of(emu, DAY)
        known, wanted = charges[0]["id"], charges[1]["id"]
        ghost = "ch_" + "Y" * 24
        con = duckdb.connect(str(tmp_path / "w.duckdb"))
        from recon_assets.warehouse.duckdb_loader import ensure_raw_tables

        ensure_raw_tables(con)
        con.execute(
            "insert into raw.stripe_charges (id, created, status, currency, amount, "
            "_partition_date, _synced_at, _run_id, _loaded_at) values "
            "(?, now(), 'succeeded', 'usd', 1, ?, now(), 'r0', now())",
            [known, DAY],
        )
        for i, ref in enumerate([known, wanted, ghost, ghost]):
            con.execute(
                "insert into raw.ledger_entries values (?, 'charge', ?, 'a', 1, 'USD', now(), "
                "now(), now(), null, null, ?, now(), 'r0', now())",
                [i + 1, ref, DAY],
            )
        con.close()
        ids = [str(r[0]) for r in loader.query(UNKNOWN_REFS_SQL, ALL)]
        assert ids == sorted([wanted, ghost])
        result = lookup_charges(
            client_for(emu), store, ids, "run-1", max_lookups=5, concurrency=WORKERS
        )
    loaded = loader.load_keyed(store, result.manifest, run_id="run-1")
    assert (loaded.inserted_rows, loaded.lookups) == (1, 2)
    rows = loader.query("select id from raw.stripe_charges order by id")
    assert sorted(r[0] for r in rows) == sorted([known, wanted])
    assert loader.query(UNKNOWN_REFS_SQL, ALL) == []  # answered: not asked again
    log = loader.query("select dataset, partition_date, load_kind, rows from raw.load_log")
    assert log == [("stripe_charges", DAY, "lookup", 1)]
    answers = loader.query("select charge_id, result from raw.stripe_charge_lookups order by 1")
    assert answers == sorted([(wanted, "found"), (ghost, "not_found")])


T0 = datetime(2026, 3, 1, 7, tzinfo=UTC)
instants = st.integers(min_value=0, max_value=60 * 24 * 60).map(lambda m: T0 + timedelta(minutes=m))


@given(
    scans=st.lists(st.tuples(instants, st.booleans()), max_size=6),
    later=st.integers(min_value=0, max_value=20 * 24 * 60),
)
def test_a_scan_reads_since_the_last_one_and_everything_weekly(
    scans: list[tuple[datetime, bool]], later: int
) -> None:
    """Rows loaded after the last recorded scan (less the clock margin) are read, or every row
    when there is no scan to trust: none recorded, no full read recorded, or the last full read
    a week old. Never later than the last scan less the margin, so nothing loaded since is
    skipped."""
    recorded = [
        (t, EPOCH if full else t - timedelta(days=1) - LOOKUP_SCAN_MARGIN) for t, full in scans
    ]
    mark = max([T0, *(t for t, _ in scans)]) + timedelta(minutes=later)
    got = next_lookup_scan(mark, recorded)
    assert got.scanned_through == mark
    fulls = [t for t, full in scans if full]
    if not fulls or mark - max(fulls) >= LOOKUP_FULL_SCAN_EVERY:
        assert got.read_from == EPOCH
    else:
        assert got.read_from == max(t for t, _ in scans) - LOOKUP_SCAN_MARGIN


def _entry(con: duckdb.DuckDBPyConnection, n: int, kind: str, ref: str, loaded: datetime) -> None:
    con.execute(
        "insert into raw.ledger_entries values (?, ?, ?, 'a', -1, 'USD', now(), now(), now(), "
        "null, null, ?, now(), 'r0', ?)",
        [n, kind, ref, DAY, loaded],
    )


def test_a_recorded_scan_scopes_the_next_read_to_what_was_loaded_since(tmp_path: Path) -> None:
    """The warehouse side of the scan: the last load of a run records it in
    raw.stripe_lookup_scans; the next run reads ledger entries, balance transactions and
    charges loaded after it (less the margin), so a ref named only by a row read before is not
    read again, a ref named by a row loaded since is, and a charge loaded since brings its fee
    entry's transaction even when the entry is old."""
    loader = DuckDBLoader(tmp_path / "w.duckdb")
    store = LocalStageStore(tmp_path / "stage")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    from recon_assets.warehouse.duckdb_loader import ensure_raw_tables

    ensure_raw_tables(con)
    old, new, fee_charge = ("ch_" + c * 24 for c in "ONF")
    _entry(con, 1, "charge", old, T0 - 2 * LOOKUP_SCAN_MARGIN)
    _entry(con, 2, "fee", fee_charge, T0 - 2 * LOOKUP_SCAN_MARGIN)  # its charge comes later
    con.close()
    first = next_lookup_scan(T0, [])
    assert first.read_from == EPOCH
    assert [r[0] for r in loader.query(UNKNOWN_REFS_SQL, (EPOCH, EPOCH))] == [fee_charge, old]
    # the run's last load records what it read
    last = KeyedManifest("stripe_balance_transactions", "run-1", "lookup", (), lookup_scan=first)
    assert KeyedManifest.from_json(last.to_json()).lookup_scan == LookupScan(EPOCH, T0)
    loader.load_keyed(store, last, run_id="run-1")
    scans = loader.query(LOOKUP_SCANS_SQL)
    assert [(a.astimezone(UTC), b.astimezone(UTC)) for a, b in scans] == [(T0, EPOCH)]
    scan = next_lookup_scan(T0 + timedelta(days=1), [(T0, EPOCH)])
    assert scan.read_from == T0 - LOOKUP_SCAN_MARGIN
    since = (scan.read_from, scan.read_from)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    _entry(con, 3, "charge", new, T0 + timedelta(days=1))
    # a clock stepped back 10 minutes after the scan: still read
    stepped = "ch_" + "B" * 24
    _entry(con, 4, "charge", stepped, T0 - timedelta(minutes=10))
    con.execute(
        "insert into raw.stripe_charges (id, created, status, captured, currency, amount, "
        "balance_transaction, _partition_date, _synced_at, _run_id, _loaded_at) values "
        "(?, now(), 'succeeded', true, 'usd', 1, 'txn_F', ?, now(), 'r1', ?)",
        [fee_charge, DAY, T0 + timedelta(days=1)],
    )
    con.close()
    assert [r[0] for r in loader.query(UNKNOWN_REFS_SQL, since)] == sorted([new, stepped])
    assert [r[0] for r in loader.query(UNKNOWN_FEE_TXNS_SQL, since)] == ["txn_F"]
    # the old entry is read again by a full read (a week on, or without a recorded scan)
    assert old in [r[0] for r in loader.query(UNKNOWN_REFS_SQL, (EPOCH, EPOCH))]


_T = [T0 + timedelta(hours=h) for h in range(4)]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    charges=st.lists(
        st.tuples(
            st.sampled_from(["succeeded", "succeeded", "pending"]),  # status
            st.sampled_from([True, True, False]),  # captured
            st.sampled_from([False, False, True]),  # its transaction is held
            st.sampled_from([False, False, True]),  # its transaction was answered 404
            st.sampled_from(_T),  # loaded at
            st.lists(
                st.tuples(st.sampled_from(["fee", "charge"]), st.sampled_from(_T)), max_size=3
            ),  # entries naming it: type, loaded at
        ),
        max_size=8,
    ),
    since=st.sampled_from([EPOCH, *_T]),
)
def test_the_fee_transactions_query_finds_what_the_pairs_of_fee_entries_and_charges_do(
    charges: list, since: datetime
) -> None:
    """UNKNOWN_FEE_TXNS_SQL, the lean query the run runs, names exactly the transactions the
    pairs of fee entries and charges name (the oracle above), for any charges, fee entries,
    held and answered transactions and any `read_from`, a full read's or a scoped one's."""
    from recon_assets.warehouse.duckdb_loader import ensure_raw_tables

    con = duckdb.connect(":memory:")
    ensure_raw_tables(con)
    n = 0
    for i, (status, captured, held, answered, loaded, entries) in enumerate(charges):
        cid, txn = f"ch_{i:024d}", f"txn_{i}"
        con.execute(
            "insert into raw.stripe_charges (id, created, status, captured, currency, amount, "
            "balance_transaction, _partition_date, _synced_at, _run_id, _loaded_at) values "
            "(?, now(), ?, ?, 'usd', 1, ?, ?, now(), 'r1', ?)",
            [cid, status, captured, txn, DAY, loaded],
        )
        if held:
            con.execute(
                "insert into raw.stripe_balance_transactions (id, created, available_on, status, "
                "type, currency, amount, fee, net, _partition_date, _synced_at, _run_id, "
                "_loaded_at) values (?, now(), now(), 'available', 'charge', 'usd', 1, 0, 1, ?, "
                "now(), 'r1', ?)",
                [txn, DAY, loaded],
            )
        if answered:
            con.execute(
                "insert into raw.stripe_charge_lookups values (?, 'not_found', null, 'r1', now())",
                [txn],
            )
        for kind, entry_loaded in entries:
            n += 1
            _entry(con, n, kind, cid, entry_loaded)
    by_pairs = con.execute(FEE_TXNS_BY_PAIRS_SQL, [since, since]).fetchall()
    assert con.execute(UNKNOWN_FEE_TXNS_SQL, [since, since]).fetchall() == by_pairs
