"""The nightly run as the schedule runs it, with little and with much history loaded (issue 11).

For each history length H (days already loaded before the nightly), in its own RECON_HOME:

1. `recon backfill` loads the H days before the nightly's range (local mode: the project's Stripe
   emulator on a thread of the run's process, the embedded Postgres ledger, DuckDB), untimed
   setup;
2. the nightly's range (yesterday and the `RECON_RESTATE_DAYS`=3 days before it, so
   4 x `--per-day` charges, 10 k by default) runs `--runs` times through `recon backfill`, which
   is one Dagster run over the range, in-process executor, as the schedule's run worker executes
   it. Each time: the wall time of the run from its start to the report (as `recon backfill`
   prints it), and the peak RSS of the whole process tree (sum over the process and all its
   children, dbt included, sampled every 50 ms) with what it is made of at that sample: the run
   process, dbt (its own process) and the others (Dagster's log capture, and the resource
   trackers of the local seeder and of dbt), each with the part of its RSS that is mapped
   files (code);
3. loading the code location (`recon_assets.definitions.defs()` in a fresh interpreter), which
   the run worker pays before the run starts, `--runs` times.

`--variant KEY=VALUE` adds, for each history, the same nightly with those settings (say
`RECON_DUCKDB_MEMORY_LIMIT=20GB`, to see what the default memory limit costs and saves).
Runs of the history lengths and variants are interleaved, so machine noise hits them alike; the
table gives medians and min..max and the ratio of the longest history to the shortest.
`--instances sqlite postgres-batched-subset` runs every nightly on both Dagster instances (as
`bench_backfill.py` does): the local SQLite one `recon backfill` makes, and the production instance
docs/operations.md gives (Postgres storage, Dagster's batched event writes and one planned event
per asset), on a Postgres server the bench starts, outside the measured tree. On SQLite each of
the ~950 events a nightly records (a materialization and a planned event per asset and day, a
check and its plan) is its own connection and commit.
`--emulator apart` (the default) starts `recon emulator` in a process of its own for each
nightly, outside the measured tree, as Stripe is to a production run worker; `--emulator thread`
runs it on a thread of the run's process, as a plain local run starts it, where its account's
memory counts as the run process's (the figures before 2026-12-06 were measured so);
`--emulator apart thread` runs both, interleaved, as `bench_backfill.py` does.
`--markdown` writes the section into docs/benchmarks.md.

    .venv/bin/python bench/bench_nightly.py                       # 30 and 540 days, ~25 min
    .venv/bin/python bench/bench_nightly.py --history 3 30 --runs 2   # a few minutes
    .venv/bin/python bench/bench_nightly.py --homes /var/tmp/recon-bench  # keep the histories

With `--homes DIR` each history is built once into `DIR/h<H>` (its settings saved beside it in
`bench-env.json`) and reused by later runs of the bench: building 540 days takes ~15 min, and
the nightly's range then stays the one the history was built for. Re-running a nightly on a
home is safe (that is the contract), so the figures stay comparable.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from importlib.metadata import version
from pathlib import Path

import psutil
from bench_env import (
    INSTANCES,
    add_emulator_argument,
    dagster_postgres,
    emulator_apart,
    instance_home,
    production_env,
)

from recon_assets.stripe.pull_shards import PULL_PROCESS_NAME
from recon_assets.warehouse.duckdb_process import WAREHOUSE_PROCESS_NAME

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESTATE_DAYS = 3
INSTANCE_YAML = ROOT / "recon_assets" / "dagster.yaml"  # the local instance recon installs


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem = psutil.virtual_memory().total / 2**30
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    from recon_assets.defs.dbt_assets import dbt_core_version, default_dbt_executable

    dbt = default_dbt_executable()  # dbt-core lives in dbt's own environment (.venv-dbt)
    pkgs = ", ".join(
        [
            *(f"{p} {version(p)}" for p in ("dagster", "dagster-dbt")),
            f"dbt-core {dbt_core_version(dbt)} ({dbt})",
            *(f"{p} {version(p)}" for p in ("duckdb", "stripe")),
        ]
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, load {load}; "
        f"Python {platform.python_version()}; {pkgs}"
    )


# What each process of the tree is, for the breakdown at the tree's peak and each one's own peak.
RUN, PULL, WAREHOUSE, DBT, OTHER = (
    "run process",
    "pull process",
    "warehouse process",
    "dbt",
    "the others",
)


PER_PROCESS = (RUN, PULL, WAREHOUSE, DBT)
"""The processes the issue sizes one by one (the emulator and the embedded Postgres are local
stand-ins for Stripe and a ledger someone else runs, so they are left out)."""


def describe_processes(peaks: dict[str, int]) -> str:
    return ", ".join(f"{r} {peaks[r] / 2**20:.0f} MB" for r in PER_PROCESS if r in peaks)


def role(proc: psutil.Process, root: psutil.Process) -> str:
    if proc.pid == root.pid:
        return RUN
    with contextlib.suppress(psutil.Error):
        if proc.name() == PULL_PROCESS_NAME:  # named by the child itself, once it runs
            return PULL
        if proc.name() == WAREHOUSE_PROCESS_NAME:
            return WAREHOUSE
        if any(Path(a).name in ("recon-dbt", "dbt") for a in proc.cmdline()[:2]):
            return DBT
    return OTHER


@dataclasses.dataclass(frozen=True)
class Share:
    """One role's part of the tree at one sample: its RSS, the part of it that is mapped files
    (the interpreter's and the libraries' code, which no setting can shrink), and how many
    processes."""

    rss: int
    files: int
    procs: int


class TreeRss:
    """Peak of the summed RSS of a process and all its descendants, sampled every 50 ms; the
    samples are kept (monotonic time, bytes) so a phase of the command can be read alone, and
    so is each role's share (`RUN`, `PULL`, `DBT`, `OTHER`) at the peak, to say what the peak is
    made of. Each sample also keeps, per role, its largest single process: the figure a pod or
    a container limit is sized by (`process_peaks_since`)."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.samples: list[tuple[float, int]] = []
        self.largest: list[dict[str, int]] = []  # per sample: role -> its largest process
        self.at_peak: dict[str, Share] = {}
        self._peak = 0
        self._roles: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            shares: dict[str, Share] = {}
            largest: dict[str, int] = {}
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                break
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    mem = p.memory_info()  # `shared`: resident file-backed pages (statm)
                    r = self._roles.get(p.pid) or role(p, self.root)
                    if r != OTHER:  # a child forked but not yet exec'd still shows our argv
                        self._roles[p.pid] = r
                    had = shares.get(r, Share(0, 0, 0))
                    shares[r] = Share(had.rss + mem.rss, had.files + mem.shared, had.procs + 1)
                    largest[r] = max(largest.get(r, 0), mem.rss)
            total = sum(x.rss for x in shares.values())
            if total > self._peak:  # a running peak: a 30-minute backfill takes ~30 k samples
                self._peak, self.at_peak = total, shares
            self.samples.append((time.perf_counter(), total))
            self.largest.append(largest)
            self._stop.wait(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_since(float("-inf"))

    def peak_since(self, t: float) -> int:
        """The peak of the samples taken at or after `t` (a `time.perf_counter()` instant)."""
        return max((b for at, b in self.samples if at >= t), default=0)

    def role_peak_between(self, r: str, start: float, end: float) -> int:
        """The peak RSS of role `r`'s largest process over the samples in [start, end]."""
        return max(
            (big.get(r, 0) for (at, _), big in zip(self.samples, self.largest, strict=True)
             if start <= at <= end),
            default=0,
        )  # fmt: skip

    def process_peaks_since(self, t: float) -> dict[str, int]:
        """Per role, the peak RSS of its largest single process over the samples taken at or
        after `t` (the tree's peak above sums them, at one instant)."""
        peaks: dict[str, int] = {}
        for (at, _), largest in zip(self.samples, self.largest, strict=True):
            if at >= t:
                for r, b in largest.items():
                    peaks[r] = max(peaks.get(r, 0), b)
        return peaks


def prepared_home(
    home: Path, h: int, per_day: int, last: date
) -> tuple[dict[str, str], tuple[date, date]]:
    """A home with `h` days loaded before the nightly's range (ending on `last`), built now or
    (with its saved settings) reused; returns its environment and the nightly's range."""
    saved = home / "bench-env.json"
    if saved.exists():
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "DAGSTER_"))}
        env = production_env(env)
        env.update(json.loads(saved.read_text()))
        hist_first = date.fromisoformat(env["RECON_START_DATE"])
        if env["RECON_EMULATOR_CHARGES_PER_DAY"] != str(per_day):
            raise SystemExit(f"{home} was built with another --per-day")
        first = hist_first + timedelta(days=h)
        print(f"history {h} days: reusing {home}")
        return steady(env), (first, first + timedelta(days=RESTATE_DAYS))
    first = last - timedelta(days=RESTATE_DAYS)
    hist_first = first - timedelta(days=h)
    env = env_for(home, per_day, hist_first, int(time.time()))
    t = time.perf_counter()
    backfill(env, hist_first, first - timedelta(days=1))
    print(f"history {h} days ({h * per_day:,} charges) loaded in "
          f"{time.perf_counter() - t:.0f} s")  # fmt: skip
    home.mkdir(parents=True, exist_ok=True)
    saved.write_text(
        json.dumps({k: v for k, v in env.items() if k.startswith(("RECON_", "DAGSTER_"))})
    )
    return steady(env), (first, last)


