"""The local warehouse loader: staged Parquet into a DuckDB file, one transaction per range.

DuckDB reads the manifest-named files itself (`read_parquet([...])`), so a load is one
`INSERT ... BY NAME SELECT` at DuckDB's native Parquet speed, never rows through Python. An
`s3://` stage cannot be read by DuckDB here (httpfs cannot be installed), so its files are
streamed through the stage store into a temporary folder first.

The DuckDB file allows one writer process at a time and dbt opens the same file right after the
load, so every load opens its own short-lived connection and closes it before returning.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from recon_assets.stage.manifest import DayManifest, KeyedManifest
from recon_assets.stage.store import LocalStageStore, S3StageStore, StageStore, parse_s3_uri
from recon_assets.warehouse.loader import (
    LOADED_AT,
    NO_HOOKS,
    PARTITION_COLUMN,
    RAW_SCHEMA,
    Columns,
    CountMismatchError,
    KeyedLoadResult,
    LoadError,
    LoadHooks,
    LoadPlan,
    LoadResult,
    LoadStep,
    added_columns,
    build_result,
    column_drift,
    dataset_columns,
    keyed_load_check,
    plan_load,
    raw_tables,
    replace_groups,
)

DUCKDB_TYPES = {
    "int64": "BIGINT",
    "int32": "INTEGER",
    "bool": "BOOLEAN",
    "string": "VARCHAR",
    "date": "DATE",
    "float64": "DOUBLE",
    # an instant stays an instant: UTC-adjusted Parquet timestamps load into TIMESTAMPTZ with no
    # session-time-zone conversion on the way in
    "timestamp_tz": "TIMESTAMPTZ",
    "timestamp": "TIMESTAMP",
}
"""The DuckDB column type of each staged column kind (`loader.Column.kind`)."""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_table_sql(table: str, columns: Columns, *, loaded_at: bool = True) -> str:
    """`CREATE TABLE IF NOT EXISTS` from the staged columns, plus `_loaded_at` for data tables."""
    cols = [
        f"{_q(c.name)} {DUCKDB_TYPES[c.kind]}{'' if c.nullable else ' NOT NULL'}" for c in columns
    ]
    if loaded_at:
        cols.append(f"{_q(LOADED_AT)} TIMESTAMPTZ NOT NULL")
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  " + ",\n  ".join(cols) + "\n)"


def ensure_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The raw schema's data and bookkeeping tables, so dbt finds every source it reads even
    before the first load of one of them."""
    tables = raw_tables()
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    for name, columns in tables.datasets.items():
        con.execute(create_table_sql(f"{RAW_SCHEMA}.{name}", columns))
        for c in added_columns(_table_columns(con, name), columns):
            con.execute(
                f"ALTER TABLE {RAW_SCHEMA}.{name} ADD COLUMN IF NOT EXISTS "
                f"{_q(c.name)} {DUCKDB_TYPES[c.kind]}"
            )
    for name, columns in tables.bookkeeping.items():
        con.execute(create_table_sql(f"{RAW_SCHEMA}.{name}", columns, loaded_at=False))


def _table_columns(con: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [RAW_SCHEMA, name],
    ).fetchall()
    return [r[0] for r in rows]


def _record_refs_before(con: duckdb.DuckDBPyConnection, where: str, params: list, run_id: str,
                        loaded_at: datetime) -> None:  # fmt: skip
    """Remember the charge ids of the ledger rows about to be replaced (see _prune_refs)."""
    con.execute(
        f"INSERT INTO {RAW_SCHEMA}.ledger_dropped_refs "
        f"SELECT coalesce(external_ref, ''), id, ?, ?::TIMESTAMPTZ FROM {RAW_SCHEMA}.ledger_entries "
        f"WHERE lower(entry_type) = 'charge' AND {where}",
        [run_id, loaded_at, *params],
    )


