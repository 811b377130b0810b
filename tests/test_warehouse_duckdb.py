"""The local loader's contract: exactly the manifest-named files, one transaction per range,
previous rows kept on any failure, staged = loaded per day or no commit."""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recon_assets.config import DUCKDB_MEMORY_LIMIT, DUCKDB_RUN_MEMORY_LIMIT
from recon_assets.stage.schemas import LEDGER_ENTRIES_SCHEMA
from recon_assets.stage.store import LocalStageStore, S3StageStore
from recon_assets.warehouse.duckdb_loader import DuckDBLoader
from recon_assets.warehouse.loader import (
    CountMismatchError,
    LoadError,
    LoadHooks,
    LoadStep,
    MissingManifestError,
    day_range,
)
from tests.warehouse_fixtures import (
    LoadOp,
    check_events_cursor_moves_with_its_load,
    check_keyed_ledger_load,
    check_lookup_scan_moves_with_its_load,
    days_from,
    load_ops,
    rewrite_manifest,
    stage_days,
)

DAY_COL = LEDGER_ENTRIES_SCHEMA.get_field_index("_partition_date")
RUN_COL = LEDGER_ENTRIES_SCHEMA.get_field_index("_run_id")

pytestmark = pytest.mark.timeout(120)

DAY0 = date(2024, 3, 9)  # the range crosses the 2024-03-10 spring-forward day (23 hours)
DATASETS = ["stripe_charges", "ledger_entries"]


