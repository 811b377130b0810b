"""The daily charges pull: Stripe → validated rows → staged Parquet (+ quarantine), streaming.

Each US-Eastern day is split into sub-windows of `created` that worker threads page through in
parallel (Stripe's cursors are sequential, so splitting the time range is the only way to fan
out), all sharing one rate limiter. Each worker checks the page it fetched (the client has
already decoded a clean page into validated charges; any other page is validated strictly here)
and turns it into columns; these flow through a bounded queue to a single
consumer that writes (and quarantines), so memory is bounded by the queue and one row group per
open day, whatever the day's volume. A page holding anything suspect goes whole to the consumer,
which judges it record by record from JSON, as the models define.

Fetching a page (the SDK and requests over HTTP, then the client's one parse of the
body) is most of a pull's CPU; see bench/bench_stripe_pull.py.

Every record fetched ends in exactly one place, the staged day file or the quarantine, and the
counts are checked (`fetched == staged + quarantined`) before anything is published. A failure
anywhere aborts both writers: the stage keeps no file of this run and the day manifests still
name the previous version.
"""

from __future__ import annotations

import gc
import json
import operator
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from recon_assets.stage.manifest import day_manifest, publish_manifest
from recon_assets.stage.result import DayCounts, StageResult
from recon_assets.stage.schemas import QUARANTINE_SCHEMA
from recon_assets.stage.store import StageStore
from recon_assets.stage.writer import DEFAULT_ROW_GROUP_ROWS, PartitionedParquetWriter
from recon_assets.stripe.client import ChargesClient, Page
from recon_assets.stripe.sources import CHARGES, StripeSource
from recon_assets.timewindows import Window, split_window

DATASET = CHARGES.dataset
QUARANTINE_PREFIX = CHARGES.quarantine_prefix
_GC_EVERY_PAGES = 100


class ConservationError(RuntimeError):
    """fetched != staged + quarantined: a bug, never published."""


PullResult = StageResult
"""The pull's result is the shared staging result."""


# A UTF-16 surrogate escape in a body: Python's json (the client's parse) accepts a lone one, pydantic's
# JSON parser does not. Such pages take the JSON path, so they are judged exactly as before.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def clean_page_rows(
    page: Page, window: Window, source: StripeSource = CHARGES
) -> list[dict[str, Any]] | None:
    """The page's records as validated dicts when every one is valid and inside `window`.

    For a page the client could not decode as clean charges (drift, or something suspect): one
    strict validation of the objects it parsed instead (no second JSON parse), so a page that
    only carries an undocumented field is still staged whole. None sends the page down the
    record-by-record path, which decides what is
    quarantined and why; strict python-mode validation accepts and rejects the same values as
    the JSON-mode models (a string "12.50", a float 12.0 or `true` for an int are all rejected).
    """
    if _SURROGATE_ESCAPE.search(page.content):
        return None
    try:
        rows: list[dict[str, Any]] = source.list_adapter.validate_python(page.items)
    except ValidationError:
        return None
    if rows:
        created = [r[source.window_field] for r in rows]
        if min(created) < window.start or max(created) >= window.end:
            return None
    return rows


@dataclass(frozen=True)
class PreparedPage:
    """What the writing thread needs from one fetched page.

    `columns` is set when the whole page is clean (the usual case); otherwise `page` is kept
    for the record-by-record path, which quarantines.
    """

    fetched: int
    drift_fields: Counter[str]
    columns: dict[str, list[Any]] | None = None
    staged: int = 0
    drift_statuses: Counter[str] | None = None
    page: Page | None = None


def prepare_page(page: Page, window: Window, source: StripeSource = CHARGES) -> PreparedPage:
    """Drift check, validation and columns of one page, in the thread that fetched it.

    Why there: right after the client's parse the page's records are still in the CPU cache,
    so touching them costs far less than in the writer thread several pages later, and only
    compact columns wait in the queue. Pure: shared state stays with the writer thread.
    A page the client decoded as clean charges (no drift, every record valid) needs only the
    window check; any other goes through the parsed items.
    """
    if page.records is not None:
        charges = page.records
        at = operator.attrgetter(source.window_field)
        if not charges or (
            min(map(at, charges)) >= window.start and max(map(at, charges)) < window.end
        ):
            columns = source.columns(charges)
            statuses = Counter(s for s in columns["status"] if s not in source.known_statuses)
            return PreparedPage(len(charges), Counter(), columns, len(charges), statuses)
    drift: Counter[str] = Counter()
    known = source.known_fields
    for item in page.items:
        if isinstance(item, dict) and not known.issuperset(item):
            drift.update(item.keys() - known)
    rows = clean_page_rows(page, window, source)
    if rows is None:
        return PreparedPage(len(page.items), drift, page=page)
    statuses = Counter(r["status"] for r in rows if r["status"] not in source.known_statuses)
    return PreparedPage(len(page.items), drift, source.dict_columns(rows), len(rows), statuses)


