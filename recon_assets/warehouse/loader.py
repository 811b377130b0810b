"""What every warehouse loader shares: the datasets it may load, the per-day manifests it loads
from, the result it returns and the errors it raises.

A load replaces a contiguous range of US-Eastern days in `raw.<dataset>` in one transaction. The
caller (a Dagster asset) compares staged and loaded rows per day in an ERROR-severity asset check,
so the result carries both, per day, and nothing else that could leak a secret: dataset, days,
counts, run ids and stage keys only. The loaders themselves refuse to commit when the counts
differ, so the check is a second line of defence, not the only one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from recon_assets.stage.manifest import (
    CheckFailure,
    DayManifest,
    KeyedManifest,
    read_check_failure,
    read_manifest,
)
from recon_assets.stage.store import StageStore

if TYPE_CHECKING:  # the warehouse process never imports pyarrow
    import pyarrow as pa

DATASETS: tuple[str, ...] = (
    "stripe_charges",
    "stripe_refunds",
    "stripe_balance_transactions",
    "stripe_payouts",
    "stripe_payout_transactions",
    "stripe_disputes",
    "ledger_entries",
)
"""The datasets a loader accepts, by name (their schemas: `stage.schemas.DATASET_SCHEMAS`). The
name is also the raw table's name, so it is validated against this list before it is ever put
into SQL."""

BOOKKEEPING: tuple[str, ...] = (
    "load_log",
    "stripe_charge_lookups",
    "stripe_event_reads",
    "stripe_lookup_scans",
    "ledger_dropped_refs",
)
"""The loaders' own tables in the raw schema (`stage.schemas.BOOKKEEPING_SCHEMAS`), created with
the data tables and written inside the same transactions, so what they record is exactly what
committed."""


@dataclass(frozen=True)
class Column:
    """A staged column as the loaders need it to create, widen and check a raw table.

    Plain values, not Arrow's: the warehouse process (warehouse/duckdb_process.py) loads and
    reads without importing pyarrow, which is 44 MB of a process's RSS (docs/benchmarks.md,
    "The warehouse process without pyarrow").
    """

    name: str
    kind: str
    """`int64`, `int32`, `bool`, `string`, `date`, `float64`, `timestamp` or `timestamp_tz`."""
    nullable: bool


Columns = tuple[Column, ...]


@dataclass(frozen=True)
class RawTables:
    """Every raw table the loaders create: the datasets and the bookkeeping tables, by name."""

    datasets: Mapping[str, Columns]
    bookkeeping: Mapping[str, Columns]


def columns_of(schema: pa.Schema) -> Columns:
    """A staged Arrow schema's columns, each type named by its kind (the schemas use only these)."""
    import pyarrow as pa

    kinds: list[tuple[Callable[[pa.DataType], bool], str]] = [
        (pa.types.is_int64, "int64"),
        (pa.types.is_int32, "int32"),
        (pa.types.is_boolean, "bool"),
        (pa.types.is_string, "string"),
        (pa.types.is_large_string, "string"),
        (pa.types.is_date32, "date"),
        (pa.types.is_float64, "float64"),
    ]
    out = []
    for f in schema:
        kind = next((k for test, k in kinds if test(f.type)), None)
        if kind is None and pa.types.is_timestamp(f.type):
            # an instant stays an instant: a UTC-adjusted Parquet timestamp is a zoned one
            kind = "timestamp_tz" if f.type.tz is not None else "timestamp"
        if kind is None:
            raise TypeError(f"no warehouse mapping for Arrow type {f.type} ({f.name})")
        out.append(Column(f.name, kind, f.nullable))
    return tuple(out)


_RAW_TABLES: RawTables | None = None


def raw_tables() -> RawTables:
    """The raw tables, read from the staged schemas once per process.

    The warehouse process is handed its parent's (`use_raw_tables`) instead, so it never imports
    pyarrow, which the schemas are written in.
    """
    global _RAW_TABLES
    if _RAW_TABLES is None:
        from recon_assets.stage.schemas import BOOKKEEPING_SCHEMAS, DATASET_SCHEMAS

        _RAW_TABLES = RawTables(
            {name: columns_of(DATASET_SCHEMAS[name]) for name in DATASETS},
            {name: columns_of(BOOKKEEPING_SCHEMAS[name]) for name in BOOKKEEPING},
        )
    return _RAW_TABLES


