"""Backfill time and memory against volume, and what that says about 8 M charges (issue 11).

Each case `DAYSxPERDAY` is a first backfill of DAYS days at PERDAY charges a day into a fresh
RECON_HOME (local mode: the project's Stripe emulator, the embedded Postgres ledger, DuckDB),
run as ONE Dagster run over the range by `recon backfill`, in-process executor, exactly as the
Dagster UI launches a single-run backfill. Measured: the run from its start to the report (as
`recon backfill` prints it), the command's wall time (the code location load, the embedded
Postgres and the seeding included), the peak RSS of the whole process tree (dbt and Postgres
included), sampled every 50 ms, over the run alone and over the whole command (whose local
ledger seeding, a stand-in for a ledger someone else runs, can peak higher than the run), and
each process's own peak over the run: the run process (the run worker: pull, stage, loads,
events, look-ups, report), each pull process (named `recon-pull`), the warehouse process
(`recon-warehouse`: the run's DuckDB loads and reads), dbt.

The emulator runs apart by default (`recon emulator` in a process of its own, outside the
measured tree, as Stripe is to a production run worker); `--emulator thread` runs it on a thread
of the run's own process, as a plain local `recon backfill` starts it, where its account's
memory counts as the run process's (`--emulator apart thread` shows both side by side).

The default cases separate the two things a backfill's time grows with: the charges (30 days
at 1 k, 5 k and 15 k a day) and the partitions (90 days at 5 k against 30 days at 15 k, the
same 450 k charges). A least-squares fit of run time = fixed + days x per-day cost + charges /
rate over the cases gives the extrapolation to 18 months x 15 k/day (8.2 M charges, 548 days).

    .venv/bin/python bench/bench_backfill.py                        # ~15 min
    .venv/bin/python bench/bench_backfill.py --cases 10x1000 10x5000 --runs 1   # ~3 min
    .venv/bin/python bench/bench_backfill.py --markdown docs/benchmarks.md \
        --plot docs/backfill_vs_volume.png

`--instances` runs each case against Dagster instances whose storage differs, interleaved:
`sqlite` (the local instance `recon backfill` creates), `postgres` (the storage block of
docs/operations.md, on a Postgres server the bench starts, a fresh database per run), and
`postgres-batched` / `postgres-batched-subset`, the same with Dagster's own event settings that
operations.md gives for backfills (DAGSTER_EVENT_BATCH_SIZE; then also
DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS). The Dagster Postgres server is not a child of
the run, so the tree's peak RSS leaves it out, as a production instance's database would be.

    .venv/bin/python bench/bench_backfill.py --cases 90x1000 30x10000 --runs 2 \
        --instances sqlite postgres postgres-batched postgres-batched-subset

`--variant K=V[,K=V]` (repeatable) compares recon settings the same way, e.g. the pull in one
process against two:

    .venv/bin/python bench/bench_backfill.py --cases 30x15000 --runs 2 \
        --instances postgres-batched-subset \
        --variant RECON_STRIPE_PULL_PROCESSES=1 --variant RECON_STRIPE_PULL_PROCESSES=2

Every run sets RECON_STRIPE_RATE=100000: the target is a backfill against the emulator
unthrottled, and the client's local default limit (200 requests/s, 20 k charges/s) is a throttle.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from bench_env import (  # noqa: E402
    INSTANCES,
    add_emulator_argument,
    dagster_postgres,
    emulator_apart,
    instance_home,
)
from bench_nightly import (  # noqa: E402
    PER_PROCESS,
    backfill,
    describe,
    describe_processes,
    env_for,
    machine,
    write_section,
)

TARGET_DAYS, TARGET_PER_DAY = 548, 15_000
REPO = BENCH.parent


def parse_case(text: str) -> tuple[int, int]:
    days, per_day = text.lower().split("x")
    return int(days), int(per_day)


def fit(cases: list[tuple[int, int]], secs: list[float]) -> tuple[float, float, float] | None:
    """Least squares of run seconds = a + b * days + c * charges; None when the cases cannot
    separate the three (fewer than three distinct shapes). numpy is the bench extra's: a run of
    one or two cases, which cannot be fitted, does not need it."""
    if len(set(cases)) < 3:
        return None
    import numpy as np

    x = np.array([[1.0, d, d * n] for d, n in cases])
    if np.linalg.matrix_rank(x) < 3:
        return None
    a, b, c = np.linalg.lstsq(x, np.array(secs), rcond=None)[0]
    return float(a), float(b), float(c)


Case = tuple[int, int]  # (days, charges per day)


@dataclasses.dataclass
class Measured:
    """Per (case, instance): every run's figures, in the order they ran."""

    runs: list[float] = dataclasses.field(default_factory=list)  # start to report, s
    walls: list[float] = dataclasses.field(default_factory=list)  # the command's wall, s
    run_peaks: list[float] = dataclasses.field(default_factory=list)  # whole-tree peak, run, MB
    command_peaks: list[float] = dataclasses.field(default_factory=list)  # the same, command
    steps: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # s per step
    # per role (the run process, each pull process, dbt), its largest process's peak, run, MB
    process_peaks: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    # the run process's peak during each step, MB: which step holds the run worker's memory
    step_peaks: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    # the warehouse process's (the run's DuckDB work), MB
    warehouse_step_peaks: dict[str, list[float]] = dataclasses.field(default_factory=dict)