def _prune_refs(con: duckdb.DuckDBPyConnection, run_id: str, loaded_at: datetime) -> None:
    """Keep only the (entry, charge) pairs the new rows no longer have: a re-pointed or
    vanished `charge` entry. A re-load of unchanged rows leaves nothing behind."""
    con.execute(
        f"DELETE FROM {RAW_SCHEMA}.ledger_dropped_refs "
        "WHERE run_id = ? AND loaded_at = ?::TIMESTAMPTZ AND EXISTS ("
        f"  SELECT 1 FROM {RAW_SCHEMA}.ledger_entries AS e "
        "   WHERE e.id = ledger_dropped_refs.entry_id "
        "   AND coalesce(e.external_ref, '') = ledger_dropped_refs.external_ref "
        "   AND lower(e.entry_type) = 'charge')",
        [run_id, loaded_at],
    )


def connect_duckdb(
    path: str | Path, *, read_only: bool, memory_limit: str | None
) -> duckdb.DuckDBPyConnection:
    """The one way recon opens the warehouse file, so the loads, the report's reads and
    `recon report` all run under the same memory limit (None: DuckDB's default, 80 % of RAM)."""
    config = {"memory_limit": memory_limit} if memory_limit else {}
    return duckdb.connect(str(path), read_only=read_only, config=config)


DBT_MEMORY_SETTING = "RECON_DUCKDB_MEMORY_LIMIT"
RUN_MEMORY_SETTING = "RECON_DUCKDB_RUN_MEMORY_LIMIT"


def out_of_memory_hint(
    error: str, memory_limit: str, setting: str = DBT_MEMORY_SETTING
) -> str | None:
    """What to do when DuckDB ran out of recon's memory limit, or None for any other error.
    DuckDB's own advice ("SET memory_limit") names a setting nobody running recon can reach; the
    one that reaches the connection that failed is `setting`: dbt's builds
    (RECON_DUCKDB_MEMORY_LIMIT), whose usual cause is a first build of a long range
    (docs/operations.md, "Backfills and re-runs"), or the run worker's own loads and reads
    (RECON_DUCKDB_RUN_MEMORY_LIMIT)."""
    if "Out of Memory Error" not in error:
        return None
    if setting == RUN_MEMORY_SETTING:
        return (
            f"DuckDB ran out of the run worker's memory limit ({memory_limit}) in a load or a "
            f"read of the warehouse: re-run with {RUN_MEMORY_SETTING}=256MB in the environment "
            "of the code location (or of `recon backfill`). A failed run leaves the tables as "
            "they were, so re-running is safe. See docs/operations.md, 'Backfills and re-runs'."
        )
    return (
        f"DuckDB ran out of its memory limit ({memory_limit}). A first build of a long range "
        "reads every ledger entry at once: re-run it with "
        f"{DBT_MEMORY_SETTING}=1GB or more in the environment of the code location (or of "
        "`recon backfill`), then return to the default. A failed run leaves the tables as they "
        "were, so re-running is safe. See docs/operations.md, 'Backfills and re-runs'."
    )


