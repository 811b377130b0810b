"""`recon`: the project's command line.

- `recon demo`: the whole pipeline on the embedded default for the last few complete days
  (emulated Stripe, embedded Postgres ledger seeded to agree with it, local stage, DuckDB),
  then the ops report.
- `recon dev`: the same bootstrap, then `dagster dev -w workspace.yaml` with a project-local
  DAGSTER_HOME, for the UI, backfills and the schedule.
- `recon prepare`: the dbt manifest (never parsed at import).
- `recon seed [--dsn DSN]`: grow the embedded ledger (or a database named explicitly) from the
  emulator account. recon writes to no other ledger: `RECON_LEDGER_DSN` is only ever read.
- `recon stop`: stop the embedded Postgres (left running between commands for reuse).
- `recon backfill --start D1 --end D2`: one range run, step by step (local: the embedded
  ledger grown for those days).
- `recon report [DAY]`: a day's totals from the local warehouse, and where its HTML report is.
- `recon emulator ...`: serve the Stripe emulator on its own (its options pass through).
- `recon dbt ...`: dbt by hand on this warehouse (its arguments pass through).

Every command reads its settings from the environment when it runs, like the code location.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from recon_assets.child_processes import default_sigterm
from recon_assets.config import ReconSettings
from recon_assets.timewindows import BUSINESS_TZ


def last_complete_days(n: int, today: date | None = None) -> list[date]:
    """The `n` most recent complete US-Eastern days, oldest first."""
    today = today or datetime.now(BUSINESS_TZ).date()
    return [today - timedelta(days=i) for i in range(n, 0, -1)]


def local_today(settings: ReconSettings) -> date:
    """Today in US Eastern on the local account's clock: the emulator's (RECON_EMULATOR_NOW),
    else the wall clock. An account frozen in the past has no later days to reconcile, and a
    test that freezes it gets the same days whenever it runs."""
    now = settings.emulator_now if settings.is_local else None
    return (datetime.fromtimestamp(now, BUSINESS_TZ) if now else datetime.now(BUSINESS_TZ)).date()


INSTANCE_YAML = Path(__file__).with_name("dagster.yaml")


def dagster_home(settings: ReconSettings) -> Path:
    """Dagster's instance for local runs: under RECON_HOME (git-ignored), never committed, with
    the project's dagster.yaml installed and its storage initialised exactly once. Under a file
    lock: two first commands at once would otherwise both migrate the sqlite storage (two
    alembic heads, and every later command fails)."""
    import fcntl
    import warnings

    home = settings.home / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".init.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / "dagster.yaml").exists():
            (home / "dagster.yaml").write_text(INSTANCE_YAML.read_text())
        if not (home / ".initialised").exists():
            import dagster as dg

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dg.DagsterInstance.from_config(str(home)).dispose()
            (home / ".initialised").touch()
    return home


@contextlib.contextmanager
def one_local_writer(settings: ReconSettings) -> Iterator[None]:
    """Runs started from the command line execute in this process, not through the run queue:
    locally they take RECON_HOME's writer lock, so a second command waits for the first
    (DuckDB allows one writing process per file) instead of failing on a raw file-lock error."""
    import fcntl

    settings.home.mkdir(parents=True, exist_ok=True)
    with open(settings.home / ".writer.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("  another recon run is writing this RECON_HOME: waiting for it to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def log_file(settings: ReconSettings, what: str) -> Path:
    """Where a command's full log goes (Dagster's DEBUG lines, dbt's output, warnings)."""
    folder = settings.home / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{what}-{datetime.now(BUSINESS_TZ):%Y%m%d-%H%M%S}.log"


def _timed(fn: Any) -> Any:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _quiet_definitions(settings: ReconSettings) -> Any:
    import warnings

    from recon_assets.definitions import build_definitions

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_definitions(settings)


def _local_instance(settings: ReconSettings) -> Any:
    """The project-local Dagster instance (RECON_HOME/dagster), so the UI shows CLI runs."""
    import warnings

    import dagster as dg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dg.DagsterInstance.from_config(str(dagster_home(settings)))