def steady(env: dict[str, str]) -> dict[str, str]:
    """The nightly's environment: the ledger's late-changes look-back at 0 minutes.

    A history built minutes before has every ledger entry written inside the default 60-minute
    look-back (`RECON_LEDGER_CHANGES_LOOKBACK_MINUTES`, for transactions that commit late), so
    each nightly re-read the whole ledger as late changes and rebuilt every charge: the extract
    grew with history (1.2 -> 4.0 s from 30 to 120 days) and the history build ran out of
    DuckDB's 256MB at 120 days. A production ledger's entries are hours to years old; a look-back
    of 0 gives the nightly it runs. A setting saved with the home (bench-env.json) wins."""
    return {"RECON_LEDGER_CHANGES_LOOKBACK_MINUTES": "0", **env}


def env_for(home: Path, per_day: int, start: date, now: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "DAGSTER_"))}
    env = production_env(env)
    env.update(
        RECON_HOME=str(home),
        RECON_START_DATE=start.isoformat(),
        RECON_EMULATOR_CHARGES_PER_DAY=str(per_day),
        RECON_EMULATOR_NOW=str(now),
        RECON_RESTATE_DAYS=str(RESTATE_DAYS),
        RECON_CATCHUP_DAYS="1",
        DAGSTER_DISABLE_TELEMETRY="1",
    )
    return env


