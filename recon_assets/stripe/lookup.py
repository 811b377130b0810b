"""Look up by id the charges (and refunds) that ledger entries name and the warehouse does not
hold.

A ledger `charge` entry whose charge is not in the warehouse is not yet a break: its charge may
sit on a day that was not loaded (a charge created the evening before the first loaded day), or
its day's pull may have quarantined it. `GET /v1/charges/{id}` (same client, shared rate limiter
and retries as the pull) settles it:
- 404: `not_found`, the only proof of `missing_in_stripe`;
- found and valid: staged like any pulled charge (on its own created day), loaded by id;
- found but failing validation: quarantined, `quarantined` (`unreadable_in_stripe`).

Bounded: more ids than `max_lookups` is a clear failure naming what to do (backfill the Stripe
days they belong to), never a million calls. A ledger `refund` entry naming a refund the
warehouse does not hold goes the same way, through `GET /v1/refunds/{id}` (`source=REFUNDS`):
the answers share `raw.stripe_charge_lookups` (ids say what they are: `ch_`, `re_`).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from recon_assets.stage.manifest import (
    KeyedFile,
    KeyedManifest,
    LookupScan,
    write_keyed_manifest,
)
from recon_assets.stage.schemas import QUARANTINE_SCHEMA
from recon_assets.stage.store import StageStore
from recon_assets.stage.writer import PartitionedParquetWriter
from recon_assets.stripe.client import ChargesClient
from recon_assets.stripe.pull import describe_validation_error
from recon_assets.stripe.sources import CHARGES, StripeSource

LOOKUP_KIND = "lookup"
_STRIPE_ID = re.compile(r"^[A-Za-z0-9_]{1,255}$")


class LookupLimitError(RuntimeError):
    """More unknown ids than the configured bound: a gap to backfill, not calls to make."""


@dataclass(frozen=True)
class LookupResult:
    requested: int
    found: int
    not_found: int
    quarantined: int
    manifest: KeyedManifest
    counters: dict[str, int]
    seconds: float
    found_by_day: dict[date, int]


def lookup_charges(
    client: ChargesClient,
    store: StageStore,
    charge_ids: Sequence[str],
    run_id: str,
    *,
    max_lookups: int,
    concurrency: int,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    source: StripeSource = CHARGES,
) -> LookupResult:
    """Look up each id once; stage what Stripe returns; write the run's lookup manifest."""
    started = time.perf_counter()
    ids = sorted(set(charge_ids))
    what = source.name
    if len(ids) > max_lookups:
        raise LookupLimitError(
            f"{len(ids)} ledger {what[:-1]} entries name {what} the warehouse does not hold, "
            f"more than the look-up bound of {max_lookups} (RECON_STRIPE_MAX_LOOKUPS); first: "
            f"{', '.join(ids[:5])}. Load the Stripe days those {what} belong to (a backfill "
            f"of {source.dataset}) or raise the bound; nothing was looked up"
        )
    plain = [i for i in ids if _STRIPE_ID.match(i)]
    outcomes: dict[str, tuple[str, str | None]] = {
        i: ("not_found", "not a Stripe object id; not requested") for i in ids if i not in plain
    }
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        fetched = list(pool.map(lambda i: client.retrieve(i, source), plain))
    staged = stage_charges_by_id(
        store, run_id, LOOKUP_KIND, list(zip(plain, fetched, strict=True)), clock(), source
    )
    outcomes.update(staged.outcomes)
    manifest = KeyedManifest(
        source.dataset,
        run_id,
        LOOKUP_KIND,
        staged.files,
        lookups=tuple((cid, r, d) for cid, (r, d) in sorted(outcomes.items())),
        written_at=staged.synced.isoformat(),
    )
    write_keyed_manifest(store, manifest)
    results = [r for r, _ in outcomes.values()]
    return LookupResult(
        requested=len(plain),
        found=results.count("found"),
        not_found=results.count("not_found"),
        quarantined=results.count("quarantined"),
        manifest=manifest,
        counters=client.counters.as_dict(),
        seconds=time.perf_counter() - started,
        found_by_day=staged.found_by_day,
    )


@dataclass(frozen=True)
class StagedById:
    files: tuple[KeyedFile, ...]
    outcomes: dict[str, tuple[str, str | None]]
    """Per id: ("found" | "not_found" | "quarantined", detail); empty when the stage was asked
    to count only (`ByIdStage(keep_outcomes=False)`)."""
    found_by_day: dict[date, int]
    synced: datetime
    counts: Counter[str] = field(default_factory=Counter)
    """How many ids ended each way."""


BY_ID_ROW_GROUP_ROWS = 1_000
"""Rows a by-id stage buffers per day before writing them: its objects span every day the
events' 30 days reach (a day's pull spans one), so the buffers are this times the open days."""


