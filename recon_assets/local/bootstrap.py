"""The embedded default, assembled: one emulator account and one seeded ledger that agree.

The demo, `recon dev` and the end-to-end tests all come through here, so the Stripe account the
pipeline pulls (the emulator) and the ledger it reconciles against (seeded from the same
generator, seed and clock) describe the same business.
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path

from recon_assets.child_processes import die_with_parent
from recon_assets.config import ReconSettings
from recon_assets.ledger.connection import connect
from recon_assets.ledger.migrations import apply_migrations
from recon_assets.local.ledger_seeder import BreakRates, SeedResult, seed_ledger_from_emulator
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
    """Migrate the ledger and (re)seed `first_day..last_day` from the emulator's charges."""
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


def bootstrap_local(settings: ReconSettings, first_day: date, last_day: date) -> SeedResult:
    """Start (or reuse) the embedded Postgres here and seed the ledger for `first_day..last_day`
    in a child process; the result carries no ground-truth rows (they are in the ledger's `seed`
    schema).

    The CLI runs the whole Dagster run in its own process next, and a process keeps much of what
    it took: seeding 548 days x 15 k charges here stood at ~670 MB (at gigabytes while it kept
    the rows), and 20 days x 10 k left the process at 123 MB against 41 MB with the child. The
    server starts here, not in the child, because the pgserver fallback stops a server with the
    process that started it. Spawned, not forked: by now the CLI has threads that are not
    Python's (jemalloc's, among others). The price is multiprocessing's resource tracker, a
    ~13 MB process that stays until the CLI ends."""
    dsn = ledger_dsn(settings)
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent
    ) as pool:
        seeding = pool.submit(
            seed_local_ledger,
            dsn,
            settings_emulator_config(settings),
            first_day,
            last_day,
            tolerance_days=settings.tolerance_days,
            keep_truth=False,
        )
        return seeding.result()