@dataclasses.dataclass(frozen=True)
class BackfillRun:
    run_s: float  # the run from its start to the report, as `recon backfill` prints it
    peak: int  # whole-tree peak RSS, bytes
    run_peak: int  # the same over the run alone (the last run_s of the command), bytes
    wall: float  # the command's wall time (code location load, seeding, Postgres included)
    steps: dict[str, float]  # seconds per step, by the label `recon backfill` prints
    at_peak: dict[str, Share]  # each role's share of the tree at the command's peak
    process_peaks: dict[str, int]  # per role, its largest process's peak over the run, bytes
    step_peaks: dict[str, int]  # the run process's peak during each step, bytes
    warehouse_step_peaks: dict[str, int]  # the same, of the warehouse process (its DuckDB work)


# `recon backfill` says one line per finished step: label, what it did, seconds.
STEP_LINE = re.compile(r"^  (?!FAILED)(\S.{0,21}?)\s{2,}.*?\s([0-9.]+) s$")


def step_seconds(out: str) -> dict[str, float]:
    """Seconds per step from `recon backfill`'s output. The total ("  done in N s") has no
    column gap, so the pattern never takes it for a step."""
    steps: dict[str, float] = {}
    for line in out.splitlines():
        m = STEP_LINE.match(line)
        if m:
            steps[m.group(1).strip()] = float(m.group(2))
    return steps