class DuckDBLoader:
    """Loads manifest-named staged files into `raw.<dataset>` of a DuckDB file.

    `db_path` is `<RECON_HOME>/warehouse.duckdb` unless RECON_DUCKDB_PATH overrides it; the
    caller resolves it (see `ReconSettings.duckdb_path`). `hooks` is the test seam for failing a
    load at its most delicate points. `lock_timeout_s` bounds how long a load waits for another
    process (dbt, a second run) to release the file. `memory_limit` is DuckDB's, for each of
    its connections (None: DuckDB's default, 80 % of RAM).
    """

    def __init__(
        self,
        db_path: str | Path,
        *,
        hooks: LoadHooks = NO_HOOKS,
        lock_timeout_s: float = 30.0,
        clock: Callable[[], datetime] | None = None,
        download_dir: str | Path | None = None,
        memory_limit: str | None = None,
    ) -> None:
        self.db_path = Path(db_path)
        self.memory_limit = memory_limit
        self.hooks = hooks
        self.lock_timeout_s = lock_timeout_s
        self._clock = clock or (lambda: datetime.now(UTC))
        self.download_dir = download_dir

    # -- public ---------------------------------------------------------------------------
    def load(
        self, store: StageStore, dataset: str, days: Sequence[date], *, run_id: str | None = None
    ) -> LoadResult:
        """Replace the rows of `days` (contiguous) in `raw.<dataset>` with their staged files.

        Raises `MissingManifestError` before touching the warehouse when a day was not staged,
        and `CountMismatchError` (after rolling back) when the table would not hold exactly the
        staged rows per day.
        """
        plan = plan_load(store, dataset, days)
        table = f"{RAW_SCHEMA}.{plan.dataset}"
        with self._local_files(store, plan.manifests) as paths, self._connect() as con:
            ensure_raw_tables(con)
            self._check_columns(con, plan.dataset, plan.columns)
            return self._replace_range(con, plan, table, paths, run_id)

    def load_keyed(
        self, store: StageStore, manifest: KeyedManifest, *, run_id: str | None = None
    ) -> KeyedLoadResult:
        """Replace rows by id with the manifest's files, record its look-ups, in one transaction.

        Days are not replaced: a look-up or a late ledger change never removes the rest of its
        day. The load log gets a `manifest.kind` row per day touched (not a completeness claim).
        """
        columns = dataset_columns(manifest.dataset)
        table = f"{RAW_SCHEMA}.{manifest.dataset}"
        rid = run_id or manifest.run_id
        files = [f for f in manifest.files if f.rows > 0]
        # the files in the shape `_local_files` reads (dataset, day, key), to reuse its S3 download
        as_days = [
            DayManifest(manifest.dataset, f.day, manifest.run_id, f.key, "", f.rows, 0, 0, "")
            for f in files
        ]
        with self._local_files(store, as_days) as paths, self._connect() as con:
            ensure_raw_tables(con)
            self._check_columns(con, manifest.dataset, columns)
            loaded_at = self._clock()
            con.begin()
            try:
                replaced = inserted = 0
                if paths:
                    in_files = "id IN (SELECT id FROM read_parquet(?))"
                    if manifest.dataset == "ledger_entries":
                        _record_refs_before(con, in_files, [paths], rid, loaded_at)
                    row = con.execute(f"DELETE FROM {table} WHERE {in_files}", [paths]).fetchone()
                    replaced = int(row[0]) if row else 0
                    inserted = _insert_files(con, table, paths, loaded_at)
                    if manifest.dataset == "ledger_entries":
                        _prune_refs(con, rid, loaded_at)
                keyed_load_check(manifest, inserted)
                for f in files:
                    con.execute(
                        f"INSERT INTO {RAW_SCHEMA}.load_log VALUES (?, ?, ?, ?, ?, ?::TIMESTAMPTZ)",
                        [manifest.dataset, f.day, manifest.kind, f.rows, rid, loaded_at],
                    )
                for cid, res, detail in manifest.lookups:
                    con.execute(
                        f"INSERT INTO {RAW_SCHEMA}.stripe_charge_lookups "
                        "VALUES (?, ?, ?, ?, ?::TIMESTAMPTZ)",
                        [cid, res, detail, rid, loaded_at],
                    )
                if (ev := manifest.events_read) is not None:
                    con.execute(
                        f"INSERT INTO {RAW_SCHEMA}.stripe_event_reads VALUES (to_timestamp(?), "
                        "to_timestamp(?), ?, ?, ?, ?::TIMESTAMPTZ)",
                        [ev.read_from, ev.read_until, ev.events, ev.charges, rid, loaded_at],
                    )
                if (scan := manifest.lookup_scan) is not None:
                    con.execute(
                        f"INSERT INTO {RAW_SCHEMA}.stripe_lookup_scans "
                        "VALUES (?::TIMESTAMPTZ, ?::TIMESTAMPTZ, ?, ?::TIMESTAMPTZ)",
                        [scan.scanned_through, scan.read_from, rid, loaded_at],
                    )
                con.commit()
            except BaseException:
                con.rollback()
                raise
        by_day: dict[date, int] = {}
        for f in files:
            by_day[f.day] = by_day.get(f.day, 0) + f.rows
        return KeyedLoadResult(
            manifest.dataset, manifest.kind, replaced, inserted, by_day, len(manifest.lookups)
        )

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        """A read on its own short connection (`?` placeholders); [] before the first load."""
        return [row for batch in self.query_batches(sql, params) for row in batch]

    def query_batches(
        self, sql: str, params: Sequence[object] = (), size: int = 10_000
    ) -> Iterator[list[tuple[object, ...]]]:
        """`query`'s rows `size` at a time, so a caller in another process receives them in
        bounded messages instead of one pickle of the whole result."""
        with self._connect() as con:
            ensure_raw_tables(con)
            yield from _in_batches(con.execute(sql, list(params)), size)

    @contextlib.contextmanager
    def reading_batches(self) -> Iterator[Callable[[str, Sequence[object], int], Iterator[list]]]:
        """One read-only connection for a series of reads (the report's): each read yields its
        rows in batches, and one that runs out of the limit names the setting that raises it."""
        with self._connect(read_only=True) as con:

            def read(sql: str, params: Sequence[object], size: int = 10_000) -> Iterator[list]:
                return _in_batches(con.execute(sql, list(params)), size)

            yield read

    @contextlib.contextmanager
    def reading(self) -> Iterator[Callable[[str, Sequence[object]], list[tuple[object, ...]]]]:
        """`reading_batches` with each read's rows whole: the report's reads, as the warehouse
        process (`DuckDBProcess.reading`) gives them."""
        with self.reading_batches() as read:
            yield lambda sql, params: [row for batch in read(sql, params) for row in batch]

    def rows_by_day(self, dataset: str, first: date, end_exclusive: date) -> dict[date, int]:
        """Rows per `_partition_date` in `[first, end_exclusive)`, for checks and tests."""
        with self._connect(read_only=True) as con:
            return _count_by_day(con, f"{RAW_SCHEMA}.{dataset}", first, end_exclusive)

    # -- internals ------------------------------------------------------------------------
    def _replace_range(
        self,
        con: duckdb.DuckDBPyConnection,
        plan: LoadPlan,
        table: str,
        paths: list[str],
        run_id: str | None = None,
    ) -> LoadResult:
        step = LoadStep(plan.dataset, table, plan.first, plan.end_exclusive, plan.manifests)
        loaded_at = self._clock()
        rid = run_id or (plan.manifests[0].run_id if plan.manifests else "-")
        con.begin()
        try:
            deleted = 0
            for days, cutoff in replace_groups(plan.manifests):
                where = f"{PARTITION_COLUMN} IN ({', '.join('?' * len(days))})" + (
                    "" if cutoff is None else " AND _synced_at <= ?::TIMESTAMPTZ"
                )
                params: list[object] = [*days, *([] if cutoff is None else [cutoff])]
                if plan.dataset == "ledger_entries":
                    _record_refs_before(con, where, params, rid, loaded_at)
                deleted_row = con.execute(f"DELETE FROM {table} WHERE {where}", params).fetchone()
                deleted += int(deleted_row[0]) if deleted_row else 0
            if self.hooks.after_delete:
                self.hooks.after_delete(step)
            inserted = _insert_files(con, table, paths, loaded_at)
            if plan.dataset == "ledger_entries":
                _prune_refs(con, rid, loaded_at)
            counts = _count_by_day(con, table, plan.first, plan.end_exclusive, loaded_at)
            result = build_result(plan, table, counts, inserted, loaded_at, deleted)
            if not result.ok:
                raise CountMismatchError(result)
            for d in result.days:  # an empty day is a loaded day: completeness reads this
                con.execute(
                    f"INSERT INTO {RAW_SCHEMA}.load_log VALUES (?, ?, 'day', ?, ?, ?::TIMESTAMPTZ)",
                    [plan.dataset, d.day, d.loaded_rows, rid, loaded_at],
                )
            if self.hooks.before_commit:
                self.hooks.before_commit(step)
            con.commit()
        except BaseException:
            con.rollback()
            raise
        return result

    def _check_columns(
        self, con: duckdb.DuckDBPyConnection, dataset: str, columns: Columns
    ) -> None:
        """An existing table must have exactly the staged columns; drift needs a migration."""
        if drift := column_drift(_table_columns(con, dataset), columns):
            raise LoadError(
                f"{RAW_SCHEMA}.{dataset} does not match the staged schema ({drift}); "
                "migrate the table before loading"
            )

    @contextlib.contextmanager
    def _connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection, waiting (bounded) while another process holds the file."""
        if not read_only:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                con = connect_duckdb(
                    self.db_path, read_only=read_only, memory_limit=self.memory_limit
                )
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            yield con
        except duckdb.OutOfMemoryException as exc:
            # the run's own connection: its advice names the run worker's setting, not dbt's
            hint = out_of_memory_hint(
                str(exc), self.memory_limit or "80% of RAM", RUN_MEMORY_SETTING
            )
            raise LoadError(f"{hint}\n\n{exc}") from exc
        finally:
            con.close()

    @contextlib.contextmanager
    def _local_files(
        self, store: StageStore, manifests: Sequence[DayManifest]
    ) -> Iterator[list[str]]:
        """Local paths of the manifest-named files: in place locally, downloaded from S3."""
        if isinstance(store, LocalStageStore):
            paths = [str(store.path(m.key)) for m in manifests]
            for m, p in zip(manifests, paths, strict=True):
                if not Path(p).is_file():
                    raise LoadError(
                        f"manifest of {m.dataset} on {m.day.isoformat()} names {m.key}, "
                        "which is not on the stage"
                    )
            yield paths
            return
        with tempfile.TemporaryDirectory(prefix="recon-load-", dir=self.download_dir) as tmp:
            paths = []
            for i, m in enumerate(manifests):
                target = Path(tmp) / f"{i:04d}.parquet"
                _download(store, m.key, target)
                paths.append(str(target))
            yield paths


def _in_batches(cur: duckdb.DuckDBPyConnection, size: int) -> Iterator[list[tuple[object, ...]]]:
    """An executed query's rows, `size` at a time."""
    while batch := cur.fetchmany(size):
        yield batch