def describe_validation_error(exc: ValidationError) -> str:
    """Field paths and reasons only: input values stay in the raw payload column."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<record>'}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)
    )


class _Stop(Exception):
    pass


def iter_window(
    client: ChargesClient,
    window: Window,
    source: StripeSource = CHARGES,
    filters: Mapping[str, str] | None = None,
) -> Iterator[Page]:
    """Every page of one created-window (and `filters`: a payout's transactions), newest
    first, following `starting_after` cursors."""
    cursor: str | None = None
    while True:
        page = client.list_page(window, cursor, source, filters)
        if not page.has_more or page.last_id is None:
            yield page
            return
        cursor = page.last_id
        yield page
        del page  # not kept alive through the next request: a page is ~1.5 MB of objects


def pull_charges(
    client: ChargesClient,
    store: StageStore,
    days: Sequence[date],
    run_id: str,
    **options: Any,
) -> PullResult:
    """`pull` of the charges (`CHARGES`): the call every charges pull makes."""
    return pull(CHARGES, client, store, days, run_id, **options)


def pull(
    source: StripeSource,
    client: ChargesClient,
    store: StageStore,
    days: Sequence[date],
    run_id: str,
    *,
    windows_per_day: int,
    concurrency: int,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    publish: bool = True,
    parents: Mapping[date, Sequence[tuple[str, Window]]] | None = None,
) -> PullResult:
    """Pull every `source` record created on `days` (US-Eastern) and stage them, one file per
    day, into `source.dataset`.

    With `parents` (for a source with a `parent_filter`: a payout's transactions), each day's
    jobs are its parents instead of its time slices: every record listed with the filter
    naming the parent id within the parent's window, staged on that day with the parent's id
    in `parent_filter`'s column. A day with no parent still gets its (empty) file.

    With `publish=False` the day manifests are returned, not written: the caller publishes them
    (`publish_manifest`) once its blocking checks pass, so a day that fails one keeps its
    previous version as the current one."""
    started = time.perf_counter()
    days = sorted(set(days))
    windows_per_day = source.windows_per_day or windows_per_day
    jobs: list[tuple[date, Window, str | None]]
    if parents is None:
        jobs = [
            (d, w, None) for d in days for w in split_window(source.day_window(d), windows_per_day)
        ]
    else:
        if source.parent_filter is None:
            raise ValueError(f"{source.name} has no parent filter")
        jobs = [(d, w, pid) for d in days for pid, w in parents.get(d, ())]
    remaining = Counter(d for d, _, _ in jobs)
    per_day = {d: DayCounts() for d in days}
    drift_fields: Counter[str] = Counter()
    drift_statuses: Counter[str] = Counter()

    pages: queue.Queue[tuple[str, Any, Any]] = queue.Queue(maxsize=2 * concurrency + 2)
    stop = threading.Event()

    def put(item: tuple[str, Any, Any]) -> None:
        while True:
            if stop.is_set():
                raise _Stop
            try:
                pages.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def fetch_window(day: date, window: Window, parent: str | None) -> None:
        filters = None if parent is None else {str(source.parent_filter): parent}
        try:
            for page in iter_window(client, window, source, filters):
                synced = clock()  # when this version was read, before any processing
                prepared = prepare_page(page, window, source)
                del page  # freed here, while still in cache, not after the next request
                put(("page", (day, window, parent), (prepared, synced)))  # _Stop once stopped
            put(("done", day, None))
        except _Stop:
            return
        except BaseException as exc:  # handed to the consumer, which fails the run
            try:
                put(("error", exc, None))
            except _Stop:
                return

    writer = PartitionedParquetWriter(
        store, source.dataset, source.schema, run_id, row_group_rows=row_group_rows
    )
    quarantine = PartitionedParquetWriter(
        store, source.dataset, QUARANTINE_SCHEMA, run_id, prefix=source.quarantine_prefix
    )

    def to_quarantine(day: date, item: Any, error: str, synced: datetime) -> None:
        rid = item.get("id") if isinstance(item, dict) else None
        quarantine.append_row(
            day,
            {
                "source": source.dataset,
                "record_id": rid if isinstance(rid, str) else None,
                "raw_payload": json.dumps(item),
                "error": error,
            },
            synced,
        )
        per_day[day].quarantined += 1

    def with_parent(columns: dict[str, list[Any]], n: int, parent: str | None) -> dict:
        if parent is not None:
            columns[str(source.parent_filter)] = [parent] * n
        return columns

    def consume(
        day: date, window: Window, parent: str | None, p: PreparedPage, synced: datetime
    ) -> None:
        counts = per_day[day]
        counts.fetched += p.fetched
        drift_fields.update(p.drift_fields)
        if p.columns is not None:
            if p.drift_statuses:
                drift_statuses.update(p.drift_statuses)
            writer.append_columns(day, with_parent(p.columns, p.staged, parent), p.staged, synced)
            counts.staged += p.staged
            return
        assert p.page is not None
        rows = slow_rows(day, window, p.page, synced)
        for r in rows:
            if r["status"] not in source.known_statuses:
                drift_statuses[r["status"]] += 1
        columns = with_parent(source.dict_columns(rows), len(rows), parent)
        writer.append_columns(day, columns, len(rows), synced)
        counts.staged += len(rows)

    def slow_rows(day: date, window: Window, page: Page, synced: datetime) -> list[dict[str, Any]]:
        """Record by record, from JSON: quarantines what is invalid or outside the window."""
        try:
            charges: list[Any] = list(source.page_model.model_validate_json(page.content).data)  # type: ignore[attr-defined]
        except ValidationError:
            charges = []
            for item in page.items:  # only pages that hold a bad record
                try:
                    charges.append(source.model.model_validate_json(json.dumps(item)))
                except ValidationError as exc:
                    to_quarantine(day, item, describe_validation_error(exc), synced)
                    charges.append(None)
        rows = []
        for c in charges:
            if c is None:
                continue
            at = getattr(c, source.window_field)
            if not window.contains(at):
                to_quarantine(
                    day,
                    c.model_dump(),
                    f"{source.window_field} {at} outside the requested window "
                    f"[{window.start}, {window.end})",
                    synced,
                )
                continue
            rows.append(c.model_dump())
        return rows

    gc_was_enabled = gc.isenabled()
    gc.disable()  # validated rows are short-lived; full GC scans of them cost ~30 % here
    executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="stripe-pull")
    try:
        for d, w, parent in jobs:
            executor.submit(fetch_window, d, w, parent)
        for d in days:
            if not remaining[d]:  # no parent that day: still a staged (empty) day
                writer.begin_day(d)
                writer.close_day(d)
        open_jobs, n_pages = len(jobs), 0
        while open_jobs:
            kind, a, b = pages.get()
            if kind == "error":
                raise a
            if kind == "done":
                open_jobs -= 1
                remaining[a] -= 1
                if remaining[a] == 0:
                    writer.begin_day(a)  # an empty day still gets its (empty) file
                    writer.close_day(a)
                continue
            (day, window, parent), (prepared, synced) = a, b
            consume(day, window, parent, prepared, synced)
            n_pages += 1
            if n_pages % _GC_EVERY_PAGES == 0:
                gc.collect(0)
        for d, c in per_day.items():
            if c.fetched != c.staged + c.quarantined:
                raise ConservationError(
                    f"{d}: fetched {c.fetched} != staged {c.staged} + quarantined {c.quarantined}"
                )
        files = writer.commit()
        quarantine_files = quarantine.commit()
    except BaseException:
        stop.set()
        writer.abort()
        quarantine.abort()
        raise
    finally:
        stop.set()
        executor.shutdown(wait=True, cancel_futures=True)
        if gc_was_enabled:
            gc.enable()

    written_at = clock().isoformat()
    manifests = [day_manifest(f, run_id, per_day[f.day].quarantined, written_at) for f in files]
    if publish:
        manifests = [publish_manifest(store, m) for m in manifests]
    return StageResult(
        run_id=run_id,
        days=days,
        per_day=per_day,
        files=files,
        quarantine_files=quarantine_files,
        counters=client.counters.as_dict(),
        seconds=time.perf_counter() - started,
        drift_fields=drift_fields,
        drift_statuses=drift_statuses,
        manifests=manifests,
    )