def step_peaks(lines: list[tuple[float, str]], rss: TreeRss, r: str = RUN) -> dict[str, int]:
    """Role `r`'s peak RSS during each step (the run process's, or its warehouse process's):
    `recon backfill` says a step's line as the step ends (read here as it comes, `lines`
    holding when), with its seconds, so the step is the samples of the seconds before its line.
    Which step holds the memory, not only how much (the steps of one run run one after the
    other). A step in which the role had no process is left out."""
    peaks: dict[str, int] = {}
    for at, line in lines:
        m = STEP_LINE.match(line)
        if m and (peak := rss.role_peak_between(r, at - float(m.group(2)), at)):
            peaks[m.group(1).strip()] = peak
    return peaks


def backfill(env: dict[str, str], first: date, last: date) -> BackfillRun:
    """`recon backfill first..last`, its whole process tree sampled for peak RSS."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN / "recon"), "backfill", "--start", first.isoformat(), "--end", last.isoformat()],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    rss = TreeRss(proc.pid)
    lines = [(time.perf_counter(), line) for line in proc.stdout or ()]  # as each step ends
    proc.wait()
    out = "".join(line for _, line in lines)
    peak = rss.stop()
    ended = time.perf_counter()
    wall = ended - t
    if proc.returncode != 0:
        raise SystemExit(f"recon backfill {first}..{last} failed:\n{out[-3000:]}")
    m = re.search(r"done in ([0-9.]+) s", out)
    if not m:
        raise SystemExit(f"no run time in the output:\n{out[-2000:]}")
    run_s = float(m.group(1))
    # The run is the command's last run_s (then only its summary is printed): without the local
    # ledger seeding and the code location's load before it.
    began = ended - run_s
    return BackfillRun(
        run_s,
        peak,
        rss.peak_since(began),
        wall,
        step_seconds(out),
        rss.at_peak,
        rss.process_peaks_since(began),
        step_peaks(lines, rss),
        step_peaks(lines, rss, WAREHOUSE),
    )


def location_load(env: dict[str, str]) -> float:
    code = (
        "import time; t = time.perf_counter()\n"
        "from recon_assets.definitions import defs\n"
        "defs().resolve_all_job_defs()\n"
        "print(time.perf_counter() - t)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def fmt(xs: list[float], unit: str = "s", scale: float = 1.0) -> str:
    xs = [x / scale for x in xs]
    return f"{statistics.median(xs):.1f} {unit} ({min(xs):.1f}..{max(xs):.1f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--history", type=int, nargs="+", default=[30, 540])
    ap.add_argument("--per-day", type=int, default=2500, help="charges per day (nightly: 4 days)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--markdown", type=Path, help="write the section into this file")
    ap.add_argument("--homes", type=Path, help="build each history once here and reuse it")
    ap.add_argument(
        "--last",
        type=date.fromisoformat,
        help="the nightly's last day for homes built now (default: yesterday); give the one "
        "the homes already in --homes were built for to add a history length beside them",
    )
    ap.add_argument("--plot", type=Path, help="draw run time and peak RSS against history (PNG)")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="also run every nightly with these settings, interleaved (e.g. "
        "RECON_DUCKDB_MEMORY_LIMIT=20GB: DuckDB's own default, 80 %% of RAM)",
    )
    ap.add_argument(
        "--instances",
        nargs="+",
        default=["sqlite"],
        choices=list(INSTANCES),
        help="Dagster instances to run every nightly on, interleaved (as bench_backfill.py): "
        "sqlite is the local one; postgres-batched-subset is the production instance "
        "docs/operations.md gives, on a Postgres server the bench starts (a new database a run)",
    )
    add_emulator_argument(ap, " during the nightly")
    args = ap.parse_args()
    settings: list[tuple[str, dict[str, str]]] = [("", {})]
    for v in args.variant:
        pairs = dict(kv.split("=", 1) for kv in v.split(","))
        settings.append((", ".join(f"{k}={val}" for k, val in pairs.items()), pairs))
    # every setting on every instance and emulator; the sqlite instance and the emulator apart
    # keep the plain label
    variants: list[tuple[str, dict[str, str]]] = []
    instance_of: dict[str, str] = {}
    emulator_of: dict[str, str] = {}
    for inst in args.instances:
        for name, pairs in settings:
            for mode in args.emulator:
                where = "" if mode == "apart" else "emulator on the run's thread"
                label = ", ".join(x for x in (name, "" if inst == "sqlite" else inst, where) if x)
                variants.append((label, {**pairs, **INSTANCES[inst][1]}))
                instance_of[label] = inst
                emulator_of[label] = mode

    print(machine())
    with contextlib.ExitStack() as stack:
        if args.homes:
            args.homes.mkdir(parents=True, exist_ok=True)
            tmp = str(args.homes)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-nightly-"))
        os.chmod(tmp, 0o711)  # the embedded Postgres runs as `postgres` and must traverse it
        needs_pg = any(INSTANCES[i][0] == "postgres" for i in args.instances)
        pg_root = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-dagster-pg-"))
        server = stack.enter_context(dagster_postgres(needs_pg, Path(pg_root)))
        serial = iter(range(10**6))
        envs: dict[int, dict[str, str]] = {}
        ranges: dict[int, tuple[date, date]] = {}
        last_day = args.last or date.today() - timedelta(days=1)
        for h in args.history:
            envs[h], ranges[h] = prepared_home(Path(tmp) / f"h{h}", h, args.per_day, last_day)
        if len(set(ranges.values())) != 1:
            raise SystemExit(f"the homes were built for different nightly ranges: {ranges}")
        first, last = ranges[args.history[0]]
        cases = [(h, name) for h in args.history for name, _ in variants]
        extra = dict(variants)
        runs: dict[tuple[int, str], list[float]] = {c: [] for c in cases}
        peaks: dict[tuple[int, str], list[float]] = {c: [] for c in cases}
        loads: list[float] = []
        steps: dict[tuple[int, str], dict[str, list[float]]] = {c: {} for c in cases}
        step_mb: dict[tuple[int, str], dict[str, list[float]]] = {c: {} for c in cases}
        step_wh: dict[tuple[int, str], dict[str, list[float]]] = {c: {} for c in cases}
        shares: dict[tuple[int, str], list[dict[str, Share]]] = {c: [] for c in cases}
        own: dict[tuple[int, str], list[dict[str, int]]] = {c: [] for c in cases}
        for i in range(args.runs):
            for h, name in cases:
                env = {**envs[h], **extra[name]}
                home = Path(envs[h]["RECON_HOME"])
                storage = INSTANCES[instance_of[name]][0]
                env.update(instance_home(home, storage, server, next(serial)))
                try:
                    with emulator_apart(env, emulator_of[name]) as where:
                        b = backfill({**env, **where}, first, last)
                finally:  # the home's own (sqlite) instance for the next case
                    (home / "dagster" / "dagster.yaml").write_text(INSTANCE_YAML.read_text())
                run_s, peak = b.run_s, b.peak
                runs[h, name].append(run_s)
                peaks[h, name].append(peak)
                shares[h, name].append(b.at_peak)
                own[h, name].append(b.process_peaks)
                for label, secs in b.steps.items():
                    steps[h, name].setdefault(label, []).append(secs)
                for label, rss_peak in b.step_peaks.items():
                    step_mb[h, name].setdefault(label, []).append(rss_peak / 2**20)
                for label, rss_peak in b.warehouse_step_peaks.items():
                    step_wh[h, name].setdefault(label, []).append(rss_peak / 2**20)
                print(
                    f"  run {i + 1}, history {h}{' ' + name if name else ''}: {run_s:.1f} s, "
                    f"tree peak {peak / 2**20:.0f} MB ({describe(b.at_peak)}); each process's "
                    f"own peak: {describe_processes(b.process_peaks)}"
                )
            loads.append(location_load(envs[args.history[0]]))
            print(f"  code location load: {loads[-1]:.1f} s")

    lo, hi = min(args.history), max(args.history)
    nightly = 4 * args.per_day
    lines = [
        "| history loaded | nightly run (start to report) | whole tree peak RSS |",
        "|---|---|---|",
        *(
            f"| {h} days ({h * args.per_day:,} charges){', ' + name if name else ''} | "
            f"{fmt(runs[h, name])} | {fmt(peaks[h, name], 'MB', 2**20)} |"
            for h, name in cases
        ),
    ]
    # Seconds per step: which step pays for the history the nightly does not touch; the run
    # process's peak in each step: which step holds the run worker's memory.
    labels = [label for label in steps[cases[0]] if all(label in steps[c] for c in cases)]
    lines += ["", *step_rows("step (seconds, median)", cases, labels, steps, "{:.1f}")]
    lines += [
        "",
        *step_rows(
            "the run process's peak RSS during the step (MB, median)", cases, labels, step_mb,
            "{:.0f}",
        ),
    ]  # fmt: skip
    # the warehouse process's, in the cases that had one (code from before it had none)
    wh_cases = [c for c in cases if step_wh[c]]
    wh_labels = [lb for lb in labels if all(lb in step_wh[c] for c in wh_cases)]
    if wh_cases:
        lines += [
            "",
            *step_rows(
                "the warehouse process's peak RSS during the step (MB, median)", wh_cases,
                wh_labels, step_wh, "{:.0f}",
            ),
        ]  # fmt: skip
    lines += ["", *peak_table(cases, shares)]
    lines += ["", *table_head("each process's own peak RSS, run (median, min..max)", cases)]
    for r in PER_PROCESS:
        cells = []
        for c in cases:
            xs = [x[r] / 2**20 for x in own[c] if r in x]
            cells.append(
                f"{statistics.median(xs):.0f} MB ({min(xs):.0f}..{max(xs):.0f})" if xs else "-"
            )
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    # Each run's pair, the two histories back to back: the machine's speed drifts between runs
    # (a 30-day run took 11.4 s and 17.0 s in one series), so the ratio of medians can pair a
    # fast moment with a slow one; the pairs' median does not.
    growth = []
    for name, _ in variants:
        ratio = statistics.median(runs[hi, name]) / statistics.median(runs[lo, name])
        paired = [a / b for a, b in zip(runs[hi, name], runs[lo, name], strict=True)]
        growth.append(
            f"- {hi} days of history vs {lo}{' (' + name + ')' if name else ''}: "
            f"**{ratio:.2f}x** the run time (ratio of the medians); run by run, the median of "
            f"the {len(paired)} pairs' ratios **{statistics.median(paired):.2f}x** "
            f"({min(paired):.2f}..{max(paired):.2f})."
        )
    text = "\n".join(
        [
            f"Nightly of {nightly:,} charges ({RESTATE_DAYS + 1} days x {args.per_day:,}), "
            f"medians of {args.runs} interleaved runs (min..max).",
            "",
            *lines,
            "",
            *growth,
            f"- Loading the code location (fresh interpreter, local mode): {fmt(loads)}.",
            f"- Machine: {machine()}.",
        ]
    )
    print()
    print(text)
    if args.markdown:
        write_section(args.markdown, "nightly", text)
    if args.plot:
        plot_nightly(args.plot, args.history, runs, peaks, nightly, args.runs)


def step_rows(
    title: str,
    cases: list[tuple[int, str]],
    labels: list[str],
    by_case: dict[tuple[int, str], dict[str, list[float]]],
    cell: str,
) -> list[str]:
    """A table of each step's median figure per case (`cell` formats it); a step some case
    lacks a figure for is left out."""
    rows = [
        f"| {label} | "
        + " | ".join(cell.format(statistics.median(by_case[c][label])) for c in cases)
        + " |"
        for label in labels
        if all(label in by_case[c] for c in cases)
    ]
    return [*table_head(title, cases), *rows]


def table_head(title: str, cases: list[tuple[int, str]]) -> list[str]:
    """A markdown table's two header lines: `title`, then a column per (history, variant)."""
    columns = " | ".join(f"{h} days{', ' + name if name else ''}" for h, name in cases)
    return [f"| {title} | {columns} |", "|---|" + "---|" * len(cases)]


