"""The embedded default, assembled: one emulator account and one seeded ledger that agree.

The demo, `recon dev` and the end-to-end tests all come through here, so the Stripe account the
pipeline pulls (the emulator) and the ledger it reconciles against (seeded from the same
generator, seed and clock) describe the same business.

recon writes to one ledger only: the embedded server under `RECON_HOME` (or a database named
explicitly with `recon seed --dsn`). A `RECON_LEDGER_DSN` is someone's book of record: it is
read in read-only sessions and never migrated or seeded.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from recon_assets.child_processes import die_with_parent
from recon_assets.config import ReconSettings
from recon_assets.ledger.connection import check_readable_ledger, connect, describe_dsn
from recon_assets.ledger.migrations import apply_migrations
from recon_assets.local.ledger_seeder import (
    BreakRates,
    GrowResult,
    SeedResult,
    account_balance,
    account_disputes,
    account_payouts,
    account_refunds,
    grow_ledger,
    seed_ledger_from_emulator,
)
from recon_assets.local.postgres import ledger_dsn
from recon_assets.local.stripe_emulator import EmulatorConfig
from recon_assets.local.stripe_emulator.config import ChargeChange


def emulator_config(
    seed: int,
    charges_per_day: int,
    start_date: date,
    api_key: str,
    now: int | None = None,
    today: date | None = None,
    changes_file: Path | None = None,
) -> EmulatorConfig:
    """The local account: from the first partition to the day after tomorrow (so every complete
    day the schedule can ask for exists), on the wall clock unless `now` freezes it, with the
    hand-made late changes of `changes_file` (a JSON list of `ChargeChange` fields)."""
    today = today or date.today()
    changes = (
        tuple(ChargeChange.from_json(d) for d in json.loads(changes_file.read_text()))
        if changes_file
        else ()
    )
    return EmulatorConfig(
        seed=seed,
        charges_per_day=charges_per_day,
        start_date=start_date,
        end_date=max(today, start_date) + timedelta(days=2),
        api_key=api_key,
        now=now,
        changes=changes,
    )


def settings_emulator_config(settings: ReconSettings) -> EmulatorConfig:
    """The very account the `stripe` resource's emulator serves for these settings."""
    return emulator_config(
        settings.emulator_seed,
        settings.emulator_charges_per_day,
        settings.start_date,
        settings.stripe_api_key or "",
        now=settings.emulator_now,
        changes_file=settings.emulator_changes,
    )


def seed_local_ledger(
    dsn: str,
    emulator: EmulatorConfig,
    first_day: date,
    last_day: date,
    *,
    tolerance_days: int = 3,
    rates: BreakRates | None = None,
    as_of: datetime | None = None,
    keep_truth: bool = True,
) -> SeedResult:
    """Migrate the ledger and (re)seed `first_day..last_day` from the emulator's charges, with
    their ground truth: for tests and benchmarks that build a ledger before any run. Commands
    grow a ledger instead (`prepare_local_ledger`), never re-seed it."""
    with connect(dsn, autocommit=True) as conn:
        apply_migrations(conn)
        return seed_ledger_from_emulator(
            conn,
            emulator,
            first_day,
            last_day,
            rates=rates,
            tolerance_days=tolerance_days,
            as_of=as_of,
            keep_truth=keep_truth,
        )


def emulator_account(settings: ReconSettings) -> dict[str, Any]:
    """What decides the bookings the embedded ledger grows: the emulator account (seed and
    volume; hand-made changes, by their content) and T. Not the first partition, which moves
    every month locally and changes no charge of a day."""
    changes = settings.emulator_changes
    return {
        "seed": settings.emulator_seed,
        "charges_per_day": settings.emulator_charges_per_day,
        "tolerance_days": settings.tolerance_days,
        "changes": hashlib.sha256(changes.read_bytes()).hexdigest() if changes else None,
    }


def emulator_clock(settings: ReconSettings) -> datetime:
    """The emulator's clock now: `RECON_EMULATOR_NOW` when frozen, else the wall clock."""
    now = settings.emulator_now if settings.emulator_now is not None else time.time()
    return datetime.fromtimestamp(now, UTC)


def grow_local_ledger(
    dsn: str,
    emulator: EmulatorConfig,
    first_day: date,
    last_day: date,
    clock: datetime,
    account: dict[str, Any],
    tolerance_days: int = 3,
) -> GrowResult:
    """Grow the ledger at `dsn` for charge days `first_day..last_day` up to `clock`
    (`grow_ledger`) from the emulator account."""
    from recon_assets.local.stripe_emulator import ChargeGenerator  # only local mode needs it

    generator = ChargeGenerator(emulator)

    with connect(dsn, autocommit=True) as conn:
        return grow_ledger(
            conn,
            generator.iter_charges,
            first_day,
            last_day,
            clock,
            seed=emulator.seed,
            account=account,
            tolerance_days=tolerance_days,
            refunds=account_refunds(generator),
            balance=account_balance(generator),
            payouts=account_payouts(generator),
            disputes=account_disputes(generator),
        )


def grow_in_child(settings: ReconSettings, dsn: str, first_day: date, last_day: date) -> GrowResult:
    """`grow_local_ledger` in a spawned child process.

    The CLI runs the whole Dagster run in its own process next, and a process keeps much of what
    it took: seeding 548 days x 15 k charges here stood at ~670 MB, and 20 days x 10 k left the
    process at 123 MB against 41 MB with the child. Spawned, not forked: by now the CLI has
    threads that are not Python's (jemalloc's, among others). The price is multiprocessing's
    resource tracker, a ~13 MB process that stays until the CLI ends."""
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent
    ) as pool:
        return pool.submit(
            grow_local_ledger,
            dsn,
            settings_emulator_config(settings),
            first_day,
            last_day,
            emulator_clock(settings),
            emulator_account(settings),
            settings.tolerance_days,
        ).result()


@dataclass(frozen=True)
class LocalLedger:
    """The ledger a local command reads, and what it did to it (nothing, unless recon owns it)."""

    where: str
    """`user@host:port/db`: no secret."""
    grown: GrowResult | None
    """None: a ledger recon does not own (`RECON_LEDGER_DSN`), only ever read."""

    def describe(self) -> str:
        if self.grown is None:
            return f"{self.where}, read only (recon seeds only its embedded server)"
        g = self.grown
        return (
            f"embedded Postgres, {g.entries_written:,} entries written on {g.days_written} "
            f"day{'' if g.days_written == 1 else 's'} "
            f"({g.entries_total:,} in the range)"
        )


def prepare_local_ledger(settings: ReconSettings, first_day: date, last_day: date) -> LocalLedger:
    """The ledger of a local command, ready to read for charge days `first_day..last_day`.

    With `RECON_LEDGER_DSN` it is someone's ledger: checked readable, never migrated or
    written. Otherwise the embedded server under `RECON_HOME` is started (or reused) and its
    ledger grown to the emulator's clock for those days (`grow_ledger`: days already written
    are never seeded again)."""
    if settings.ledger_dsn:
        check_readable_ledger(settings.ledger_dsn)
        return LocalLedger(describe_dsn(settings.ledger_dsn), None)
    dsn = ledger_dsn(settings)
    grown = grow_in_child(settings, dsn, first_day, last_day)
    return LocalLedger(describe_dsn(dsn), grown)
