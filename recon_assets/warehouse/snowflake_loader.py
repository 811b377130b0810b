"""The production warehouse loader: staged Parquet on S3 into Snowflake with `COPY INTO`.

Snowflake reads the files itself from an external stage on the S3 stage root; the stage
authenticates through a STORAGE INTEGRATION, so no AWS credential ever appears in SQL, query
history or logs. A load replaces a day range in one explicit transaction:

    BEGIN
    DELETE FROM raw.<t> WHERE _partition_date >= first AND _partition_date < end_exclusive
    COPY INTO raw.<t> FROM @stage FILES=(<the manifests' keys>) FILE_FORMAT=(TYPE=PARQUET)
         MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE FORCE=TRUE
    UPDATE raw.<t> SET _loaded_at = <this load's instant> WHERE <the range>
    SELECT _partition_date, count(*) ... GROUP BY 1     -- staged = loaded, or ROLLBACK
    COMMIT

Choices and why:
- FILES names exactly this range's manifest-named files, never a prefix or PATTERN, so leftovers
  of other runs on the stage are never loaded. Files of days staged with 0 rows are left out:
  the DELETE already made those days right.
- FORCE=TRUE: Snowflake's load history (64 days) silently skips a file it loaded before. A
  re-run of a day after its rows were deleted must load the same file again; FORCE is safe
  because the DELETE of the range makes the load idempotent.
- The file format is always given on the COPY, never left to the stage's default.
- `_loaded_at` is not in the files; under MATCH_BY_COLUMN_NAME Snowflake fills table columns
  missing from the file with NULL (fakesnow does the same), so the column is nullable and an
  UPDATE of the just-loaded range inside the transaction sets it. Readers never see the NULLs.
- Timestamps are TIMESTAMP_TZ: the staged values are UTC instants, and TIMESTAMP_TZ keeps the
  instant whatever the session's TIMEZONE is (TIMESTAMP_NTZ would depend on how the session
  converts an instant to a wall clock). dbt's staging reads the column type and normalises with
  `convert_timezone('UTC', col)::timestamp_ntz` (macro `utc_instant`).
- Identifiers: database, schema, stage and table are plain unquoted names (they resolve upper
  case, as dbt expects); columns are quoted upper case, which is the same identifier as the
  unquoted lower-case name dbt writes, and also works for reserved words such as ACCOUNT.
- DDL (CREATE SCHEMA/TABLE/STAGE) runs before BEGIN: Snowflake commits an open transaction on
  DDL, which would split the load.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from typing import Any

from recon_assets.stage.manifest import KeyedManifest
from recon_assets.stage.store import S3StageStore, StageStore
from recon_assets.warehouse.loader import (
    LOADED_AT,
    NO_HOOKS,
    PARTITION_COLUMN,
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

COPY_FILES_LIMIT = 1000
"""Snowflake accepts at most 1,000 names in one COPY's FILES list; longer ranges use several
COPY statements inside the same transaction."""

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.:\-]")

ConnectionFactory = Callable[[], AbstractContextManager[Any]]
"""`SnowflakeResource.get_connection` or anything like it: a context manager yielding a DB-API
Snowflake connection. For a connection you already hold: `lambda: contextlib.nullcontext(conn)`."""


SNOWFLAKE_TYPES = {
    "int64": "NUMBER(38,0)",
    "int32": "NUMBER(10,0)",
    "bool": "BOOLEAN",
    "string": "VARCHAR",
    "date": "DATE",
    "float64": "FLOAT",
    "timestamp_tz": "TIMESTAMP_TZ",
    "timestamp": "TIMESTAMP_NTZ",
}
"""The Snowflake column type of each staged column kind (`loader.Column.kind`)."""


def _ident(value: str, what: str) -> str:
    if not _IDENT.match(value):
        raise ValueError(f"{what} must be a plain identifier ([A-Za-z_][A-Za-z0-9_$]*)")
    return value.upper()


def _col(name: str) -> str:
    return '"' + name.upper().replace('"', '""') + '"'


def _str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _date(d: date) -> str:
    return f"'{d.isoformat()}'::DATE"


class SnowflakeLoader:
    """Loads manifest-named staged files into `<database>.<schema>.<DATASET>` with COPY INTO.

    `connection_factory` is usually `SnowflakeResource.get_connection`; each load opens one
    connection and runs its whole transaction on it. `stage_name` is the external stage on the
    S3 stage root (see `ensure_stage`). `query_tag=True` tags the session's queries with the
    dataset and run id (`ALTER SESSION SET QUERY_TAG`; off by default because fakesnow lacks it).
    """

    def __init__(
        self,
        connection_factory: ConnectionFactory,
        stage_name: str,
        database: str,
        schema: str = "RAW",
        *,
        hooks: LoadHooks = NO_HOOKS,
        query_tag: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.connection_factory = connection_factory
        self.database = _ident(database, "database")
        self.schema = _ident(schema, "schema")
        self.stage_name = _ident(stage_name, "stage_name")
        self.hooks = hooks
        self.query_tag = query_tag
        self._clock = clock or (lambda: datetime.now(UTC))

    # -- names ----------------------------------------------------------------------------
    @property
    def qualified_schema(self) -> str:
        return f"{self.database}.{self.schema}"

    @property
    def qualified_stage(self) -> str:
        return f"{self.qualified_schema}.{self.stage_name}"

    def table_name(self, dataset: str) -> str:
        return f"{self.qualified_schema}.{_ident(dataset, 'dataset')}"

    def create_table_sql(self, dataset: str, columns: Columns, *, loaded_at: bool = True) -> str:
        cols = [
            f"{_col(c.name)} {SNOWFLAKE_TYPES[c.kind]}{'' if c.nullable else ' NOT NULL'}"
            for c in columns
        ]
        if loaded_at:
            cols.append(f"{_col(LOADED_AT)} TIMESTAMP_TZ")  # filled inside the load's transaction
        return (
            f"CREATE TABLE IF NOT EXISTS {self.table_name(dataset)} (\n  "
            + ",\n  ".join(cols)
            + "\n)"
        )

    # -- stage ----------------------------------------------------------------------------
    def ensure_stage(self, stage_url: str, storage_integration: str) -> None:
        """Create the external stage on `stage_url` (the S3 stage root) if it does not exist.

        Authentication is the STORAGE INTEGRATION's (an IAM role Snowflake assumes), never keys
        in SQL. An existing stage pointing elsewhere is an error, not silently replaced: it may
        be shared, and replacing a stage drops its grants.
        """
        if not stage_url.startswith("s3://"):
            raise ValueError("the Snowflake stage must be an s3:// URL (the S3 stage root)")
        url = stage_url.rstrip("/") + "/"
        integration = _ident(storage_integration, "storage_integration")
        with self.connection_factory() as conn:
            cur = conn.cursor()
            try:
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self.qualified_schema}")
                cur.execute(
                    f"CREATE STAGE IF NOT EXISTS {self.qualified_stage} URL = {_str(url)} "
                    f"STORAGE_INTEGRATION = {integration}"
                )
                cur.execute(f"SHOW STAGES IN SCHEMA {self.qualified_schema}")
                names = [d[0].lower() for d in cur.description]
                found = [
                    dict(zip(names, row, strict=False))
                    for row in cur.fetchall()
                    if str(row[names.index("name")]).upper() == self.stage_name
                ]
            finally:
                cur.close()
        if not found:
            raise LoadError(f"stage {self.qualified_stage} was not created")
        have = str(found[0].get("url") or "").strip('[]"').rstrip("/") + "/"
        if have != url:
            raise LoadError(
                f"stage {self.qualified_stage} points at {have}, not at the stage root {url}; "
                "recreate it (CREATE OR REPLACE STAGE ... STORAGE_INTEGRATION = ...) deliberately"
            )

    # -- load -----------------------------------------------------------------------------
    def ensure_raw_tables(self, cur: Any) -> None:
        """Every data and bookkeeping table, created only when missing, so dbt finds each source
        before its first load. Never inside a load's transaction (DDL commits), and never a
        CREATE ... IF NOT EXISTS on an existing table (fakesnow forgets its load history)."""
        existing = self._tables(cur)
        if not existing:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self.qualified_schema}")
        tables = raw_tables()
        for name, columns in tables.datasets.items():
            if name.upper() not in existing:
                cur.execute(self.create_table_sql(name, columns))
                continue
            for c in added_columns(self._columns(cur, name), columns):
                cur.execute(
                    f"ALTER TABLE {self.table_name(name)} ADD COLUMN {_col(c.name)} "
                    f"{SNOWFLAKE_TYPES[c.kind]}"
                )
        for name, columns in tables.bookkeeping.items():
            if name.upper() not in existing:
                cur.execute(self.create_table_sql(name, columns, loaded_at=False))

    def _tables(self, cur: Any) -> set[str]:
        cur.execute(
            f"SELECT table_name FROM {self.database}.information_schema.tables "
            f"WHERE table_schema = {_str(self.schema)}"
        )
        return {str(r[0]).upper() for r in cur.fetchall()}

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        """A read (`?` placeholders); table names are given unqualified-schema as raw.<t>.

        The connector binds parameters client side with Python's `%` formatting, and only when
        there are some: a `like 'ch_%'` is then escaped, or it would be read as a placeholder."""
        sql = sql.replace("raw.", f"{self.qualified_schema}.")
        with self.connection_factory() as conn:
            cur = conn.cursor()
            try:
                self.ensure_raw_tables(cur)
                if params:
                    cur.execute(sql.replace("%", "%%").replace("?", "%s"), list(params))
                else:
                    cur.execute(sql)
                return list(cur.fetchall())
            finally:
                cur.close()

    def load_keyed(
        self, store: StageStore, manifest: KeyedManifest, *, run_id: str | None = None
    ) -> KeyedLoadResult:
        """Replace rows by id (COPY the files, then drop the older versions of their ids),
        record the look-ups and the load log, in one transaction."""
        columns = dataset_columns(manifest.dataset)
        table = self.table_name(manifest.dataset)
        rid = run_id or manifest.run_id
        files = [f for f in manifest.files if f.rows > 0]
        with self.connection_factory() as conn:
            cur = conn.cursor()
            try:
                with self._tagged(cur, manifest.dataset, rid):
                    self.ensure_raw_tables(cur)
                    self._check_columns(cur, manifest.dataset, columns)
                    loaded_at = self._clock()
                    ts = _str(loaded_at.astimezone(UTC).isoformat()) + "::TIMESTAMP_TZ"
                    new = f"{LOADED_AT} IS NULL"
                    cur.execute("BEGIN TRANSACTION")
                    try:
                        inserted = replaced = 0
                        if files:
                            cur.execute(f"DELETE FROM {table} WHERE {new}")  # a crash's leftovers
                            for start in range(0, len(files), COPY_FILES_LIMIT):
                                chunk = files[start : start + COPY_FILES_LIMIT]
                                names = ", ".join(_str(f.key) for f in chunk)
                                cur.execute(
                                    f"COPY INTO {table} FROM @{self.qualified_stage} "
                                    f"FILES = ({names}) FILE_FORMAT = (TYPE = PARQUET) "
                                    "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE FORCE = TRUE"
                                )
                                inserted += _check_copy_result(cur, store, chunk)
                            same_id = (
                                f"{LOADED_AT} IS NOT NULL AND ID IN "
                                f"(SELECT ID FROM {table} WHERE {new})"
                            )
                            if manifest.dataset == "ledger_entries":
                                self._record_refs_before(cur, same_id, rid, ts)
                            cur.execute(f"DELETE FROM {table} WHERE {same_id}")
                            replaced = _first_int(cur.fetchone())
                            cur.execute(f"UPDATE {table} SET {LOADED_AT} = {ts} WHERE {new}")
                            if manifest.dataset == "ledger_entries":
                                self._prune_refs(cur, rid, ts)
                        keyed_load_check(manifest, inserted)
                        for f in files:
                            cur.execute(
                                f"INSERT INTO {self.table_name('load_log')} VALUES ("
                                f"{_str(manifest.dataset)}, {_date(f.day)}, {_str(manifest.kind)}, "
                                f"{int(f.rows)}, {_str(rid)}, {ts})"
                            )
                        for cid, res, detail in manifest.lookups:
                            cur.execute(
                                f"INSERT INTO {self.table_name('stripe_charge_lookups')} VALUES ("
                                f"{_str(cid)}, {_str(res)}, "
                                f"{_str(detail) if detail is not None else 'NULL'}, {_str(rid)}, {ts})"
                            )
                        if (ev := manifest.events_read) is not None:
                            cur.execute(
                                f"INSERT INTO {self.table_name('stripe_event_reads')} VALUES ("
                                f"TO_TIMESTAMP_TZ({int(ev.read_from)}), "
                                f"TO_TIMESTAMP_TZ({int(ev.read_until)}), {int(ev.events)}, "
                                f"{int(ev.charges)}, {_str(rid)}, {ts})"
                            )
                        if (scan := manifest.lookup_scan) is not None:
                            through, since = (
                                _str(t.astimezone(UTC).isoformat()) + "::TIMESTAMP_TZ"
                                for t in (scan.scanned_through, scan.read_from)
                            )
                            cur.execute(
                                f"INSERT INTO {self.table_name('stripe_lookup_scans')} VALUES ("
                                f"{through}, {since}, {_str(rid)}, {ts})"
                            )
                        cur.execute("COMMIT")
                    except BaseException:
                        with contextlib.suppress(Exception):
                            cur.execute("ROLLBACK")
                        raise
            finally:
                cur.close()
        by_day: dict[date, int] = {}
        for f in files:
            by_day[f.day] = by_day.get(f.day, 0) + f.rows
        return KeyedLoadResult(
            manifest.dataset, manifest.kind, replaced, inserted, by_day, len(manifest.lookups)
        )

    def _record_refs_before(self, cur: Any, where: str, rid: str, ts: str) -> None:
        cur.execute(
            f"INSERT INTO {self.table_name('ledger_dropped_refs')} "
            f"SELECT COALESCE(EXTERNAL_REF, ''), ID, {_str(rid)}, {ts} "
            f"FROM {self.table_name('ledger_entries')} "
            f"WHERE LOWER(ENTRY_TYPE) = 'charge' AND {where}"
        )

    def _prune_refs(self, cur: Any, rid: str, ts: str) -> None:
        refs, entries = self.table_name("ledger_dropped_refs"), self.table_name("ledger_entries")
        cur.execute(
            f"DELETE FROM {refs} WHERE RUN_ID = {_str(rid)} AND LOADED_AT = {ts} "
            f"AND EXISTS (SELECT 1 FROM {entries} AS E WHERE E.ID = {refs}.ENTRY_ID "
            f"AND COALESCE(E.EXTERNAL_REF, '') = {refs}.EXTERNAL_REF "
            "AND LOWER(E.ENTRY_TYPE) = 'charge')"
        )

    def load(
        self,
        store: StageStore,
        dataset: str,
        days: Sequence[date],
        *,
        run_id: str | None = None,
    ) -> LoadResult:
        """Replace the rows of `days` (contiguous) in the raw table with their staged files.

        `store` must be the stage root the Snowflake stage points at: the manifests' keys are
        the FILES of the COPY, relative to it. Raises `MissingManifestError` before any SQL when
        a day was not staged, `CountMismatchError` (after ROLLBACK) when staged != loaded, and
        re-raises any database error after ROLLBACK.
        """
        plan = plan_load(store, dataset, days)
        table = self.table_name(plan.dataset)
        with self.connection_factory() as conn:
            cur = conn.cursor()
            try:
                with self._tagged(cur, plan.dataset, run_id):
                    self.ensure_raw_tables(cur)
                    self._check_columns(cur, plan.dataset, plan.columns)
                    return self._replace_range(cur, store, plan, table, run_id)
            finally:
                cur.close()

    def rows_by_day(self, dataset: str, first: date, end_exclusive: date) -> dict[date, int]:
        """Rows per `_partition_date` in `[first, end_exclusive)`, for checks and tests."""
        with self.connection_factory() as conn:
            cur = conn.cursor()
            try:
                return _count_by_day(cur, self.table_name(dataset), first, end_exclusive)
            finally:
                cur.close()

    # -- internals ------------------------------------------------------------------------
    def _replace_range(
        self, cur: Any, store: StageStore, plan: LoadPlan, table: str, run_id: str | None = None
    ) -> LoadResult:
        step = LoadStep(plan.dataset, table, plan.first, plan.end_exclusive, plan.manifests)
        loaded_at = self._clock()
        rid = run_id or (plan.manifests[0].run_id if plan.manifests else "-")
        ts = _str(loaded_at.astimezone(UTC).isoformat()) + "::TIMESTAMP_TZ"
        in_range = (
            f"{PARTITION_COLUMN} >= {_date(plan.first)} "
            f"AND {PARTITION_COLUMN} < {_date(plan.end_exclusive)}"
        )
        cur.execute("BEGIN TRANSACTION")
        try:
            deleted = 0
            for days, cutoff in replace_groups(plan.manifests):
                where = f"{PARTITION_COLUMN} IN ({', '.join(_date(d) for d in days)})"
                if cutoff is not None:  # newer versions (by id) stay: see replace_groups
                    where += f" AND _SYNCED_AT <= {_str(cutoff.isoformat())}::TIMESTAMP_TZ"
                if plan.dataset == "ledger_entries":
                    self._record_refs_before(cur, where, rid, ts)
                cur.execute(f"DELETE FROM {table} WHERE {where}")
                deleted += _first_int(cur.fetchone())
            if self.hooks.after_delete:
                self.hooks.after_delete(step)
            inserted = 0
            # A day staged with 0 rows is complete after the DELETE; its (empty) file is not
            # sent, so how Snowflake reports an empty Parquet file cannot fail the load.
            to_copy = [m for m in plan.manifests if m.rows > 0]
            for start in range(0, len(to_copy), COPY_FILES_LIMIT):
                chunk = to_copy[start : start + COPY_FILES_LIMIT]
                files = ", ".join(_str(m.key) for m in chunk)
                cur.execute(
                    f"COPY INTO {table} FROM @{self.qualified_stage} FILES = ({files}) "
                    "FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE "
                    "FORCE = TRUE"
                )
                inserted += _check_copy_result(cur, store, chunk)
            cur.execute(
                f"UPDATE {table} SET {LOADED_AT} = {ts} WHERE {in_range} AND {LOADED_AT} IS NULL"
            )
            if plan.dataset == "ledger_entries":
                self._prune_refs(cur, rid, ts)
            counts = _count_by_day(cur, table, plan.first, plan.end_exclusive, ts)
            result = build_result(plan, table, counts, inserted, loaded_at, deleted)
            if not result.ok:
                raise CountMismatchError(result)
            for d in result.days:  # an empty day is a loaded day: completeness reads this
                cur.execute(
                    f"INSERT INTO {self.table_name('load_log')} VALUES ({_str(plan.dataset)}, "
                    f"{_date(d.day)}, 'day', {int(d.loaded_rows)}, {_str(rid)}, {ts})"
                )
            if self.hooks.before_commit:
                self.hooks.before_commit(step)
            cur.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):  # the original error is the one to report
                cur.execute("ROLLBACK")
            raise
        return result

    def _check_columns(self, cur: Any, dataset: str, columns: Columns) -> None:
        """The raw table (created by `ensure_raw_tables` when missing) must have exactly the
        staged columns.

        MATCH_BY_COLUMN_NAME would otherwise load NULL into a column the files lack and drop a
        file column the table lacks, silently; drift needs a reviewed migration instead.
        """
        if drift := column_drift(self._columns(cur, dataset), columns):
            raise LoadError(
                f"{self.table_name(dataset)} does not match the staged schema ({drift}); "
                "migrate the table before loading"
            )

    def _columns(self, cur: Any, dataset: str) -> list[str]:
        cur.execute(
            f"SELECT column_name FROM {self.database}.information_schema.columns "
            f"WHERE table_schema = {_str(self.schema)} "
            f"AND table_name = {_str(dataset.upper())} ORDER BY ordinal_position"
        )
        return [str(r[0]).upper() for r in cur.fetchall()]

    @contextlib.contextmanager
    def _tagged(self, cur: Any, dataset: str, run_id: str | None) -> Iterator[None]:
        """Tag the session's queries with the dataset and run id, when enabled."""
        if not self.query_tag:
            yield
            return
        tag = _TAG_UNSAFE.sub("_", f"recon:load:{dataset}:{run_id or '-'}")[:2000]
        cur.execute(f"ALTER SESSION SET QUERY_TAG = {_str(tag)}")
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                cur.execute("ALTER SESSION UNSET QUERY_TAG")