def _print_days(settings: ReconSettings, *results: Any) -> None:
    """Each day's headline and its HTML report, from the report's per-day materializations
    (of every run given, in order)."""
    from recon_assets.defs.report_assets import INDEX_KEY

    mats = [m for r in results for m in r.asset_materializations_for_node("reconciliation_report")]
    for m in sorted(mats, key=lambda m: m.partition):
        meta = {k: v.value for k, v in m.metadata.items()}
        status = str(meta["day_status"]).split(":")[0].upper()
        print(
            f"  {m.partition}  {status:<11} {meta['items']:>7,} items  {meta['breaks']:>4,} breaks"
            f"  match rate {float(meta['match_rate']):.2%}"
        )
        print(
            f"              refunds {meta.get('refunds', 0):,} ({meta.get('refund_breaks', 0):,} "
            "breaks)"
        )
        print(f"              {meta['report']}")
    print(f"  all days:   {settings.stage_uri.rstrip('/')}/{INDEX_KEY}")


def cmd_demo(args: argparse.Namespace) -> int:
    settings = ReconSettings.from_env()
    if not settings.is_local:
        print("recon demo runs on the embedded default only (RECON_ENV=local)", file=sys.stderr)
        return 2
    days = last_complete_days(args.days, local_today(settings))
    first, last = days[0], days[-1]
    with one_local_writer(settings):
        return _demo(settings, days, first, last)