def use_raw_tables(tables: RawTables) -> None:
    """Take the raw tables as read by another process (the warehouse process's parent)."""
    global _RAW_TABLES
    _RAW_TABLES = tables


RAW_SCHEMA = "raw"
LOADED_AT = "_loaded_at"
PARTITION_COLUMN = "_partition_date"


def added_columns(have: Iterable[str], columns: Columns) -> list[Column]:
    """The staged columns an existing raw table lacks, which the loaders add before loading.

    Only nullable columns: a table created before a column joined the staged contract (the
    ledger's `journal_id` and `reversal_of`) gains it, NULL in the rows loaded before, and those
    rows get it when their day is loaded again. A missing NOT NULL column has no value for the
    old rows, so it stays an error for a reviewed migration (`column_drift`)."""
    present = {h.upper() for h in have}
    return [c for c in columns if c.nullable and c.name.upper() not in present]


def column_drift(have: Sequence[str], columns: Columns, *, loaded_at: bool = True) -> str | None:
    """Why a raw table's columns cannot take the staged files, or None when they are the
    staged schema's (plus `_loaded_at`), in any order: both loaders insert by column name, so
    only a missing or an extra column would silently load NULL or drop a value."""
    want = {n.upper() for n in [*(c.name for c in columns), *([LOADED_AT] if loaded_at else [])]}
    got = {h.upper() for h in have}
    if got == want:
        return None
    missing, extra = sorted(want - got), sorted(got - want)
    return f"missing {missing}, unexpected {extra}"


class LoadError(RuntimeError):
    """A load did not commit; the warehouse still holds the previous rows of the range.

    Every kind below pickles with its own arguments (`__reduce__`): the run's DuckDB work runs
    in a child process (warehouse/duckdb_process.py), which returns these errors as they are."""


class StagedCheckFailedError(LoadError):
    """The day's latest staging failed a blocking check: loading its previous version would
    pass off stale data as current, so the load is refused, naming the check."""

    def __init__(self, failure: CheckFailure) -> None:
        self.failure = failure
        super().__init__(
            f"refusing to load {failure.dataset} on {failure.day.isoformat()}: its latest "
            f"staging (run {failure.run_id}) failed the blocking check {failure.check!r} "
            f"({failure.detail}); fix the cause and re-materialize the day, nothing was loaded"
        )

    def __reduce__(self) -> tuple:
        return (type(self), (self.failure,), self.__dict__)


class MissingManifestError(LoadError):
    """A day of the range has no manifest: the upstream pull did not stage it.

    Skipping it would delete the day's rows and load nothing, so the whole load fails instead.
    """

    def __init__(self, dataset: str, days: Sequence[date]) -> None:
        self.dataset = dataset
        self.days = tuple(days)
        listed = ", ".join(d.isoformat() for d in self.days)
        super().__init__(
            f"no staged manifest for {dataset} on {listed}: the upstream pull did not stage "
            f"{'this day' if len(self.days) == 1 else 'these days'}; nothing was loaded"
        )

    def __reduce__(self) -> tuple:
        return (type(self), (self.dataset, self.days), self.__dict__)


class CountMismatchError(LoadError):
    """Rows counted in the table inside the transaction differ from the manifests' rows.

    Raised before COMMIT, so the mismatching rows never become visible.
    """

    def __init__(self, result: LoadResult) -> None:
        self.result = result
        bad = ", ".join(
            f"{d.day.isoformat()} staged={d.staged_rows} loaded={d.loaded_rows}"
            for d in result.mismatched_days
        )
        extra = (
            ""
            if result.inserted_rows == result.staged_total
            else f"; inserted {result.inserted_rows} rows for {result.staged_total} staged"
        )
        super().__init__(
            f"refusing to commit the load of {result.dataset}: staged != loaded ({bad or 'per day ok'}{extra}); "
            "the previous rows are kept"
        )

    def __reduce__(self) -> tuple:
        return (type(self), (self.result,), self.__dict__)


