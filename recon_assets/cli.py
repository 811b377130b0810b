"""`recon`: the project's command line.

- `recon demo`: the whole pipeline on the embedded default for the last few complete days
  (emulated Stripe, embedded Postgres ledger seeded to agree with it, local stage, DuckDB),
  then the ops report.
- `recon dev`: the same bootstrap, then `dagster dev -w workspace.yaml` with a project-local
  DAGSTER_HOME, for the UI, backfills and the schedule.
- `recon prepare`: the dbt manifest (never parsed at import).
- `recon stop`: stop the embedded Postgres (left running between commands for reuse).
- `recon emulator ...`: serve the Stripe emulator on its own.

Every command reads its settings from the environment when it runs, like the code location.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from recon_assets.config import ReconSettings
from recon_assets.timewindows import BUSINESS_TZ


def last_complete_days(n: int, today: date | None = None) -> list[date]:
    """The `n` most recent complete US-Eastern days, oldest first."""
    today = today or datetime.now(BUSINESS_TZ).date()
    return [today - timedelta(days=i) for i in range(n, 0, -1)]


def materialize_range(
    defs: Any, first: date, last: date, *, instance: Any = None, selection: str | None = None
) -> Any:
    """Materialize the graph (or `selection`) for partitions [first, last] in ONE run."""
    import dagster as dg

    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    return dg.materialize(
        assets,
        selection=selection,
        resources=defs.resources,
        instance=instance or dg.DagsterInstance.ephemeral(),
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
        raise_on_error=True,
    )


def dagster_home(settings: ReconSettings) -> Path:
    """Dagster's instance for local runs lives under RECON_HOME (git-ignored), never committed."""
    home = settings.home / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    return home


def cmd_demo(args: argparse.Namespace) -> int:
    import dagster as dg

    from recon_assets.definitions import build_definitions
    from recon_assets.local.bootstrap import bootstrap_local

    settings = ReconSettings.from_env()
    if not settings.is_local:
        raise SystemExit(
            "recon demo runs on the embedded default: unset RECON_ENV or set it to local"
        )
    from recon_assets.definitions import dbt_target
    from recon_assets.defs.dbt_assets import ensure_manifest

    days = last_complete_days(args.days)
    first, last = days[0], days[-1]
    print(f"recon demo: RECON_HOME={settings.home}")
    ensure_manifest(dbt_target(settings))  # a fresh clone has none; a pull may have changed dbt
    print(f"1. ledger: embedded Postgres, seeded for {first}..{last} from the emulator's charges")
    seed = bootstrap_local(settings, first, last)
    print(f"   {len(seed.ground_truth)} expected reconciliation items written")
    print(f"2. pipeline: Stripe emulator -> stage -> DuckDB -> dbt -> report, {first}..{last}")
    os.environ.setdefault("DAGSTER_HOME", str(dagster_home(settings)))
    result = materialize_range(
        build_definitions(settings), first, last, instance=dg.DagsterInstance.get()
    )
    meta: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        meta[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    sc = meta["stripe_charges"]
    print(
        f"   stripe_charges: {sc['rows']} staged, {sc['quarantined']} quarantined, "
        f"{sc['requests']} requests, {sc['rows_per_s']} charges/s"
    )
    print(f"   ledger_entries: {meta['ledger_entries']['rows']} staged")
    for key in ("raw/stripe_charges", "raw/ledger_entries"):
        print(f"   {key}: {meta[key]['rows']} rows loaded into {settings.duckdb_path}")
    ev = meta["raw/stripe_charge_events"]
    print(
        f"   stripe events: {ev['events_read']} read, {ev['charges_repulled']} charges re-pulled "
        f"({ev['retrieved_by_id']} by id), {ev['days_reopened']} earlier days reopened"
    )
    lk = meta["raw/stripe_charge_lookups"]
    print(
        f"   stripe look-ups by id: {lk['lookups']} ({lk['found']} found, "
        f"{lk['not_found_404']} not found, {lk['quarantined']} unreadable)"
    )
    rep = meta["reconciliation_report"]
    print("3. report (what finance ops opens at 9 AM):")
    for day, counts in rep["status_counts_by_day"].items():
        status, why = rep["day_status"][day]
        print(f"   {day}: {rep['breaks_by_day'][day]} breaks, {status}  {counts}")
        if why:
            print(f"      {why}")
    for day, files in rep["report_files"].items():
        print(f"   {day}: {files[0]}")
    print(
        f"   query it: duckdb {settings.duckdb_path} "
        '"select * from marts.rpt_daily_reconciliation order by 1, 2, 3"'
    )
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from recon_assets.definitions import dbt_target
    from recon_assets.defs.dbt_assets import ensure_manifest
    from recon_assets.local.bootstrap import bootstrap_local

    settings = ReconSettings.from_env()
    days = last_complete_days(args.days)
    ensure_manifest(dbt_target(settings))
    if settings.is_local:
        bootstrap_local(settings, days[0], days[-1])
    env = dict(os.environ, DAGSTER_HOME=str(dagster_home(settings)))
    dagster = str(Path(sys.executable).with_name("dagster"))
    cmd = [dagster, "dev", "-w", "workspace.yaml", *args.rest]
    os.execve(dagster, cmd, env)
    return 0  # not reached


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop the embedded Postgres the demo and `recon dev` leave running for reuse."""
    from recon_assets.local.postgres import EmbeddedPostgres

    settings = ReconSettings.from_env()
    server = EmbeddedPostgres(settings.home / "postgres" / "data")
    if server.is_running():
        server.stop()
        print("embedded Postgres stopped")
    else:
        print("embedded Postgres is not running")
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    from recon_assets.local.stripe_emulator.__main__ import main as emulator_main

    return int(emulator_main(args.rest) or 0)


def cmd_prepare(args: argparse.Namespace) -> int:
    """Prepare what Dagster needs before loading: the dbt manifest (never parsed at import)."""
    from recon_assets.defs.dbt_assets import prepare_manifest

    for target in args.targets:
        print(f"dbt manifest ({target}): {prepare_manifest(target=target)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recon", description="recon: Stripe vs ledger")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("demo", help="run the whole pipeline on the embedded default")
    p.add_argument("--days", type=int, default=3, help="how many recent complete days")
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("dev", help="bootstrap the embedded default, then `dagster dev`")
    p.add_argument("--days", type=int, default=7, help="days of ledger to seed")
    p.set_defaults(fn=cmd_dev, rest=[])  # unknown options go on to `dagster dev`, e.g. -p 3001
    p = sub.add_parser("stop", help="stop the embedded Postgres under RECON_HOME")
    p.set_defaults(fn=cmd_stop)
    p = sub.add_parser("emulator", help="serve the Stripe emulator (see its --help)")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_emulator)
    p = sub.add_parser("prepare", help="prepare the dbt manifest(s)")
    p.add_argument("--targets", nargs="+", default=["local"], choices=["local", "prod"])
    p.set_defaults(fn=cmd_prepare)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if args.fn is not cmd_dev:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.rest = unknown
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