def _download(store: StageStore, key: str, target: Path) -> None:
    """Stream one staged file to disk (S3 in chunks; other stores through `read_bytes`)."""
    if isinstance(store, S3StageStore):
        bucket, full_key = parse_s3_uri(store.uri(key))
        store.client.download_file(bucket, full_key, str(target))
    else:
        target.write_bytes(store.read_bytes(key))


def _insert_files(
    con: duckdb.DuckDBPyConnection, table: str, paths: list[str], loaded_at: datetime
) -> int:
    """Every row of the staged files, stamped with this load's `_loaded_at`; rows inserted."""
    row = con.execute(
        f"INSERT INTO {table} BY NAME SELECT *, ?::TIMESTAMPTZ AS {LOADED_AT} FROM read_parquet(?)",
        [loaded_at, paths],
    ).fetchone()
    return int(row[0]) if row else 0


def _count_by_day(
    con: duckdb.DuckDBPyConnection,
    table: str,
    first: date,
    end_exclusive: date,
    loaded_at: datetime | None = None,
) -> dict[date, int]:
    """Rows per day of the range; with `loaded_at`, only the rows that load inserted."""
    extra = "" if loaded_at is None else f" AND {LOADED_AT} = ?::TIMESTAMPTZ"
    rows = con.execute(
        f"SELECT {PARTITION_COLUMN}, count(*) FROM {table} "
        f"WHERE {PARTITION_COLUMN} >= ? AND {PARTITION_COLUMN} < ?{extra} GROUP BY 1",
        [first, end_exclusive, *([] if loaded_at is None else [loaded_at])],
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}