@dataclass(frozen=True)
class DayLoad:
    """One day of a load: the manifest's file and both counts the asset check compares."""

    day: date
    staged_rows: int
    loaded_rows: int
    run_id: str
    key: str

    @property
    def ok(self) -> bool:
        return self.staged_rows == self.loaded_rows


@dataclass(frozen=True)
class LoadResult:
    """The outcome of one committed (or refused) load of a day range of one dataset."""

    dataset: str
    table: str
    first: date
    end_exclusive: date
    days: tuple[DayLoad, ...]
    inserted_rows: int
    loaded_at: datetime
    deleted_rows: int = 0
    """Rows of the range the load replaced (what the previous load of these days left)."""

    @property
    def staged_by_day(self) -> dict[date, int]:
        return {d.day: d.staged_rows for d in self.days}

    @property
    def loaded_by_day(self) -> dict[date, int]:
        return {d.day: d.loaded_rows for d in self.days}

    @property
    def staged_total(self) -> int:
        return sum(d.staged_rows for d in self.days)

    @property
    def loaded_total(self) -> int:
        return sum(d.loaded_rows for d in self.days)

    @property
    def mismatched_days(self) -> tuple[DayLoad, ...]:
        return tuple(d for d in self.days if not d.ok)

    @property
    def ok(self) -> bool:
        """Every day loaded what its manifest staged, and nothing landed outside the range."""
        return not self.mismatched_days and self.inserted_rows == self.staged_total

    def to_metadata(self) -> dict[str, Any]:
        """Plain JSON-able values for Dagster metadata; no connection details by construction."""
        return {
            "dataset": self.dataset,
            "table": self.table,
            "first_day": self.first.isoformat(),
            "end_exclusive": self.end_exclusive.isoformat(),
            "rows_staged": self.staged_total,
            "rows_loaded": self.loaded_total,
            "rows_staged_by_day": {d.day.isoformat(): d.staged_rows for d in self.days},
            "rows_loaded_by_day": {d.day.isoformat(): d.loaded_rows for d in self.days},
            "run_ids_by_day": {d.day.isoformat(): d.run_id for d in self.days},
            "rows_replaced": self.deleted_rows,
            "loaded_at": self.loaded_at.isoformat(),
        }


@dataclass(frozen=True)
class LoadStep:
    """Where a load is, handed to the test hooks: the range and its manifests."""

    dataset: str
    table: str
    first: date
    end_exclusive: date
    manifests: tuple[DayManifest, ...]


@dataclass(frozen=True)
class LoadHooks:
    """Callbacks at the points of a load where a crash matters most.

    They exist so tests can fail a load between its DELETE and its insert, or after the insert
    and before COMMIT, through the loader's own API rather than by patching its internals. A hook
    that raises aborts the load like any other failure (rollback, previous rows kept).
    """

    after_delete: Callable[[LoadStep], None] | None = None
    before_commit: Callable[[LoadStep], None] | None = None


NO_HOOKS = LoadHooks()


class WarehouseLoader(Protocol):
    """The interface the Dagster assets call; DuckDB locally, Snowflake in production."""

    def load(
        self, store: StageStore, dataset: str, days: Sequence[date], *, run_id: str | None = None
    ) -> LoadResult: ...

    def load_keyed(
        self, store: StageStore, manifest: KeyedManifest, *, run_id: str | None = None
    ) -> KeyedLoadResult: ...

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]: ...


@dataclass(frozen=True)
class KeyedLoadResult:
    """A committed load by id: rows replaced (by id) and rows inserted, per day."""

    dataset: str
    kind: str
    replaced_rows: int
    inserted_rows: int
    rows_by_day: dict[date, int]
    lookups: int

    def to_metadata(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "kind": self.kind,
            "rows_replaced_by_id": self.replaced_rows,
            "rows_inserted_by_id": self.inserted_rows,
            "rows_by_day": {d.isoformat(): n for d, n in sorted(self.rows_by_day.items())},
            "lookups_recorded": self.lookups,
        }


def keyed_load_check(manifest: KeyedManifest, inserted: int) -> None:
    """Staged rows must all have landed, or the load is refused before COMMIT."""
    if inserted != manifest.rows:
        raise LoadError(
            f"refusing to commit the {manifest.kind} load of {manifest.dataset}: inserted "
            f"{inserted} rows for {manifest.rows} staged; the previous rows are kept"
        )