class ByIdStage:
    """Objects fetched one by one (a look-up, an event's object), staged as they come: each
    valid one on its own day (`source.day_of` its window field: a charge's created day, a
    payout's arrival date) under `<dataset>/_<kind>_files/`, each invalid one in the
    quarantine, None (Stripe's 404) recorded as not found. Fed in batches, so a read of any size
    holds one batch of objects, not all of them; nothing is published unless all of it is."""

    def __init__(
        self,
        store: StageStore,
        run_id: str,
        kind: str,
        synced: datetime,
        source: StripeSource = CHARGES,
        *,
        keep_outcomes: bool = True,
    ) -> None:
        dataset = source.dataset
        self.source, self.synced, self.keep_outcomes = source, synced, keep_outcomes
        self.writer = PartitionedParquetWriter(
            store, dataset, source.schema, run_id, prefix=f"{dataset}/_{kind}_files",
            row_group_rows=BY_ID_ROW_GROUP_ROWS,
        )  # fmt: skip
        self.quarantine = PartitionedParquetWriter(
            store, dataset, QUARANTINE_SCHEMA, run_id,
            prefix=f"{source.quarantine_prefix}/_{kind}", row_group_rows=BY_ID_ROW_GROUP_ROWS,
        )  # fmt: skip
        self.outcomes: dict[str, tuple[str, str | None]] = {}
        self.counts: Counter[str] = Counter()
        self.found_by_day: dict[date, int] = {}

    def _outcome(self, cid: str, result: str, detail: str | None) -> None:
        self.counts[result] += 1
        if self.keep_outcomes:
            self.outcomes[cid] = (result, detail)

    def add(self, objects: Iterable[tuple[str, Any]]) -> None:
        source, synced = self.source, self.synced
        for cid, obj in objects:
            if obj is None:
                self._outcome(cid, "not_found", f"HTTP 404 from GET {source.path}/{{id}}")
                continue
            try:
                charge = source.model.model_validate_json(json.dumps(obj))
            except ValidationError as exc:
                reason = describe_validation_error(exc)
                at = obj.get(source.window_field) if isinstance(obj, dict) else None
                day = source.day_of(at) if isinstance(at, int) else synced.date()
                self.quarantine.append_row(
                    day,
                    {"source": source.dataset, "record_id": cid, "raw_payload": json.dumps(obj),
                     "error": reason},
                    synced,
                )  # fmt: skip
                self._outcome(cid, "quarantined", reason[:500])
                continue
            if charge.id != cid:  # type: ignore[attr-defined]
                self._outcome(cid, "not_found", f"Stripe answered with another id ({charge.id})")  # type: ignore[attr-defined]
                continue
            day = source.day_of(getattr(charge, source.window_field))
            self.writer.append_columns(day, source.dict_columns([charge.model_dump()]), 1, synced)
            self.found_by_day[day] = self.found_by_day.get(day, 0) + 1
            self._outcome(cid, "found", None)

    def commit(self) -> StagedById:
        try:
            files = self.writer.commit()
            self.quarantine.commit()
        except BaseException:
            self.abort()
            raise
        return StagedById(
            tuple(KeyedFile(f.day, f.key, f.rows) for f in files),
            self.outcomes,
            self.found_by_day,
            self.synced,
            self.counts,
        )

    def abort(self) -> None:
        self.writer.abort()
        self.quarantine.abort()


def stage_charges_by_id(
    store: StageStore,
    run_id: str,
    kind: str,
    objects: Sequence[tuple[str, Any]],
    synced: datetime,
    source: StripeSource = CHARGES,
) -> StagedById:
    """Stage a whole list of objects fetched one by one at once (`ByIdStage`)."""
    stage = ByIdStage(store, run_id, kind, synced, source)
    try:
        stage.add(objects)
    except BaseException:
        stage.abort()
        raise
    return stage.commit()


LOOKUP_SCAN_MARGIN = timedelta(hours=1)
"""How far before the last scan's instant a run reads again: `_loaded_at` is the loader's wall
clock, so a clock stepped back by less than this after a scan still finds what it loaded."""