UNTHROTTLED = {"RECON_STRIPE_RATE": "100000"}
"""The issue's backfill target is against the emulator unthrottled: the client's limiter too
(its local default, 200 requests/s, is 20 k charges/s, which a one-process pull nearly reached)."""


def setup_name(instance: str, variant: dict[str, str], emulator: str = "apart") -> str:
    where = "" if emulator == "apart" else ", emulator on the run's thread"
    return instance + "".join(f", {k}={v}" for k, v in variant.items()) + where


def parse_variant(text: str) -> dict[str, str]:
    """`K=V[,K=V...]`: settings a variant adds to every run of it."""
    return dict(kv.split("=", 1) for kv in text.split(",") if kv)


def measure(
    cases: list[Case],
    instances: list[str],
    runs: int,
    variants: list[dict[str, str]] | None = None,
    emulators: tuple[str, ...] = ("apart",),
) -> dict[tuple[Case, str], Measured]:
    """Each case on each instance (and each variant of recon's settings, and each place of the
    emulator) `runs` times, interleaved, every run a first backfill into a fresh home (and, on
    Postgres, a fresh Dagster database)."""
    last = date.today() - timedelta(days=1)
    setups = {
        setup_name(name, v, e): (name, v, e)
        for name in instances
        for v in (variants or [{}])
        for e in emulators
    }
    out = {(c, label): Measured() for c in cases for label in setups}
    serial = itertools.count()
    needs_pg = any(INSTANCES[name][0] == "postgres" for name in instances)
    with (
        tempfile.TemporaryDirectory(prefix="bench-dagster-pg-") as pg_root,
        dagster_postgres(needs_pg, Path(pg_root)) as server,
    ):
        for i in range(runs):
            for ((days, per_day), label), m in out.items():
                name, variant, emulator = setups[label]
                storage, dagster_env = INSTANCES[name]
                with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
                    os.chmod(tmp, 0o711)  # the embedded Postgres runs as `postgres`
                    first = last - timedelta(days=days - 1)
                    home = Path(tmp) / "home"
                    env = env_for(home, per_day, first, int(time.time()))
                    env.update(instance_home(home, storage, server, next(serial)), **dagster_env)
                    env.update({**UNTHROTTLED, **variant})
                    with emulator_apart(env, emulator) as where:
                        b = backfill({**env, **where}, first, last)
                m.runs.append(b.run_s)
                m.walls.append(b.wall)
                m.run_peaks.append(b.run_peak / 2**20)
                m.command_peaks.append(b.peak / 2**20)
                for step, secs in b.steps.items():
                    m.steps.setdefault(step, []).append(secs)
                for r, peak in b.process_peaks.items():
                    m.process_peaks.setdefault(r, []).append(peak / 2**20)
                for step, peak in b.step_peaks.items():
                    m.step_peaks.setdefault(step, []).append(peak / 2**20)
                for step, peak in b.warehouse_step_peaks.items():
                    m.warehouse_step_peaks.setdefault(step, []).append(peak / 2**20)
                print(
                    f"  run {i + 1}, {days} days x {per_day:,} ({days * per_day:,} charges), "
                    f"{label}: run {b.run_s:.1f} s, command {b.wall:.1f} s, "
                    f"tree peak {b.run_peak / 2**20:.0f} MB in the run, "
                    f"{b.peak / 2**20:.0f} MB in the command ({describe(b.at_peak)}); "
                    f"each process's own peak in the run: {describe_processes(b.process_peaks)}",
                    flush=True,
                )
    return out