def _demo(settings: ReconSettings, days: list[date], first: date, last: date) -> int:
    from recon_assets.definitions import dbt_target
    from recon_assets.defs.dbt_assets import ensure_manifest
    from recon_assets.local.bootstrap import prepare_local_ledger
    from recon_assets.progress import quiet, run_range

    log = log_file(settings, "demo")
    print(f"recon demo, {first}..{last} (US-Eastern), state in {settings.home}")
    print(f"  full log: {log}")
    with open(log, "ab") as fh, quiet(fh):  # nothing of the framework on the terminal
        ledger, s2 = _timed(lambda: prepare_local_ledger(settings, first, last))
        _, s1 = _timed(lambda: ensure_manifest(dbt_target(settings)))
        defs = _quiet_definitions(settings)
        instance = _local_instance(settings)
    print(f"  {'dbt manifest':<22} {'ready (parsed only when missing or stale)':<76} {s1:6.1f} s")
    print(f"  {'ledger':<22} {ledger.describe():<76} {s2:6.1f} s")
    # the days before the last as one run (a backfill), then the last day as its nightly: the
    # ledger's corrections posted on the last day resolve breaks the first run reported
    runs = []
    if len(days) > 1:
        t = time.perf_counter()
        runs.append(run_range(defs, first, days[-2], instance, log))
        print(f"  one Dagster run over {len(days) - 1} days: {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    runs.append(run_range(defs, last, last, instance, log))
    print(f"  the nightly of {last}: {time.perf_counter() - t:.1f} s")
    print("What finance ops opens at 9 AM:")
    _print_reported_days(settings, days)
    print(f"Next: `recon report {last}`, or `recon dev` for the Dagster UI.")
    return 0


def _print_reported_days(settings: ReconSettings, days: list[date]) -> None:
    """Each day's headline as its report now says it (the nightly rewrites the earlier days'
    reports its data restated), its refunds, and the breaks the ledger's own corrections
    resolved, read from the local warehouse."""
    from recon_assets.defs.report_assets import INDEX_KEY, report_key
    from recon_assets.report.data import ReportState, fetch_histories, fetch_reports, format_minor
    from recon_assets.warehouse.duckdb_loader import connect_duckdb

    con = connect_duckdb(settings.duckdb_path, read_only=True, memory_limit=None)
    try:

        def query(sql: str, params: Any) -> list[tuple[object, ...]]:
            return con.execute(sql, list(params)).fetchall()

        reports = fetch_reports(query, days)
        histories = fetch_histories(query, {d: ReportState() for d in days})
    finally:
        con.close()
    for r in reports:
        rate = r.match_rate
        refunds = r.refund_totals()
        corrected = sum(1 for b in histories[r.day].breaks if b.resolution == "corrected_in_ledger")
        print(
            f"  {r.day}  {r.day_status.upper():<11} {r.items:>7,} items  {r.break_count:>4,} breaks"
            "  match rate " + (f"{rate:.2%}" if rate is not None else "n/a")
        )
        if r.day_status != "final":
            print(f"              why {r.day_status}: {r.day_status_reason}")
        kinds: dict[str, int] = {}
        for b in r.breaks:
            kinds[b.recon_status] = kinds.get(b.recon_status, 0) + 1
        print("              breaks by status: "
              + (", ".join(f"{k} {n:,}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
                 or "none"))  # fmt: skip
        print(
            f"              {sum(t.refunds for t in refunds):,} refunds "
            f"({sum(t.breaks for t in refunds):,} breaks); {corrected:,} breaks resolved by "
            "the ledger's corrections (reversals)"
        )
        fees, disputes = r.fee_totals(), r.dispute_totals()
        print(
            f"              {sum(t.items for t in fees):,} Stripe fees "
            f"({sum(t.breaks for t in fees):,} breaks); {sum(t.items for t in disputes):,} "
            f"dispute movements ({sum(t.breaks for t in disputes):,} breaks)"
        )
        booked = sum(1 for p in r.payouts if p.recon_status == "matched")
        short = sum(1 for p in r.payouts if not p.is_complete)
        print(
            f"              {len(r.payouts):,} payouts arriving ({booked:,} booked and matched, "
            f"{sum(1 for b in r.breaks if b.item_type == 'payout'):,} breaks); "
            + (
                f"{short:,} carried less or more than their amount"
                if short
                else "each carried exactly its amount"
            )
        )
        # the day's biggest currency in full, then what the rest say: a person reads one line
        for t in sorted(r.tieout, key=lambda t: -abs(t.stripe_net))[:1]:
            rest = r.unexplained
            print(
                f"              tie-out {t.currency}: Stripe balance moved "
                f"{format_minor(t.stripe_net, t.currency)}, ledger "
                f"{format_minor(t.ledger_net, t.currency)}, difference "
                f"{format_minor(t.difference, t.currency)}, explained "
                f"{format_minor(t.explained, t.currency)}, unexplained "
                f"{format_minor(t.unexplained, t.currency)}; "
                + (
                    "unexplained: " + ", ".join(format_minor(a, c) for c, a in rest.items())
                    if rest
                    else f"unexplained 0 in all {len(r.tieout)} currencies"
                )
            )
        print(f"              {Path(settings.stage_uri) / report_key(r.day.isoformat(), 'html')}")
    print(f"  all days:   {settings.stage_uri.rstrip('/')}/{INDEX_KEY}")


def cmd_backfill(args: argparse.Namespace) -> int:
    settings = ReconSettings.from_env()
    first, last = args.start, args.end
    if last < first:
        print("recon backfill: --end is before --start", file=sys.stderr)
        return 2
    if first < settings.start_date:
        print(f"recon backfill: --start is before RECON_START_DATE ({settings.start_date})",
              file=sys.stderr)  # fmt: skip
        return 2
    with one_local_writer(settings) if settings.is_local else contextlib.nullcontext():
        return _backfill(settings, first, last)


def _backfill(settings: ReconSettings, first: date, last: date) -> int:
    from recon_assets.definitions import dbt_target
    from recon_assets.defs.dbt_assets import ensure_manifest
    from recon_assets.progress import quiet, run_range

    log = log_file(settings, "backfill")
    print(f"recon backfill {first}..{last}: one run, full log in {log}")
    with open(log, "ab") as fh, quiet(fh):
        ledger = _ledger_for(settings, first, last)
        ensure_manifest(dbt_target(settings))
        defs = _quiet_definitions(settings)
        instance = _local_instance(settings)
    print(f"  ledger: {ledger}")
    t = time.perf_counter()
    try:
        result = run_range(defs, first, last, instance, log)
    except Exception as exc:
        from recon_assets.warehouse.duckdb_loader import RUN_MEMORY_SETTING, out_of_memory_hint

        # what the run raised, and the steps' own errors that run_range noted on it
        errors = "\n".join([str(exc), *getattr(exc, "__notes__", [])])
        if RUN_MEMORY_SETTING in errors:  # a load or a read of the run's own, not dbt's build
            hint = out_of_memory_hint(errors, settings.duckdb_run_memory_limit, RUN_MEMORY_SETTING)
        else:
            hint = out_of_memory_hint(errors, settings.duckdb_memory_limit)
        if hint is not None and settings.warehouse == "duckdb":
            print(f"recon backfill failed: {hint}", file=sys.stderr)
        else:
            print(f"recon backfill failed: {type(exc).__name__}: {one_line(str(exc))[:500]}",
                  file=sys.stderr)  # fmt: skip
        return 1
    print(f"  done in {time.perf_counter() - t:.1f} s")
    _print_days(settings, result)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """A day's headline and totals, read from the local warehouse; where its HTML is."""
    from recon_assets.defs.report_assets import report_key
    from recon_assets.report.data import fetch_reports, format_minor, reported_days
    from recon_assets.warehouse.duckdb_loader import connect_duckdb

    settings = ReconSettings.from_env()
    if settings.warehouse != "duckdb":
        print("recon report reads the local DuckDB warehouse; in production open the HTML "
              f"reports under {settings.stage_uri}/reports/", file=sys.stderr)  # fmt: skip
        return 2
    if not settings.duckdb_path.exists():
        print(f"no warehouse at {settings.duckdb_path}: run `recon demo` first", file=sys.stderr)
        return 1
    con = connect_duckdb(
        settings.duckdb_path, read_only=True, memory_limit=settings.duckdb_memory_limit
    )
    try:

        def query(sql: str, params: Any) -> list[tuple[object, ...]]:
            return con.execute(sql, list(params)).fetchall()

        days = reported_days(query)
        day = args.day or (days[-1] if days else None)
        if day is None:
            print("no day has been reported yet: run `recon demo` first", file=sys.stderr)
            return 1
        (r,) = fetch_reports(query, [day])
    finally:
        con.close()
    rate = r.match_rate
    print(
        f"{day}: {r.day_status.upper()}"
        + (f" ({r.day_status_reason})" if r.day_status_reason else "")
    )
    print(f"  {r.items:,} items, {r.break_count:,} breaks, match rate "
          + (f"{rate:.2%}" if rate is not None else "n/a"))  # fmt: skip
    print(f"  {'currency':<9}{'items':>8}{'Stripe':>22}{'ledger':>22}{'breaks':>8}")
    for t in r.totals():
        print(f"  {t.currency:<9}{t.items:>8,}{format_minor(t.stripe_amount, t.currency):>22}"
              f"{format_minor(t.ledger_amount, t.currency):>22}{t.breaks:>8,}")  # fmt: skip
    html = Path(settings.stage_uri) / report_key(day.isoformat(), "html")
    print(f"  report: {html}" + ("" if html.exists() else " (not written yet)"))
    return 0


def _ledger_for(settings: ReconSettings, first: date, last: date) -> str:
    """Make the ledger of charge days `first..last` ready to read, and say which it is: locally
    the embedded one grown to the emulator's clock; any `RECON_LEDGER_DSN` (and production's)
    only checked in a read-only session, never written."""
    if settings.is_local:
        from recon_assets.local.bootstrap import prepare_local_ledger

        return prepare_local_ledger(settings, first, last).describe()
    from recon_assets.ledger.connection import check_readable_ledger, describe_dsn

    assert settings.ledger_dsn  # required in prod (ConfigError otherwise)
    check_readable_ledger(settings.ledger_dsn)
    return f"{describe_dsn(settings.ledger_dsn)}, read only"


def cmd_dev(args: argparse.Namespace) -> int:
    from recon_assets.definitions import dbt_target
    from recon_assets.defs.dbt_assets import ensure_manifest

    settings = ReconSettings.from_env()
    # the account's whole span, so a backfill of any partition in the UI finds its ledger
    today = local_today(settings)
    print(f"ledger: {_ledger_for(settings, min(settings.start_date, today), today)}")
    ensure_manifest(dbt_target(settings))
    env = dict(os.environ, DAGSTER_HOME=str(dagster_home(settings)))
    dagster = str(Path(sys.executable).with_name("dagster"))
    return supervise([dagster, "dev", "-w", "workspace.yaml", *args.rest], env)


_DEV_CHILD = """
import os, sys
from recon_assets.child_processes import die_with_parent
die_with_parent()
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)  # the parent died before the line above: nothing would stop this process
os.execv(sys.argv[2], sys.argv[2:])
"""


def supervise(cmd: list[str], env: dict[str, str], grace_s: float = 60.0) -> int:
    """Run `dagster dev` as a child that ends with this process, and its children with it.

    `dagster dev` stops on SIGINT, and maps SIGTERM to whatever SIGINT does. Started in the
    background (`recon dev &` in a script, some supervisors) SIGINT arrives ignored, Python then
    leaves it ignored, and so SIGTERM was ignored too; killed outright, its webserver, daemon and
    code servers ran on. So: the child starts with both at their defaults (handlers installed
    here are reset by exec), in a process group of its own (a terminal's Ctrl-C reaches this
    process, which passes it on once), and SIGTERM'd by the kernel if this
    process dies (even by SIGKILL). SIGTERM and SIGINT here reach it as SIGTERM, its own orderly
    shutdown; a second one, or `grace_s` after the first, kills the group. Whatever of the group
    outlives it (a code server whose parent was killed) is ended too."""
    import signal
    import subprocess

    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    stopping: list[float] = []

    def stop(signo: int, _frame: object) -> None:
        if proc is None:
            raise KeyboardInterrupt
        with contextlib.suppress(ProcessLookupError):
            if stopping:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.send_signal(signal.SIGTERM)
        stopping.append(time.monotonic())

    proc: subprocess.Popen[bytes] | None = None
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    proc = subprocess.Popen(
        [sys.executable, "-c", _DEV_CHILD, str(os.getpid()), *cmd], env=env, process_group=0,
    )  # fmt: skip
    while True:
        try:
            code = proc.wait(timeout=1.0)
            break
        except subprocess.TimeoutExpired:
            if stopping and time.monotonic() - stopping[0] > grace_s:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
    for sig in (signal.SIGTERM, signal.SIGKILL):  # what outlived it in its group
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        time.sleep(2.0 if sig == signal.SIGTERM else 0)
    return 0 if stopping and code in (0, -signal.SIGTERM, -signal.SIGINT) else code


def cmd_seed(args: argparse.Namespace) -> int:
    """Grow a ledger from the emulator account: the embedded one, or a database named here.

    Never `RECON_LEDGER_DSN` implicitly: that variable names a ledger to read, and a ledger
    someone else owns must not receive synthetic bookings because a variable was left set."""
    from recon_assets.ledger.connection import describe_dsn
    from recon_assets.local.bootstrap import grow_in_child
    from recon_assets.local.postgres import embedded_postgres

    settings = ReconSettings.from_env()
    if not settings.is_local:
        print("recon seed grows a local ledger (RECON_ENV=local) only", file=sys.stderr)
        return 2
    first = args.start or settings.start_date
    last = args.end or local_today(settings)
    if last < first:
        print("recon seed: --end is before --start", file=sys.stderr)
        return 2
    dsn = args.dsn or embedded_postgres(settings).start()
    grown = grow_in_child(settings, dsn, first, last)
    print(
        f"ledger {describe_dsn(dsn)}: charge days {first}..{last} grown to "
        f"{grown.clock:%Y-%m-%d %H:%M:%S} UTC: {grown.entries_written:,} entries written on "
        f"{grown.days_written} days, {grown.entries_total:,} in the range"
    )
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop the embedded Postgres the demo and `recon dev` leave running for reuse."""
    from recon_assets.local.postgres import embedded_postgres

    settings = ReconSettings.from_env()
    server = embedded_postgres(settings)
    if server.is_running():
        server.stop()
        print("embedded Postgres stopped")
    else:
        print("embedded Postgres is not running")
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    """The emulator on its own, serving by default the very account the pipeline's local runs
    read (RECON_EMULATOR_SEED, RECON_EMULATOR_CHARGES_PER_DAY, RECON_START_DATE, ...), so what
    a curl shows is what the demo and `recon dev` reconcile."""
    from recon_assets.local.bootstrap import settings_emulator_config
    from recon_assets.local.stripe_emulator.__main__ import main as emulator_main

    settings = ReconSettings.from_env()
    account = (
        "Default account: the pipeline's local one (RECON_EMULATOR_SEED, "
        "RECON_EMULATOR_CHARGES_PER_DAY, RECON_START_DATE, RECON_EMULATOR_NOW, "
        "RECON_EMULATOR_CHANGES), to the day after tomorrow."
    )
    defaults = settings_emulator_config(settings) if settings.is_local else None
    return int(
        emulator_main(args.rest, "recon emulator", defaults, account if defaults else "") or 0
    )


def cmd_dbt(args: argparse.Namespace) -> int:
    """dbt by hand, as the runs start it: dbt's own environment (`.venv-dbt`), the project and its
    profiles, the target and warehouse of these settings. dbt wants `--project-dir` after its
    subcommand (`dbt build --project-dir ...`); they reach it as DBT_PROJECT_DIR and
    DBT_PROFILES_DIR instead, so every dbt command line works as typed. Its artifacts and logs go
    under RECON_HOME (`dbt-manual/`), never into the code folder or a scheduled run's."""
    import subprocess

    from recon_assets.definitions import dbt_target, duckdb_dbt_env
    from recon_assets.defs.dbt_assets import DBT_PROJECT_DIR, default_dbt_executable
    from recon_assets.warehouse.dbt_launch import env_args

    settings = ReconSettings.from_env()
    env = {
        "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
        "RECON_DBT_TARGET": dbt_target(settings),
        "DBT_TARGET_PATH": str(settings.home / "dbt-manual" / "target"),
        "DBT_LOG_PATH": str(settings.home / "dbt-manual" / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    if settings.warehouse == "duckdb":
        env |= duckdb_dbt_env(settings)
    cmd = [default_dbt_executable(), *env_args(env), *(args.rest or ["--help"])]
    return subprocess.run(cmd, cwd=DBT_PROJECT_DIR, check=False).returncode


def cmd_prepare(args: argparse.Namespace) -> int:
    """Prepare what Dagster needs before loading: the dbt manifest (never parsed at import)."""
    from recon_assets.defs.dbt_assets import prepare_manifest

    for target in args.targets:
        print(f"dbt manifest ({target}): {prepare_manifest(target=target)}")
    return 0


def one_line(text: str) -> str:
    return " ".join(text.split())


_ONE_LINE_ERRORS = (
    "ConfigError",
    "LedgerConnectionError",
    "EmbeddedPostgresError",
    "SeedAccountMismatch",
)
"""What a command answers with one line, not a traceback: a setting, a ledger it cannot reach,
a local server that cannot start. Each message names what is wrong and never a secret."""


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit, where a closed pipe is a traceback-like notice
        return code
    except BrokenPipeError:
        # `recon report | head`: the reader has what it wanted. Python would print another
        # BrokenPipeError when it flushes stdout at exit, so stdout goes to /dev/null first;
        # 141 is what a shell reports for a command ended by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:
        if type(exc).__name__ not in _ONE_LINE_ERRORS:
            raise
        cmd = next((a for a in (argv if argv is not None else sys.argv[1:]) if a[:1] != "-"), "")
        print(f"recon {cmd}: {one_line(str(exc))}".replace("recon :", "recon:"), file=sys.stderr)
        return 2 if type(exc).__name__ == "ConfigError" else 1


def _main(argv: list[str] | None = None) -> int:
    # Started by a parent that ignores SIGTERM, recon passed that on to the `tail` Dagster runs
    # for each step's compute log, which its teardown then could not terminate: a failed step
    # took 30 s more and raised `TimeoutExpired` instead of its own error.
    default_sigterm()
    parser = argparse.ArgumentParser(prog="recon", description="recon: Stripe vs ledger")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("demo", help="run the whole pipeline on the embedded default")
    p.add_argument("--days", type=int, default=3, help="how many recent complete days")
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("backfill", help="materialize a range of days as ONE run, with progress")
    p.add_argument("--start", type=date.fromisoformat, required=True, help="first day, ISO")
    p.add_argument("--end", type=date.fromisoformat, required=True, help="last day, inclusive")
    p.set_defaults(fn=cmd_backfill)
    p = sub.add_parser("report", help="a day's totals and where its HTML report is")
    p.add_argument("day", nargs="?", type=date.fromisoformat, help="ISO day (default: latest)")
    p.set_defaults(fn=cmd_report)
    p = sub.add_parser(
        "dev", help="grow the embedded ledger over every partition, then `dagster dev`"
    )
    p.set_defaults(fn=cmd_dev, rest=[])  # unknown options go on to `dagster dev`, e.g. -p 3001
    p = sub.add_parser(
        "seed",
        help="grow the embedded ledger (or the database --dsn names) from the emulator account",
    )
    p.add_argument("--dsn", help="a database to seed, named explicitly (default: the embedded one)")
    p.add_argument("--start", type=date.fromisoformat, help="first charge day (RECON_START_DATE)")
    p.add_argument("--end", type=date.fromisoformat, help="last charge day (default: today)")
    p.set_defaults(fn=cmd_seed)
    p = sub.add_parser("stop", help="stop the embedded Postgres under RECON_HOME")
    p.set_defaults(fn=cmd_stop)
    p = sub.add_parser(
        "emulator", help="serve the Stripe emulator; its options pass through (recon emulator -h)",
        add_help=False,
    )  # fmt: skip
    p.set_defaults(fn=cmd_emulator, rest=[])
    p = sub.add_parser(
        "dbt", help="dbt by hand on this warehouse, e.g. `recon dbt build --select marts`",
        add_help=False,
    )  # fmt: skip
    p.set_defaults(fn=cmd_dbt, rest=[])  # every argument goes on to dbt
    p = sub.add_parser("prepare", help="prepare the dbt manifest(s)")
    p.add_argument("--targets", nargs="+", default=["local"], choices=["local", "prod"])
    p.set_defaults(fn=cmd_prepare)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if args.fn not in (cmd_dev, cmd_emulator, cmd_dbt):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.rest = unknown
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