def table_rows(db: Path, dataset: str, *, with_loaded_at: bool = False) -> list[tuple[Any, ...]]:
    """The whole table, ordered, as plain tuples (without `_loaded_at` unless asked)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        cols = [r[0] for r in con.execute(f"DESCRIBE raw.{dataset}").fetchall()]
        if not with_loaded_at:
            cols.remove("_loaded_at")
        sel = ", ".join(f'"{c}"' for c in cols)
        return con.execute(f"SELECT {sel} FROM raw.{dataset} ORDER BY ALL").fetchall()
    finally:
        con.close()


def count_by_day(db: Path, dataset: str) -> dict[date, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        q = f"SELECT _partition_date, count(*) FROM raw.{dataset} GROUP BY 1"
        return {d: n for d, n in con.execute(q).fetchall()}
    finally:
        con.close()


@pytest.fixture
def stage(tmp_path: Path) -> LocalStageStore:
    return LocalStageStore(tmp_path / "stage")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    dataset=st.sampled_from(DATASETS),
    counts=st.lists(st.integers(min_value=0, max_value=40), min_size=3, max_size=3),
)
def test_load_range_rows_per_day_and_reload_is_idempotent(dataset: str, counts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStageStore(Path(tmp) / "stage")
        db = Path(tmp) / "warehouse.duckdb"
        days = days_from(DAY0, 3)
        manifests = stage_days(store, dataset, dict(zip(days, counts, strict=True)), "run1")
        loader = DuckDBLoader(db)

        result = loader.load(store, dataset, days)

        expected = {d: n for d, n in zip(days, counts, strict=True)}
        assert result.staged_by_day == expected
        assert result.loaded_by_day == expected
        assert result.ok and result.inserted_rows == sum(counts)
        assert (result.first, result.end_exclusive) == (DAY0, date(2024, 3, 12))
        assert [d.key for d in result.days] == [manifests[d].key for d in days]
        assert count_by_day(db, dataset) == {d: n for d, n in expected.items() if n}
        first_contents = table_rows(db, dataset)

        again = loader.load(store, dataset, list(reversed(days)))  # order does not matter

        assert again.loaded_by_day == expected
        assert table_rows(db, dataset) == first_contents  # identical, not doubled


@settings(max_examples=20, deadline=None)
@given(ops=load_ops(window=4, max_ops=4))
def test_any_sequence_of_reloads_leaves_the_latest_staged_version_of_each_day(
    ops: list[LoadOp],
) -> None:
    """Model: after every load, each day holds exactly the rows of its latest staged run."""
    window = days_from(DAY0, 4)
    model: dict[date, tuple[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStageStore(Path(tmp) / "stage")
        db = Path(tmp) / "warehouse.duckdb"
        loader = DuckDBLoader(db)
        for n, (start, counts) in enumerate(ops):
            days = window[start : start + len(counts)]
            run = f"run{n}"
            stage_days(store, "ledger_entries", dict(zip(days, counts, strict=True)), run, f"s{n}")
            loader.load(store, "ledger_entries", days)
            model.update({d: (run, c) for d, c in zip(days, counts, strict=True)})

            con = duckdb.connect(str(db), read_only=True)
            try:
                got = con.execute(
                    "SELECT _partition_date, min(_run_id), max(_run_id), count(*) "
                    "FROM raw.ledger_entries GROUP BY 1"
                ).fetchall()
            finally:
                con.close()
            assert {d: (lo, c) for d, lo, hi, c in got if lo == hi} == {
                d: rc for d, rc in model.items() if rc[1]
            }
            assert len(got) == sum(1 for _, c in model.values() if c)


def test_table_types_and_loaded_at(stage: LocalStageStore, db: Path) -> None:
    days = days_from(DAY0, 1)
    stage_days(stage, "stripe_charges", {DAY0: 3}, "run1")
    result = DuckDBLoader(db).load(stage, "stripe_charges", days)

    con = duckdb.connect(str(db), read_only=True)
    try:
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'stripe_charges'"
            ).fetchall()
        )
        loaded = con.execute("SELECT DISTINCT _loaded_at FROM raw.stripe_charges").fetchall()
    finally:
        con.close()
    assert types["amount"] == "BIGINT"
    assert types["created"] == "TIMESTAMP WITH TIME ZONE"
    assert types["_partition_date"] == "DATE"
    assert types["captured"] == "BOOLEAN"
    assert types["id"] == "VARCHAR"
    assert types["_loaded_at"] == "TIMESTAMP WITH TIME ZONE"
    assert loaded == [(result.loaded_at,)]


def test_every_raw_table_has_the_types_and_nullability_of_its_staged_schema(
    tmp_path: Path, db: Path
) -> None:
    """The raw tables are created from plain columns (the warehouse process holds no pyarrow):
    each one, data and bookkeeping, must have the column types DuckDB itself reads from a
    Parquet file of its staged Arrow schema, and NOT NULL exactly where the schema says so."""
    import pyarrow.parquet as pq

    from recon_assets.stage.schemas import BOOKKEEPING_SCHEMAS, DATASET_SCHEMAS
    from recon_assets.warehouse.duckdb_loader import ensure_raw_tables

    con = duckdb.connect(str(db))
    try:
        ensure_raw_tables(con)
        for name, schema in {**DATASET_SCHEMAS, **BOOKKEEPING_SCHEMAS}.items():
            path = tmp_path / f"{name}.parquet"
            pq.write_table(schema.empty_table(), path)
            staged = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
            table = con.execute(f"DESCRIBE raw.{name}").fetchall()
            got = {r[0]: (r[1], r[2]) for r in table if r[0] != "_loaded_at"}
            want = {r[0]: (r[1], "YES" if schema.field(r[0]).nullable else "NO") for r in staged}
            assert got == want, name
            assert ("_loaded_at" in {r[0] for r in table}) == (name in DATASET_SCHEMAS)
    finally:
        con.close()


def test_restaged_day_replaces_only_that_day(stage: LocalStageStore, db: Path) -> None:
    days = days_from(DAY0, 3)
    stage_days(stage, "ledger_entries", dict.fromkeys(days, 5), "run1", salt="a")
    loader = DuckDBLoader(db)
    loader.load(stage, "ledger_entries", days)
    before = table_rows(db, "ledger_entries", with_loaded_at=True)

    stage_days(stage, "ledger_entries", {days[1]: 2}, "run2", salt="bb")  # a late re-statement
    result = loader.load(stage, "ledger_entries", [days[1]])

    assert result.loaded_by_day == {days[1]: 2}
    after = table_rows(db, "ledger_entries", with_loaded_at=True)
    untouched = [r for r in before if r[DAY_COL] != days[1]]
    assert [r for r in after if r[DAY_COL] != days[1]] == untouched
    restated = [r for r in after if r[DAY_COL] == days[1]]
    assert {r[RUN_COL] for r in restated} == {"run2"}
    assert len(restated) == 2


def test_failure_after_delete_rolls_back(stage: LocalStageStore, db: Path) -> None:
    days = days_from(DAY0, 3)
    stage_days(stage, "stripe_charges", dict.fromkeys(days, 4), "run1")
    DuckDBLoader(db).load(stage, "stripe_charges", days)
    before = table_rows(db, "stripe_charges", with_loaded_at=True)
    stage_days(stage, "stripe_charges", dict.fromkeys(days, 7), "run2", salt="new")
    seen: list[LoadStep] = []

    def crash(step: LoadStep) -> None:
        seen.append(step)
        raise RuntimeError("worker killed between DELETE and load")

    with pytest.raises(RuntimeError, match="between DELETE"):
        DuckDBLoader(db, hooks=LoadHooks(after_delete=crash)).load(stage, "stripe_charges", days)

    assert seen and (seen[0].first, seen[0].end_exclusive) == (DAY0, date(2024, 3, 12))
    assert table_rows(db, "stripe_charges", with_loaded_at=True) == before


def test_failure_before_commit_rolls_back(stage: LocalStageStore, db: Path) -> None:
    days = days_from(DAY0, 2)
    stage_days(stage, "ledger_entries", dict.fromkeys(days, 3), "run1")
    DuckDBLoader(db).load(stage, "ledger_entries", days)
    before = table_rows(db, "ledger_entries", with_loaded_at=True)
    stage_days(stage, "ledger_entries", dict.fromkeys(days, 9), "run2", salt="zz")

    def crash(step: LoadStep) -> None:
        raise KeyboardInterrupt  # even a BaseException must roll back

    with pytest.raises(KeyboardInterrupt):
        DuckDBLoader(db, hooks=LoadHooks(before_commit=crash)).load(stage, "ledger_entries", days)
    assert table_rows(db, "ledger_entries", with_loaded_at=True) == before


def test_corrupt_last_day_rolls_back_whole_range(stage: LocalStageStore, db: Path) -> None:
    days = days_from(DAY0, 3)
    stage_days(stage, "stripe_charges", dict.fromkeys(days, 4), "run1")
    DuckDBLoader(db).load(stage, "stripe_charges", days)
    before = table_rows(db, "stripe_charges", with_loaded_at=True)
    manifests = stage_days(stage, "stripe_charges", dict.fromkeys(days, 6), "run2", salt="x")
    stage.path(manifests[days[-1]].key).write_bytes(b"PAR1 this is not parquet PAR1")

    with pytest.raises(duckdb.Error):
        DuckDBLoader(db).load(stage, "stripe_charges", days)
    assert table_rows(db, "stripe_charges", with_loaded_at=True) == before


def test_manifest_naming_a_missing_file_fails_before_delete(
    stage: LocalStageStore, db: Path
) -> None:
    days = days_from(DAY0, 2)
    manifests = stage_days(stage, "ledger_entries", dict.fromkeys(days, 2), "run1")
    DuckDBLoader(db).load(stage, "ledger_entries", days)
    before = table_rows(db, "ledger_entries", with_loaded_at=True)
    stage.delete(manifests[days[1]].key)

    with pytest.raises(LoadError, match="2024-03-10"):
        DuckDBLoader(db).load(stage, "ledger_entries", days)
    assert table_rows(db, "ledger_entries", with_loaded_at=True) == before


def test_missing_manifest_names_the_day_and_loads_nothing(stage: LocalStageStore, db: Path) -> None:
    days = days_from(DAY0, 3)
    stage_days(stage, "stripe_charges", dict.fromkeys(days, 2), "run1")
    DuckDBLoader(db).load(stage, "stripe_charges", days)
    before = table_rows(db, "stripe_charges", with_loaded_at=True)
    later = days_from(date(2024, 3, 12), 3)
    stage_days(stage, "stripe_charges", {later[0]: 1, later[2]: 1}, "run2")

    with pytest.raises(MissingManifestError, match="2024-03-13") as err:
        DuckDBLoader(db).load(stage, "stripe_charges", [*days, *later])
    assert err.value.days == (later[1],)
    assert table_rows(db, "stripe_charges", with_loaded_at=True) == before


def test_staged_not_equal_loaded_refuses_to_commit(stage: LocalStageStore, db: Path) -> None:
    days = days_from(DAY0, 3)
    stage_days(stage, "ledger_entries", dict.fromkeys(days, 3), "run1")
    DuckDBLoader(db).load(stage, "ledger_entries", days)
    before = table_rows(db, "ledger_entries", with_loaded_at=True)
    manifests = stage_days(stage, "ledger_entries", dict.fromkeys(days, 5), "run2", salt="q")
    rewrite_manifest(stage, manifests[days[2]], rows=6)  # the manifest disagrees with its file

    with pytest.raises(CountMismatchError, match="2024-03-11 staged=6 loaded=5") as err:
        DuckDBLoader(db).load(stage, "ledger_entries", days)
    assert err.value.result.loaded_by_day == dict.fromkeys(days, 5)
    assert [d.day for d in err.value.result.mismatched_days] == [days[2]]
    assert table_rows(db, "ledger_entries", with_loaded_at=True) == before


def test_rows_outside_the_range_refuse_to_commit(stage: LocalStageStore, db: Path) -> None:
    """A file whose rows belong to another day would escape the next half-open DELETE."""
    days = days_from(DAY0, 2)
    manifests = stage_days(stage, "ledger_entries", {days[0]: 2, days[1]: 3}, "run1")
    # day 1's manifest names day 0's file: the rows land outside day 1 and the total is off
    rewrite_manifest(stage, manifests[days[1]], key=manifests[days[0]].key, rows=2)
    rewrite_manifest(stage, manifests[days[0]], key=manifests[days[1]].key, rows=3)

    with pytest.raises(CountMismatchError):
        DuckDBLoader(db).load(stage, "ledger_entries", days)
    assert DuckDBLoader(db).rows_by_day("ledger_entries", DAY0, days[1]) == {}


def test_delete_is_half_open(stage: LocalStageStore, db: Path) -> None:
    days = days_from(DAY0, 4)
    stage_days(stage, "stripe_charges", dict.fromkeys(days, 2), "run1")
    loader = DuckDBLoader(db)
    loader.load(stage, "stripe_charges", days)
    stage_days(stage, "stripe_charges", dict.fromkeys(days[1:3], 0), "run2")

    loader.load(stage, "stripe_charges", days[1:3])

    assert count_by_day(db, "stripe_charges") == {days[0]: 2, days[3]: 2}


def test_bad_ranges_are_refused() -> None:
    with pytest.raises(ValueError, match="contiguous"):
        day_range([DAY0, date(2024, 3, 11)])
    with pytest.raises(ValueError, match="at least one"):
        day_range([])
    with pytest.raises(ValueError, match="duplicate"):
        day_range([DAY0, DAY0])
    with pytest.raises(ValueError, match="unknown dataset"):
        DuckDBLoader("unused.duckdb").load(LocalStageStore("."), "payouts", [DAY0])


def test_table_with_drifted_columns_is_refused(stage: LocalStageStore, db: Path) -> None:
    con = duckdb.connect(str(db))
    con.execute("CREATE SCHEMA raw; CREATE TABLE raw.ledger_entries (id BIGINT)")
    con.close()
    stage_days(stage, "ledger_entries", {DAY0: 1}, "run1")
    with pytest.raises(LoadError, match="migrate"):
        DuckDBLoader(db).load(stage, "ledger_entries", [DAY0])


def test_s3_stage_is_streamed_through_a_temp_dir(
    s3_client: Any, s3_bucket: str, tmp_path: Path, db: Path
) -> None:
    store = S3StageStore(s3_client, s3_bucket, "stage/v1")
    days = days_from(DAY0, 2)
    stage_days(store, "stripe_charges", {days[0]: 3, days[1]: 0}, "run1")
    downloads = tmp_path / "downloads"
    downloads.mkdir()

    result = DuckDBLoader(db, download_dir=downloads).load(store, "stripe_charges", days)

    assert result.loaded_by_day == {days[0]: 3, days[1]: 0}
    assert list(downloads.iterdir()) == []  # the temp copies are gone


def test_load_by_id_and_the_load_log(stage: LocalStageStore, db: Path) -> None:
    check_keyed_ledger_load(DuckDBLoader(db), stage)


def test_events_cursor_moves_only_with_its_load(stage: LocalStageStore, db: Path) -> None:
    check_events_cursor_moves_with_its_load(DuckDBLoader(db), stage)


def test_the_run_and_dbt_each_carry_their_own_memory_limit(db: Path) -> None:
    """DuckDB's default is 80 % of RAM, kept once taken: the run worker's own connections (the
    loads, the look-ups, the report's reads) open with RECON_DUCKDB_RUN_MEMORY_LIMIT, dbt's
    builds get RECON_DUCKDB_MEMORY_LIMIT through its profile, each as the settings give it."""
    from recon_assets.config import ReconSettings
    from recon_assets.definitions import build_resources, duckdb_dbt_env

    def limit_of(size: str | None) -> tuple[object, ...] | None:
        with duckdb.connect(":memory:", config={"memory_limit": size} if size else {}) as ref:
            return ref.execute("select current_setting('memory_limit')").fetchone()

    want_run, want_dbt = limit_of("100MB"), limit_of("300MB")
    assert len({want_run, want_dbt, limit_of(None)}) == 3

    settings = ReconSettings.from_env(
        {
            "RECON_DUCKDB_PATH": str(db),
            "RECON_DUCKDB_RUN_MEMORY_LIMIT": "100MB",
            "RECON_DUCKDB_MEMORY_LIMIT": "300MB",
        }
    )
    wh = build_resources(settings)["warehouse"]
    loader = wh.loader(str(db.parent / "stage"))
    assert tuple(loader.query("select current_setting('memory_limit')")[0]) == want_run
    with wh.query() as run:
        assert tuple(run("select current_setting('memory_limit')", [])[0]) == want_run
    assert duckdb_dbt_env(settings)["RECON_DUCKDB_MEMORY_LIMIT"] == "300MB"
    # the defaults: the run's own far below dbt's
    defaults = ReconSettings.from_env({})
    assert defaults.duckdb_run_memory_limit == DUCKDB_RUN_MEMORY_LIMIT
    assert duckdb_dbt_env(defaults)["RECON_DUCKDB_MEMORY_LIMIT"] == DUCKDB_MEMORY_LIMIT


def test_a_load_or_read_out_of_the_run_limit_names_the_run_setting(db: Path) -> None:
    """A read of the run's own that needs more than its limit fails naming the setting that
    raises it (RECON_DUCKDB_RUN_MEMORY_LIMIT), not DuckDB's "SET memory_limit" nor dbt's."""
    DuckDBLoader(db).query("select 1")  # the file and its raw tables exist
    small = DuckDBLoader(db, memory_limit="1MB")
    heavy = (
        "with t as (select range as id, md5(range::varchar) as s from range(300000)) "
        "select count(*) from t where s in (select s from t where id % 2 = 0)"
    )
    with pytest.raises(LoadError) as err:
        small.query(heavy)
    text = str(err.value)
    assert "the run worker's memory limit (1MB)" in text
    assert "RECON_DUCKDB_RUN_MEMORY_LIMIT=256MB" in text
    assert "RECON_DUCKDB_MEMORY_LIMIT=" not in text
    assert "Out of Memory Error" in text  # DuckDB's own error kept below the advice
    assert DuckDBLoader(db, memory_limit="256MB").query(heavy) == [(150000,)]


def test_a_raw_table_from_before_a_new_nullable_column_gains_it_and_loads(
    stage: LocalStageStore, db: Path
) -> None:
    """A warehouse whose raw.ledger_entries predates `journal_id` / `reversal_of` gets them
    added (NULL in the old rows) and loads; a table missing a NOT NULL column is refused."""
    from recon_assets.warehouse.duckdb_loader import create_table_sql
    from recon_assets.warehouse.loader import columns_of

    old = pa.schema(
        [f for f in LEDGER_ENTRIES_SCHEMA if f.name not in ("journal_id", "reversal_of")]
    )
    con = duckdb.connect(str(db))
    con.execute("create schema raw")
    con.execute(create_table_sql("raw.ledger_entries", columns_of(old)))
    con.execute(
        "insert into raw.ledger_entries (id, entry_type, account, amount_minor, currency, "
        "posted_at, created_at, updated_at, _partition_date, _synced_at, _run_id, _loaded_at) "
        "values (1, 'charge', 'a', 5, 'USD', now(), now(), now(), ?, now(), 'old', now())",
        [DAY0 - timedelta(days=1)],
    )
    con.close()
    days = days_from(DAY0, 1)
    stage_days(stage, "ledger_entries", {DAY0: 3}, "run1")
    assert DuckDBLoader(db).load(stage, "ledger_entries", days).loaded_by_day == {DAY0: 3}
    con = duckdb.connect(str(db), read_only=True)
    try:
        cols = [r[0] for r in con.execute("describe raw.ledger_entries").fetchall()]
        assert {"journal_id", "reversal_of"} <= set(cols)
        assert con.execute(
            "select reversal_of from raw.ledger_entries where _run_id = 'old'"
        ).fetchall() == [(None,)]
        con.close()
        con = duckdb.connect(str(db))
        con.execute("alter table raw.ledger_entries drop column account")
    finally:
        con.close()
    with pytest.raises(LoadError, match=r"missing \['ACCOUNT'\]"):
        DuckDBLoader(db).load(stage, "ledger_entries", days)


def test_lookup_scan_is_recorded_only_with_its_load(stage: LocalStageStore, db: Path) -> None:
    check_lookup_scan_moves_with_its_load(DuckDBLoader(db), stage)