def process_table(measured: dict[Any, Measured], columns: dict[Any, str]) -> list[str]:
    """Each process's own peak RSS over the run (median of the runs, min..max), per column:
    what a pod or container limit for that process must hold."""
    lines = [
        "| each process's own peak RSS, run | " + " | ".join(columns.values()) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for r in PER_PROCESS:
        cells = []
        for k in columns:
            xs = measured[k].process_peaks.get(r)
            spread = f" ({min(xs):.0f}..{max(xs):.0f})" if xs and len(xs) > 1 else ""
            cells.append(f"{statistics.median(xs):.0f} MB{spread}" if xs else "-")
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return lines


def step_table(
    steps: dict[Any, dict[str, list[float]]],
    columns: dict[Any, str],
    title: str = "step (seconds, median)",
    unit: str = "",
) -> list[str]:
    """The median of each step's figure (the steps every column has) per column, as table
    lines: seconds, or (`title`, `unit`) the run process's peak RSS during the step."""
    keys = list(columns)
    labels = [lb for lb in steps[keys[0]] if all(lb in steps[k] for k in keys)]
    lines = [f"| {title} | " + " | ".join(columns.values()) + " |", "|---|" + "---|" * len(keys)]
    for label in labels:
        cells = [f"{statistics.median(steps[k][label]):,.{0 if unit else 1}f}{unit}" for k in keys]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


STEP_PEAK_TITLE = "the run process's peak RSS during the step (median)"
WAREHOUSE_STEP_PEAK_TITLE = "the warehouse process's peak RSS during the step (median)"


def step_peak_tables(measured: dict[Any, Measured], columns: dict[Any, str]) -> list[str]:
    """The run process's peak per step, then the warehouse process's in the columns that had
    one (code from before it did not: its DuckDB work ran in the run process)."""
    lines = ["", *step_table({k: measured[k].step_peaks for k in columns}, columns,
                             STEP_PEAK_TITLE, " MB")]  # fmt: skip
    wh = {k: name for k, name in columns.items() if measured[k].warehouse_step_peaks}
    if wh:
        peaks = {k: measured[k].warehouse_step_peaks for k in wh}
        lines += ["", *step_table(peaks, wh, WAREHOUSE_STEP_PEAK_TITLE, " MB")]
    return lines


def by_figure(measured: dict[Any, Measured]) -> tuple[dict, dict, dict, dict, dict]:
    """The runs, walls, run peaks, command peaks and steps of each key, as the tables and the
    plot read them."""
    return (
        {k: m.runs for k, m in measured.items()},
        {k: m.walls for k, m in measured.items()},
        {k: m.run_peaks for k, m in measured.items()},
        {k: m.command_peaks for k, m in measured.items()},
        {k: m.steps for k, m in measured.items()},
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--cases", nargs="+", default=["30x1000", "30x5000", "30x15000", "90x5000"],
        help="DAYSxPERDAY, each a first backfill into a fresh home",
    )  # fmt: skip
    ap.add_argument("--runs", type=int, default=1, help="runs of each case (fresh home each)")
    ap.add_argument("--markdown", type=Path, help="write the section into this file")
    ap.add_argument("--plot", type=Path, help="draw time and peak RSS against charges (PNG)")
    ap.add_argument(
        "--instances", nargs="+", default=["sqlite"], choices=list(INSTANCES),
        help="Dagster instance storages to compare, interleaved (see the docstring)",
    )  # fmt: skip
    ap.add_argument(
        "--variant", action="append", default=[], metavar="K=V[,K=V]",
        help="recon settings to compare side by side (repeat; one may be empty: the defaults)",
    )  # fmt: skip
    add_emulator_argument(ap)
    args = ap.parse_args()
    if len(args.instances) > 1 or args.variant or len(args.emulator) > 1:
        return compare_instances(args)
    cases = [parse_case(c) for c in args.cases]

    print(machine())
    (name,) = args.instances
    measured = {
        c: m for (c, _), m in measure(cases, [name], args.runs, None, tuple(args.emulator)).items()
    }
    runs, walls, peaks, command_peaks, steps = by_figure(measured)

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    lines = [
        "| case | charges | run, start to report | command wall | charges/s (run) | "
        "whole-tree peak RSS, run | the same, command |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        n = c[0] * c[1]
        lines.append(
            f"| {c[0]} days x {c[1]:,} | {n:,} | {med(runs[c]):.0f} s | {med(walls[c]):.0f} s | "
            f"{n / med(runs[c]):,.0f} | {med(peaks[c]):,.0f} MB | "
            f"{med(command_peaks[c]):,.0f} MB |"
        )
    # Each process alone, then seconds per step, per case: which step's cost grows with what.
    names = {c: f"{c[0]} x {c[1]:,}" for c in cases}
    lines += ["", *process_table(measured, names), "", *step_table(steps, names)]
    lines += step_peak_tables(measured, names)
    notes = []
    lo = min(cases, key=lambda c: c[0] * c[1])
    hi = max(cases, key=lambda c: c[0] * c[1])
    coef = fit(cases, [med(runs[c]) for c in cases])
    if coef and (coef[1] < 0 or coef[2] <= 0):
        a, b, c = coef
        big_rate = hi[0] * hi[1] / med(runs[hi])
        target = TARGET_DAYS * TARGET_PER_DAY / big_rate
        notes += [
            f"- A fit of run = fixed + per-day cost + charges / rate does NOT hold here (it gives "
            f"{a:.0f} s + {b:.2f} s per day + charges / {1 / c if c > 0 else float('inf'):,.0f}"
            "/s: a negative term), so it is not used: the same charges over fewer days cost "
            "more, i.e. something grows faster than linearly with a day's volume.",
            f"- At the largest case's overall rate ({big_rate:,.0f} charges/s), "
            f"{TARGET_DAYS} days x {TARGET_PER_DAY:,} would take **{target / 60:.0f} min**; "
            f"target <= 10 min: {'MET' if target <= 600 else 'NOT MET'}.",
        ]
        coef = None
    if coef:
        a, b, c = coef
        target = a + b * TARGET_DAYS + c * TARGET_DAYS * TARGET_PER_DAY
        notes += [
            f"- Fit: run = {a:.0f} s + {b:.2f} s per day (partition) + charges / "
            f"{1 / c if c > 0 else float('inf'):,.0f} per s.",
            f"- Extrapolated to {TARGET_DAYS} days x {TARGET_PER_DAY:,} "
            f"({TARGET_DAYS * TARGET_PER_DAY / 1e6:.1f} M charges) as one run: "
            f"**{target / 60:.0f} min** ({a / 60:.1f} fixed + {b * TARGET_DAYS / 60:.1f} for "
            f"partitions + {c * TARGET_DAYS * TARGET_PER_DAY / 60:.1f} for charges); target "
            f"<= 10 min: {'MET' if target <= 600 else 'NOT MET'}.",
        ]
    if lo[0] * lo[1] != hi[0] * hi[1]:  # one volume: nothing to grow against
        notes.append(
            f"- Peak memory during the run from {lo[0] * lo[1]:,} to {hi[0] * hi[1]:,} charges: "
            f"{med(peaks[lo]):,.0f} -> {med(peaks[hi]):,.0f} MB "
            f"({med(peaks[hi]) / med(peaks[lo]):.2f}x for {hi[0] * hi[1] / (lo[0] * lo[1]):.0f}x "
            "the charges)."
        )
    text = "\n".join(
        [
            f"First backfills into fresh homes, one Dagster run each, medians of {args.runs} "
            f"run(s); local mode (emulator {args.emulator[0]}, embedded Postgres ledger, DuckDB); "
            f"Dagster instance: {name}; every run with {UNTHROTTLED}.",
            "",
            *lines,
            "",
            *notes,
            f"- Machine: {machine()}.",
        ]
    )
    print()
    print(text)
    if args.markdown:
        write_section(args.markdown, "backfill", text)
    if args.plot:
        plot(args.plot, cases, runs, peaks)


def compare_instances(args: argparse.Namespace) -> None:
    """Each case against each Dagster instance storage (and variant of recon's settings),
    interleaved: what Dagster's own event writes cost a backfill, what the operations guide's
    instance settings save, what a setting changes."""
    cases = [parse_case(c) for c in args.cases]
    print(machine())
    variants = [parse_variant(v) for v in args.variant] or None
    measured = measure(cases, args.instances, args.runs, variants, tuple(args.emulator))
    configs = list(measured)
    runs, walls, peaks, command_peaks, steps = by_figure(measured)

    def cell(xs: list[float], unit: str = " s") -> str:
        mid = statistics.median(xs)
        spread = f" ({min(xs):.0f}..{max(xs):.0f})" if len(xs) > 1 else ""
        return f"{mid:,.0f}{unit}{spread}"

    lines = [
        f"First backfills into fresh homes, one Dagster run each, medians of {args.runs} run(s) "
        "(min..max), cases and setups interleaved; local mode (emulator, embedded Postgres "
        f"ledger, DuckDB), every run with {UNTHROTTLED}.",
        "",
        "| case | Dagster instance, settings | run, start to report | vs the first | command wall | "
        "charges/s (run) | whole-tree peak RSS, run | the same, command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in configs:
        (days, per_day), name = key
        base = runs.get(((days, per_day), configs[0][1]))
        ratio = f"{statistics.median(base) / statistics.median(runs[key]):.2f}x" if base else "—"
        lines.append(
            f"| {days} days x {per_day:,} | {name} | {cell(runs[key])} | {ratio} | "
            f"{cell(walls[key])} | {days * per_day / statistics.median(runs[key]):,.0f} | "
            f"{cell(peaks[key], ' MB')} | {cell(command_peaks[key], ' MB')} |"
        )
    columns = {k: f"{k[0][0]} x {k[0][1]:,}, {k[1]}" for k in configs}
    lines += [
        "",
        *process_table(measured, columns),
        "",
        *step_table(steps, columns),
        *step_peak_tables(measured, columns),
        "",
        f"- Machine: {machine()}.",
    ]
    text = "\n".join(lines)
    print()
    print(text)
    if args.markdown:
        write_section(args.markdown, "backfill-instances", text)


def plot(
    path: Path,
    cases: list[tuple[int, int]],
    runs: dict[tuple[int, int], list[float]],
    peaks: dict[tuple[int, int], list[float]],
) -> None:
    """Run time and tree peak against charges, one marker per days-loaded, so a slope of time
    with charges (rate) and a jump between day counts (per-partition cost) are both visible."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for days in sorted({d for d, _ in cases}):
        sel = sorted((c for c in cases if c[0] == days), key=lambda c: c[1])
        xs = [d * n / 1000 for d, n in sel]
        ax1.plot(xs, [statistics.median(runs[c]) for c in sel], "o-", label=f"{days} days")
        ax2.plot(xs, [statistics.median(peaks[c]) for c in sel], "o-", label=f"{days} days")
    for ax, label in ((ax1, "run, start to report (s)"), (ax2, "whole-tree peak RSS (MB)")):
        ax.set_xlabel("charges backfilled (thousands)")
        ax.set_ylabel(label)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
    ax1.set_title("first backfill, one Dagster run", fontsize=9)
    ax2.set_title("dbt, Postgres and the emulator included", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
