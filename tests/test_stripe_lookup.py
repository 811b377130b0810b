"""Look-ups by id of the charges ledger entries name: over real HTTP to the emulator, through the
same client, limiter and retries as the pull. 404 is the only proof of missing_in_stripe; a charge
that fails validation is quarantined, never missing; more ids than the bound is a clear failure
before any request."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from recon_assets.local.stripe_emulator import INVALID_KINDS, ChargeGenerator, FaultConfig
from recon_assets.stage.manifest import read_keyed_manifest
from recon_assets.stage.store import LocalStageStore
from recon_assets.stripe.lookup import UNKNOWN_REFS_SQL, LookupLimitError, lookup_charges
from recon_assets.timewindows import business_day_of, day_window
from recon_assets.warehouse.duckdb_loader import DuckDBLoader
from tests.stripe_fixtures import client_for, running_emulator

WORKERS = 2  # lookup threads (callers always say)

DAY = date(2024, 10, 1)


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
        ids = [str(r[0]) for r in loader.query(UNKNOWN_REFS_SQL)]
        assert ids == sorted([wanted, ghost])
        result = lookup_charges(
            client_for(emu), store, ids, "run-1", max_lookups=5, concurrency=WORKERS
        )
    loaded = loader.load_keyed(store, result.manifest, run_id="run-1")
    assert (loaded.inserted_rows, loaded.lookups) == (1, 2)
    rows = loader.query("select id from raw.stripe_charges order by id")
    assert sorted(r[0] for r in rows) == sorted([known, wanted])
    assert loader.query(UNKNOWN_REFS_SQL) == []  # answered: not asked again
    log = loader.query("select dataset, partition_date, load_kind, rows from raw.load_log")
    assert log == [("stripe_charges", DAY, "lookup", 1)]
    answers = loader.query("select charge_id, result from raw.stripe_charge_lookups order by 1")
    assert answers == sorted([(wanted, "found"), (ghost, "not_found")])
