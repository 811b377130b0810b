"""`recon`: the project's command line (demo, emulator, prepare).

Every command reads its settings from the environment when it runs, like the code location.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta

from recon_assets.config import ReconSettings
from recon_assets.timewindows import BUSINESS_TZ


def last_complete_days(n: int, today: date | None = None) -> list[date]:
    """The `n` most recent complete US-Eastern days, oldest first."""
    from datetime import datetime

    today = today or datetime.now(BUSINESS_TZ).date()
    return [today - timedelta(days=i) for i in range(n, 0, -1)]


def materialize_range(
    settings: ReconSettings, selection: str, first: date, last: date
) -> dict[str, object]:
    """Materialize `selection` for the partition range [first, last] in one run, in process."""
    import dagster as dg

    from recon_assets.definitions import build_definitions

    defs = build_definitions(settings)
    job = defs.resolve_implicit_global_asset_job_def()
    del job  # resolving validates the graph before we run
    result = dg.materialize(
        [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)],
        selection=selection,
        resources=defs.resources,
        instance=dg.DagsterInstance.ephemeral(),
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
    )
    if not result.success:
        raise SystemExit("materialization failed")
    out: dict[str, object] = {}
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        out[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    return out


def cmd_demo(args: argparse.Namespace) -> int:
    settings = ReconSettings.from_env()
    days = last_complete_days(args.days)
    print(f"recon demo: RECON_ENV={settings.env}, RECON_HOME={settings.home}")
    print(f"pulling Stripe charges for {days[0]} .. {days[-1]} from the local emulator")
    meta = materialize_range(settings, "stripe_charges", days[0], days[-1])
    m = meta["stripe_charges"]
    assert isinstance(m, dict)
    print(
        f"staged {m['rows']} charges ({m['bytes']} bytes), quarantined {m['quarantined']}, "
        f"{m['requests']} requests, {m['charges_per_s']} charges/s"
    )
    for day, counts in m["per_day"].items():
        print(f"  {day}: {counts}")
    for uri in m["staged_uris"]:
        print(f"  {uri}")
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    from recon_assets.local.stripe_emulator.__main__ import main as emulator_main

    return emulator_main(args.rest)


def cmd_prepare(args: argparse.Namespace) -> int:
    """Prepare what Dagster needs before loading: the dbt manifest (never parsed at import)."""
    try:
        from recon_assets.defs.dbt_assets import prepare_manifest
    except ImportError:
        print("no dbt project wired yet: nothing to prepare")
        return 0
    settings = ReconSettings.from_env()
    path = prepare_manifest(target="local" if settings.is_local else "prod")
    print(f"dbt manifest: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recon", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("demo", help="run the pipeline on the embedded default")
    p.add_argument("--days", type=int, default=3, help="how many recent days to run")
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("emulator", help="serve the Stripe emulator (see its --help)")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_emulator)
    p = sub.add_parser("prepare", help="prepare the dbt manifest")
    p.set_defaults(fn=cmd_prepare)
    args = parser.parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
