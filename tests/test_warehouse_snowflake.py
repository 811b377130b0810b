"""The production loader on test doubles: staged files on a moto S3 server, COPY INTO on a
fakesnow server whose DuckDB reads `s3://` through tests/s3_bridge.py.

Every test has a hard timeout: fakesnow answers unsupported SQL with HTTP 500, which the
connector retries (see tests/warehouse_fixtures.py).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from recon_assets.stage.schemas import LEDGER_ENTRIES_SCHEMA
from recon_assets.stage.store import S3StageStore
from recon_assets.warehouse.loader import (
    CountMismatchError,
    LoadError,
    LoadHooks,
    LoadStep,
    MissingManifestError,
)
from recon_assets.warehouse.snowflake_loader import SnowflakeLoader
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

DAY0 = date(2024, 11, 2)  # the range crosses the 2024-11-03 fall-back day (25 hours)
STAGE = "RECON_STAGE"
INTEGRATION = "RECON_S3_INTEGRATION"
Connect = Callable[[], contextlib.AbstractContextManager[Any]]


@pytest.fixture
def store(s3_client: Any, s3_bucket: str) -> S3StageStore:
    return S3StageStore(s3_client, s3_bucket, "stage/v1")


@pytest.fixture
def loader(
    snowflake_connect: Connect, snowflake_database: str, store: S3StageStore
) -> SnowflakeLoader:
    sf = SnowflakeLoader(snowflake_connect, STAGE, snowflake_database)
    sf.ensure_stage(store.root_uri, INTEGRATION)
    return sf


def table_rows(
    connect: Connect, table: str, *, with_loaded_at: bool = False
) -> list[tuple[Any, ...]]:
    """The whole table, ordered, as plain tuples (without `_loaded_at` unless asked)."""
    with connect() as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT * FROM {table} LIMIT 0")
        cols = [d[0] for d in cur.description]
        if not with_loaded_at:
            cols = [c for c in cols if c.upper() != "_LOADED_AT"]
        sel = ", ".join(f'"{c}"' for c in cols)
        cur.execute(
            f"SELECT {sel} FROM {table} ORDER BY {', '.join(map(str, range(1, len(cols) + 1)))}"
        )
        return [tuple(r) for r in cur.fetchall()]


def with_loader(base: SnowflakeLoader, **kwargs: Any) -> SnowflakeLoader:
    return SnowflakeLoader(
        base.connection_factory, base.stage_name, base.database, base.schema, **kwargs
    )


def test_load_range_then_reload_is_identical(
    loader: SnowflakeLoader, store: S3StageStore, snowflake_connect: Connect
) -> None:
    days = days_from(DAY0, 3)
    counts = dict(zip(days, [4, 0, 7], strict=True))
    manifests = stage_days(store, "stripe_charges", counts, "run1")

    result = loader.load(store, "stripe_charges", days, run_id="run1")

    assert result.table == f"{loader.database}.RAW.STRIPE_CHARGES"
    assert result.staged_by_day == counts
    assert result.loaded_by_day == counts
    assert result.ok and result.inserted_rows == 11 and result.deleted_rows == 0
    assert [d.key for d in result.days] == [manifests[d].key for d in days]
    assert loader.rows_by_day("stripe_charges", DAY0, days[-1]) == {days[0]: 4}
    first = table_rows(snowflake_connect, result.table)

    again = loader.load(store, "stripe_charges", days, run_id="run1-retry")

    assert again.loaded_by_day == counts and again.deleted_rows == 11
    assert table_rows(snowflake_connect, result.table) == first  # identical, not doubled


def test_same_file_loaded_twice_is_not_skipped_by_load_history(
    loader: SnowflakeLoader, store: S3StageStore, snowflake_connect: Connect
) -> None:
    """Without FORCE the second COPY would be LOAD_SKIPPED after the DELETE: the day empty."""
    day = [DAY0]
    stage_days(store, "ledger_entries", {DAY0: 5}, "run1")
    loader.load(store, "ledger_entries", day)
    assert loader.rows_by_day("ledger_entries", DAY0, days_from(DAY0, 2)[1]) == {DAY0: 5}

    second = loader.load(store, "ledger_entries", day)

    assert second.loaded_by_day == {DAY0: 5}
    assert loader.rows_by_day("ledger_entries", DAY0, days_from(DAY0, 2)[1]) == {DAY0: 5}

    stage_days(store, "ledger_entries", {DAY0: 2}, "run2", salt="restated")
    third = loader.load(store, "ledger_entries", day)
    rows = table_rows(snowflake_connect, third.table)
    assert len(rows) == 2 and {r[RUN_COL] for r in rows} == {"run2"}


def test_restaged_day_replaces_only_that_day(
    loader: SnowflakeLoader, store: S3StageStore, snowflake_connect: Connect
) -> None:
    days = days_from(DAY0, 3)
    stage_days(store, "ledger_entries", dict.fromkeys(days, 3), "run1")
    table = loader.load(store, "ledger_entries", days).table
    before = table_rows(snowflake_connect, table, with_loaded_at=True)

    stage_days(store, "ledger_entries", {days[1]: 6}, "run2", salt="late")
    loader.load(store, "ledger_entries", [days[1]])

    after = table_rows(snowflake_connect, table, with_loaded_at=True)
    assert [r for r in after if r[DAY_COL] != days[1]] == [
        r for r in before if r[DAY_COL] != days[1]
    ]
    assert sorted(r[RUN_COL] for r in after if r[DAY_COL] == days[1]) == ["run2"] * 6


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=load_ops(window=3, max_ops=3))
def test_any_sequence_of_reloads_leaves_the_latest_staged_version_of_each_day(
    snowflake_connect: Connect, snowflake_database: str, store: S3StageStore, ops: list[LoadOp]
) -> None:
    """Model: after every load, each day holds exactly the rows of its latest staged run."""
    example = uuid.uuid4().hex[:8]
    sf = SnowflakeLoader(snowflake_connect, STAGE, snowflake_database, f"RAW_{example}")
    sf.ensure_stage(store.root_uri, INTEGRATION)
    window = days_from(DAY0, 3)
    model: dict[date, tuple[str, int]] = {}
    for n, (start, counts) in enumerate(ops):
        days = window[start : start + len(counts)]
        run = f"run{example}{n}"
        stage_days(store, "stripe_charges", dict(zip(days, counts, strict=True)), run, f"s{n}")
        result = sf.load(store, "stripe_charges", days)
        model.update({d: (run, c) for d, c in zip(days, counts, strict=True)})

        with snowflake_connect() as conn:
            cur = conn.cursor()
            cur.execute(
                "SELECT _partition_date, MIN(_run_id), MAX(_run_id), COUNT(*) "
                f"FROM {result.table} GROUP BY 1"
            )
            got = cur.fetchall()
        assert {d: (lo, c) for d, lo, hi, c in got if lo == hi} == {
            d: rc for d, rc in model.items() if rc[1]
        }
        assert len(got) == sum(1 for _, c in model.values() if c)


def test_types_and_loaded_at(loader: SnowflakeLoader, store: S3StageStore) -> None:
    stage_days(store, "stripe_charges", {DAY0: 5}, "run1")
    result = loader.load(store, "stripe_charges", [DAY0])

    with loader.connection_factory() as conn:
        cur = conn.cursor()
        cur.execute(
            f"SELECT column_name, data_type FROM {loader.database}.information_schema.columns "
            "WHERE table_schema = 'RAW' AND table_name = 'STRIPE_CHARGES'"
        )
        types = dict(cur.fetchall())
        cur.execute(f"SELECT DISTINCT _loaded_at FROM {result.table}")
        loaded = cur.fetchall()
        cur.execute(
            f"SELECT id, created, metadata, failure_message FROM {result.table} ORDER BY id"
        )
        sample = cur.fetchall()
    assert types["AMOUNT"] == "NUMBER" and types["CREATED"] == "TIMESTAMP_TZ"
    assert types["_PARTITION_DATE"] == "DATE" and types["CAPTURED"] == "BOOLEAN"
    assert types["_LOADED_AT"] == "TIMESTAMP_TZ"
    assert [r[0] for r in loaded] == [result.loaded_at]
    assert sample[4][3] == 'it\'s "quoted", ünïcode'  # row 4 carries the awkward text
    assert sample[0][1].utcoffset().total_seconds() == 0


def test_failure_between_delete_and_copy_rolls_back(
    loader: SnowflakeLoader, store: S3StageStore, snowflake_connect: Connect
) -> None:
    days = days_from(DAY0, 3)
    stage_days(store, "stripe_charges", dict.fromkeys(days, 3), "run1")
    table = loader.load(store, "stripe_charges", days).table
    before = table_rows(snowflake_connect, table, with_loaded_at=True)
    stage_days(store, "stripe_charges", dict.fromkeys(days, 8), "run2", salt="new")
    steps: list[LoadStep] = []

    def crash(step: LoadStep) -> None:
        steps.append(step)
        raise RuntimeError("worker killed after DELETE")

    with pytest.raises(RuntimeError, match="after DELETE"):
        with_loader(loader, hooks=LoadHooks(after_delete=crash)).load(store, "stripe_charges", days)

    assert steps[0].table == table
    assert table_rows(snowflake_connect, table, with_loaded_at=True) == before


def test_failure_after_copy_before_commit_rolls_back(
    loader: SnowflakeLoader, store: S3StageStore, snowflake_connect: Connect
) -> None:
    days = days_from(DAY0, 2)
    stage_days(store, "ledger_entries", dict.fromkeys(days, 2), "run1")
    table = loader.load(store, "ledger_entries", days).table
    before = table_rows(snowflake_connect, table, with_loaded_at=True)
    stage_days(store, "ledger_entries", dict.fromkeys(days, 9), "run2", salt="new")

    def crash(step: LoadStep) -> None:
        raise RuntimeError("crash before COMMIT")

    with pytest.raises(RuntimeError, match="before COMMIT"):
        with_loader(loader, hooks=LoadHooks(before_commit=crash)).load(
            store, "ledger_entries", days
        )
    assert table_rows(snowflake_connect, table, with_loaded_at=True) == before


def test_staged_not_equal_loaded_refuses_to_commit(
    loader: SnowflakeLoader, store: S3StageStore, snowflake_connect: Connect
) -> None:
    days = days_from(DAY0, 2)
    stage_days(store, "ledger_entries", dict.fromkeys(days, 2), "run1")
    table = loader.load(store, "ledger_entries", days).table
    before = table_rows(snowflake_connect, table, with_loaded_at=True)
    manifests = stage_days(store, "ledger_entries", dict.fromkeys(days, 4), "run2", salt="x")
    rewrite_manifest(store, manifests[days[0]], rows=3)

    with pytest.raises(CountMismatchError, match="2024-11-02 staged=3 loaded=4"):
        loader.load(store, "ledger_entries", days)
    assert table_rows(snowflake_connect, table, with_loaded_at=True) == before


def test_missing_manifest_fails_before_any_sql(store: S3StageStore) -> None:
    days = days_from(DAY0, 3)
    stage_days(store, "stripe_charges", {days[0]: 1, days[2]: 1}, "run1")

    def no_connection() -> contextlib.AbstractContextManager[Any]:
        raise AssertionError("the load must fail before connecting")

    sf = SnowflakeLoader(no_connection, STAGE, "ANY_DB")
    with pytest.raises(MissingManifestError, match="2024-11-03"):
        sf.load(store, "stripe_charges", days)


def test_copy_names_exact_files_with_format_and_force(
    loader: SnowflakeLoader, store: S3StageStore, snowflake_connect: Connect
) -> None:
    days = days_from(DAY0, 3)
    stage_days(store, "ledger_entries", dict.fromkeys(days, 1), "old-run")
    manifests = stage_days(store, "ledger_entries", {days[0]: 1, days[1]: 0, days[2]: 2}, "new")
    statements: list[str] = []

    @contextlib.contextmanager
    def recording() -> Iterator[Any]:
        with snowflake_connect() as conn:
            yield _RecordingConnection(conn, statements)

    result = SnowflakeLoader(recording, STAGE, loader.database).load(store, "ledger_entries", days)

    assert result.loaded_by_day == {days[0]: 1, days[1]: 0, days[2]: 2}
    copies = [s for s in statements if s.startswith("COPY INTO")]
    assert len(copies) == 1
    assert f"'{manifests[days[0]].key}'" in copies[0]
    assert f"'{manifests[days[2]].key}'" in copies[0]
    assert manifests[days[1]].key not in copies[0]  # 0 rows: the DELETE made the day right
    assert "old-run" not in copies[0]
    for clause in (
        "FILE_FORMAT = (TYPE = PARQUET)",
        "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE",
        "FORCE = TRUE",
    ):
        assert clause in copies[0]
    order = [s.split()[0] for s in statements]
    assert (
        order.index("BEGIN") < order.index("DELETE") < order.index("COPY") < order.index("COMMIT")
    )
    assert not any("BETWEEN" in s for s in statements)
    # DDL commits implicitly in Snowflake, so none may run inside the transaction
    inside = statements[order.index("BEGIN") : order.index("COMMIT")]
    assert not any(s.startswith(("CREATE", "ALTER", "DROP")) for s in inside)


def test_ensure_stage_is_idempotent_and_refuses_another_root(
    loader: SnowflakeLoader, store: S3StageStore, s3_bucket: str
) -> None:
    loader.ensure_stage(store.root_uri + "/", INTEGRATION)  # same root: fine
    with pytest.raises(LoadError, match="points at"):
        loader.ensure_stage(f"s3://{s3_bucket}/other", INTEGRATION)
    with pytest.raises(ValueError, match="identifier"):
        loader.ensure_stage(store.root_uri, "bad name; DROP")


def test_snowflake_resource_connection(
    fakesnow_server: dict[str, Any], snowflake_database: str, store: S3StageStore
) -> None:
    """The way the Dagster asset builds it: `SnowflakeResource(...).get_connection`."""
    from dagster_snowflake import SnowflakeResource

    password = "pw-that-must-never-leak-7f3a"
    resource = SnowflakeResource(
        account=fakesnow_server["account"],
        user=fakesnow_server["user"],
        password=password,
        database=snowflake_database,
        additional_snowflake_connection_args={
            "host": fakesnow_server["host"],
            "port": fakesnow_server["port"],
            "protocol": "http",
            "network_timeout": fakesnow_server["network_timeout"],
            "session_parameters": fakesnow_server["session_parameters"],
        },
    )
    sf = SnowflakeLoader(resource.get_connection, STAGE, snowflake_database)
    sf.ensure_stage(store.root_uri, INTEGRATION)
    days = days_from(DAY0, 2)
    stage_days(store, "stripe_charges", {days[0]: 2, days[1]: 1}, "run1")

    result = sf.load(store, "stripe_charges", days, run_id="run1")

    assert result.loaded_by_day == {days[0]: 2, days[1]: 1}
    assert password not in repr(result) and password not in str(result.to_metadata())
    manifests = stage_days(store, "stripe_charges", {days[0]: 1}, "run2")
    rewrite_manifest(store, manifests[days[0]], rows=5)
    with pytest.raises(CountMismatchError) as err:
        sf.load(store, "stripe_charges", [days[0]])
    assert password not in str(err.value) and password not in repr(err.value.result)


def test_query_tag_names_the_run_and_is_unset(
    loader: SnowflakeLoader, store: S3StageStore, snowflake_connect: Connect
) -> None:
    """fakesnow lacks ALTER SESSION SET QUERY_TAG, so the recorder answers those itself."""
    stage_days(store, "stripe_charges", {DAY0: 1}, "run1")
    statements: list[str] = []

    @contextlib.contextmanager
    def recording() -> Iterator[Any]:
        with snowflake_connect() as conn:
            yield _RecordingConnection(conn, statements, swallow="ALTER SESSION")

    tagged = SnowflakeLoader(recording, STAGE, loader.database, query_tag=True)
    tagged.load(store, "stripe_charges", [DAY0], run_id="abc-123'; DROP TABLE x")

    alters = [s for s in statements if s.startswith("ALTER SESSION")]
    assert alters == [
        "ALTER SESSION SET QUERY_TAG = 'recon:load:stripe_charges:abc-123___DROP_TABLE_x'",
        "ALTER SESSION UNSET QUERY_TAG",
    ]
    assert statements[0] == alters[0] and statements[-1] == alters[1]


class _RecordingCursor:
    """Records every statement; answers those starting with `swallow` without running them."""

    def __init__(self, cur: Any, statements: list[str], swallow: str | None) -> None:
        self._cur, self._statements, self._swallow = cur, statements, swallow

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self._statements.append(" ".join(sql.split()))
        if self._swallow and sql.startswith(self._swallow):
            return self
        return self._cur.execute(sql, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


class _RecordingConnection:
    def __init__(self, conn: Any, statements: list[str], swallow: str | None = None) -> None:
        self._conn, self._statements, self._swallow = conn, statements, swallow

    def cursor(self) -> _RecordingCursor:
        return _RecordingCursor(self._conn.cursor(), self._statements, self._swallow)


def test_load_by_id_and_the_load_log(loader: SnowflakeLoader, store: S3StageStore) -> None:
    check_keyed_ledger_load(loader, store)


def test_events_cursor_moves_only_with_its_load(
    loader: SnowflakeLoader, store: S3StageStore
) -> None:
    check_events_cursor_moves_with_its_load(loader, store)


def test_lookup_scan_is_recorded_only_with_its_load(
    loader: SnowflakeLoader, store: S3StageStore
) -> None:
    check_lookup_scan_moves_with_its_load(loader, store)