def describe(at_peak: dict[str, Share]) -> str:
    return ", ".join(f"{r} {x.rss / 2**20:.0f}" for r, x in at_peak.items())


def peak_table(
    cases: list[tuple[int, str]], shares: dict[tuple[int, str], list[dict[str, Share]]]
) -> list[str]:
    """What the tree is made of at its peak: each role's RSS and, of it, mapped files (code)."""

    def cell(runs: list[dict[str, Share]], r: str) -> str:
        got = [x[r] for x in runs if r in x]
        if not got:
            return "-"
        rss = statistics.median(x.rss for x in got) / 2**20
        files = statistics.median(x.files for x in got) / 2**20
        n = max(x.procs for x in got)
        return f"{rss:.0f} MB ({files:.0f} MB files){f', {n} processes' if n > 1 else ''}"

    return [
        "| at the tree's peak (median) | " + " | ".join((RUN, DBT, OTHER)) + " |",
        "|---|---|---|---|",
        *(
            f"| {h} days{', ' + name if name else ''} | "
            + " | ".join(cell(shares[h, name], r) for r in (RUN, DBT, OTHER))
            + " |"
            for h, name in cases
        ),
    ]


def plot_nightly(
    path: Path,
    history: list[int],
    runs: dict[tuple[int, str], list[float]],
    peaks: dict[tuple[int, str], list[float]],
    nightly: int,
    n_runs: int,
) -> None:
    """Run time and tree peak against days loaded: a flat line is the target, a slope is cost
    the nightly pays for history it does not touch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hs = sorted(history)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, data, scale, label in (
        (ax1, runs, 1.0, "run, start to report (s)"),
        (ax2, peaks, 2**20, "whole-tree peak RSS (MB)"),
    ):
        med = [statistics.median(data[h, ""]) / scale for h in hs]
        lo = [med[i] - min(data[h, ""]) / scale for i, h in enumerate(hs)]
        hi = [max(data[h, ""]) / scale - med[i] for i, h in enumerate(hs)]
        ax.errorbar(hs, med, yerr=[lo, hi], marker="o", capsize=4)
        ax.set_xlabel("days of history loaded")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    ax1.set_title(f"nightly of {nightly:,} charges, median of {n_runs} (min..max)", fontsize=9)
    ax2.set_title("dbt, the run process and the emulator included", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plot: {path}")


def write_section(path: Path, name: str, text: str) -> None:
    """Replace the text between `<!-- bench:name -->` and `<!-- /bench:name -->` in `path`."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    doc = path.read_text() if path.exists() else ""
    block = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc:
        doc = doc[: doc.index(begin)] + block + doc[doc.index(end) + len(end) :]
    else:
        doc = doc.rstrip() + ("\n\n" if doc else "") + block + "\n"
    path.write_text(doc)


if __name__ == "__main__":
    main()