LOOKUP_FULL_SCAN_EVERY = timedelta(days=7)
"""How often a run reads every row even so. A held object stays held through loads by id, but
a day's re-load replaces the day with what the new pull staged: an object quarantined on its
re-pull leaves the warehouse, and the entries naming it were loaded long before. The full read
finds those (and looks them up again, so they get their status) within a week."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

LOOKUP_SCAN_MARK_SQL = "select max(loaded_at) from raw.load_log having count(*) > 0"
"""The instant a look-up run reads through, taken before its first query: every load up to it
has committed (loads are one at a time, the writer pool)."""

LOOKUP_SCANS_SQL = "select scanned_through, read_from from raw.stripe_lookup_scans"
"""Every recorded scan: one row per look-up run that ended well, a few hundred a year."""


def next_lookup_scan(
    scanned_through: datetime, scans: Sequence[tuple[datetime, datetime]]
) -> LookupScan:
    """What this run reads: rows loaded after `read_from`, through `scanned_through`.

    A run that ended well left every id named by a row it read held or recorded, so a later
    run needs only the rows loaded since its `scanned_through` (less `LOOKUP_SCAN_MARGIN`).
    Everything (`read_from` = `EPOCH`) without a recorded scan (a new warehouse, an upgrade, or
    after deleting `raw.stripe_lookup_scans` to force it) or when the last full read is
    `LOOKUP_FULL_SCAN_EVERY` old. At 540 days the whole ledger took 0.6 s a run, the rows of
    a nightly 0.07 s (docs/benchmarks.md)."""
    full = [through for through, since in scans if since <= EPOCH]
    if not full or scanned_through - max(full) >= LOOKUP_FULL_SCAN_EVERY:
        return LookupScan(EPOCH, scanned_through)
    return LookupScan(max(t for t, _ in scans) - LOOKUP_SCAN_MARGIN, scanned_through)


def unknown_refs_sql(entry_type: str, held_table: str, id_prefix: str) -> str:
    """Ids to look up: named by a ledger entry of `entry_type` (or by a `fee` entry, whose
    object is the one Stripe took the fee on, when the id starts with `id_prefix`), or the
    source of a balance transaction (a charge captured, or a refund failed, on a later day
    than its own, which was never loaded: every movement of the balance needs its item), not
    in `raw.<held_table>`, never answered 404 or unreadable. Only rows loaded after the one
    parameter (given twice: `LookupScan.read_from`) are read for names."""
    return f"""
select distinct n.ref
from (
    select e.external_ref as ref
    from raw.ledger_entries as e
    where e._loaded_at > ?
      and (lower(e.entry_type) = '{entry_type}'
           or (lower(e.entry_type) = 'fee' and e.external_ref like '{id_prefix}%'))
      and e.external_ref is not null
    union
    select x.source as ref
    from raw.stripe_balance_transactions as x
    where x._loaded_at > ? and x.source like '{id_prefix}%'
) as n
where not exists (select 1 from raw.{held_table} as c where c.id = n.ref)
  and not exists (
      select 1 from raw.stripe_charge_lookups as l
      where l.charge_id = n.ref and l.result <> 'found'
  )
order by 1
"""


UNKNOWN_FEE_TXNS_SQL = """
with unheld as (
    select c.id, c.balance_transaction, c._loaded_at
    from raw.stripe_charges as c
    where c.status = 'succeeded' and c.captured
      and c.balance_transaction is not null
      and not exists (
          select 1 from raw.stripe_balance_transactions as x where x.id = c.balance_transaction
      )
)
select distinct u.balance_transaction
from unheld as u
where exists (
      select 1 from raw.ledger_entries as e
      where e.external_ref = u.id
        and lower(e.entry_type) = 'fee'
        and (e._loaded_at > ? or u._loaded_at > ?)
  )
  and not exists (
      select 1 from raw.stripe_charge_lookups as l
      where l.charge_id = u.balance_transaction and l.result <> 'found'
  )
order by 1
"""
"""Balance transactions a ledger fee entry's charge names that the warehouse does not hold
(its capture fell on a day never loaded): looked up by id, so the fee is an item (on its own
day), never an orphan entry that only a gap in the loads made. A new pair is a fee entry loaded
since the scan, or a charge loaded since (found by a look-up or a late load): the parameter
twice, `LookupScan.read_from`. The charges whose transaction is not held come first, so only
those few meet the fee entries, whatever the scope. Joining every fee entry to its charge first
(the pairs) is 2.5 M rows at 540 days loaded: more than DuckDB's 256MB on a full read, and more
than the run's 64MB when a scoped read covers much (a nightly after a long backfill or the
weekly deep re-statement; a 540-day nightly failed so). This way: 0.37 s for a full read at
540 days, within 64MB at any scope; the pairs took 0.17 s for a night's rows. The test keeps
the pairs as its oracle (tests/test_stripe_lookup.py)."""


UNKNOWN_REFS_SQL = unknown_refs_sql("charge", "stripe_charges", "ch_")
"""Charge ids a ledger charge entry names that the warehouse does not hold."""
UNKNOWN_REFUND_REFS_SQL = unknown_refs_sql("refund", "stripe_refunds", "re_")
"""Refund ids a ledger refund entry names that the warehouse does not hold."""
UNKNOWN_DISPUTE_REFS_SQL = unknown_refs_sql("dispute", "stripe_disputes", "dp_")
"""Dispute ids a ledger dispute or fee entry or a loaded dispute transaction names that the
warehouse does not hold (a dispute opened on a day never loaded)."""
UNKNOWN_PAYOUT_REFS_SQL = unknown_refs_sql("payout", "stripe_payouts", "po_")
"""Payout ids a ledger payout entry or a loaded payout transaction names that the warehouse
does not hold (a payout created in the range arrives after it)."""