def _first_int(row: Any) -> int:
    return int(row[0]) if row and row[0] is not None else 0


def _check_copy_result(cur: Any, store: StageStore, manifests: Sequence[Any]) -> int:
    """Every requested file reported as LOADED; returns the rows COPY says it loaded.

    Catches what a count per day cannot name: a file skipped by load history, or a stage whose
    root is not the store's (the reported file URL differs).
    """
    names = [d[0].lower() for d in cur.description]
    rows = [dict(zip(names, r, strict=False)) for r in cur.fetchall()]
    if "file" not in names:  # "Copy executed with 0 files processed."
        raise LoadError(f"COPY loaded no file; expected {len(manifests)} staged files")
    by_key: dict[str, dict[str, Any]] = {}
    for m in manifests:
        want_uri = store.uri(m.key)
        for r in rows:
            f = str(r.get("file") or "")
            exact = isinstance(store, S3StageStore) and f.startswith("s3://")
            if (f == want_uri) if exact else (f == m.key or f.endswith("/" + m.key)):
                by_key[m.key] = r
                break
    missing = [m.key for m in manifests if m.key not in by_key]
    if missing:
        raise LoadError(
            f"COPY did not report {len(missing)} of the staged files (first: {missing[0]}); "
            "is the stage's URL the stage root?"
        )
    total = 0
    for m in manifests:
        r = by_key[m.key]
        status = str(r.get("status") or "").upper()
        if status != "LOADED":  # LOAD_SKIPPED would mean load history won over FORCE
            raise LoadError(f"COPY reported {status or 'no status'} for {m.key}")
        total += _first_int([r.get("rows_loaded")])
    return total  # per-day counts are compared with the manifests by the caller


def _count_by_day(
    cur: Any, table: str, first: date, end_exclusive: date, loaded_at_sql: str | None = None
) -> dict[date, int]:
    """Rows per day of the range; with `loaded_at_sql`, only the rows that load inserted."""
    extra = "" if loaded_at_sql is None else f" AND {LOADED_AT} = {loaded_at_sql}"
    cur.execute(
        f"SELECT {PARTITION_COLUMN}, COUNT(*) FROM {table} "
        f"WHERE {PARTITION_COLUMN} >= {_date(first)} AND {PARTITION_COLUMN} < {_date(end_exclusive)}"
        f"{extra} GROUP BY 1"
    )
    return {r[0]: int(r[1]) for r in cur.fetchall()}