@dataclass(frozen=True)
class LoadPlan:
    """A validated range and the manifest of every day of it, read before touching the warehouse."""

    dataset: str
    columns: Columns
    first: date
    end_exclusive: date
    manifests: tuple[DayManifest, ...] = field(default_factory=tuple)

    @property
    def days(self) -> list[date]:
        return [m.day for m in self.manifests]


def dataset_columns(dataset: str) -> Columns:
    """The staged columns of a dataset the loaders accept; any other name is refused."""
    try:
        return raw_tables().datasets[dataset]
    except KeyError:
        raise ValueError(
            f"unknown dataset {dataset!r}; expected one of {sorted(DATASETS)}"
        ) from None


def day_range(days: Iterable[date]) -> tuple[date, date]:
    """`(first, end_exclusive)` of a non-empty, contiguous set of days, in any order.

    A gap would make the half-open DELETE remove days that are not reloaded, so it is refused.
    """
    ordered = sorted(days)
    if not ordered:
        raise ValueError("a load needs at least one day")
    if len(set(ordered)) != len(ordered):
        raise ValueError("duplicate days in the load range")
    first, last = ordered[0], ordered[-1]
    if (last - first).days + 1 != len(ordered):
        raise ValueError(
            f"days {first.isoformat()}..{last.isoformat()} are not contiguous; load each "
            "contiguous range separately"
        )
    return first, last + timedelta(days=1)


def plan_load(store: StageStore, dataset: str, days: Iterable[date]) -> LoadPlan:
    """Read every day's manifest; fail naming all days that have none, before any SQL runs."""
    columns = dataset_columns(dataset)
    first, end = day_range(days)
    manifests: list[DayManifest] = []
    missing: list[date] = []
    d = first
    while d < end:
        m = read_manifest(store, dataset, d)
        failure = read_check_failure(store, dataset, d)
        if failure is not None and (m is None or failure.written_at > m.written_at):
            raise StagedCheckFailedError(failure)
        if m is None:
            missing.append(d)
        else:
            if m.dataset != dataset or m.day != d:
                raise LoadError(
                    f"manifest for {dataset} on {d.isoformat()} names {m.dataset} on "
                    f"{m.day.isoformat()}; refusing to load it"
                )
            manifests.append(m)
        d += timedelta(days=1)
    if missing:
        raise MissingManifestError(dataset, missing)
    return LoadPlan(dataset, columns, first, end, tuple(manifests))


def replace_groups(manifests: Sequence[DayManifest]) -> list[tuple[list[date], datetime | None]]:
    """The days of a whole-day load grouped by their file's sync cutoff (the manifest's
    `written_at`, after every row of the file was read).

    A whole-day load replaces a day's rows synced at or before its file's cutoff, never rows
    synced after it: a charge looked up by id or a ledger entry changed since that file was
    staged is a newer version and stays (staging keeps the latest version of each id), so
    re-loading an older file of a day can never undo a newer change. A manifest without a
    readable `written_at` replaces the whole day (cutoff None).
    """
    groups: dict[datetime | None, list[date]] = {}
    for m in manifests:
        try:
            cutoff: datetime | None = datetime.fromisoformat(m.written_at)
            if cutoff.tzinfo is None:
                cutoff = None
        except (TypeError, ValueError):
            cutoff = None
        groups.setdefault(cutoff, []).append(m.day)
    return [(days, cutoff) for cutoff, days in groups.items()]


def build_result(
    plan: LoadPlan,
    table: str,
    loaded_counts: Mapping[date, int],
    inserted_rows: int,
    loaded_at: datetime,
    deleted_rows: int = 0,
) -> LoadResult:
    return LoadResult(
        dataset=plan.dataset,
        table=table,
        first=plan.first,
        end_exclusive=plan.end_exclusive,
        days=tuple(
            DayLoad(
                day=m.day,
                staged_rows=m.rows,
                loaded_rows=int(loaded_counts.get(m.day, 0)),
                run_id=m.run_id,
                key=m.key,
            )
            for m in plan.manifests
        ),
        inserted_rows=inserted_rows,
        loaded_at=loaded_at,
        deleted_rows=deleted_rows,
    )
