"""A Stripe pull over several processes: for ranges whose pull is bound by the client's CPU.

One process pulls with threads that share its GIL, and most of a pull's CPU is Python (the SDK,
requests, the page decode), so one process gets about one core however many threads it runs.
Against Stripe's live rate (100 requests/s) that is plenty: one process uses under half a core
there (bench/bench_rate_limited_pull.py). Against the local emulator, which answers as fast as
it can, a backfill is CPU-bound: with the emulator in its own process, 2 processes of 2 threads
pulled 309 k charges at 42-46 k charges/s against 32 k/s for one (bench/bench_backfill.py
measures it inside a run).

Every source's pull goes through `pull_in_processes(source, ...)`, and those that gain from it
(`StripeSource.processes_pay`: the charges) get several processes for a long range. The days
are dealt to the processes in turn (day i to process i mod n), so each gets a like share of a
range whose volume trends; each process runs `pull` on its days (and, for a source pulled by
parent, those days' parents) with its share of the rate limit (Stripe limits the account, so
the shares add up to the configured rate) and writes its days' files itself. The parent
publishes nothing until every process has reported: a failure in any process stops the others
(each aborts its writers, as one pull does) and removes the run's files of every day, so the
stage keeps no file of the run and every day's manifest still names its previous version.

Only a local stage folder is shared this way: the S3 stage's client cannot cross a process
boundary, and a production pull against Stripe gains nothing from a second process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import pickle
import signal
import time
import traceback
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date
from multiprocessing.connection import Connection, wait
from types import FrameType
from typing import Any

from recon_assets.child_processes import die_with_parent, name_process
from recon_assets.stage.manifest import publish_manifest
from recon_assets.stage.result import StageResult
from recon_assets.stage.store import LocalStageStore, StageStore
from recon_assets.stage.writer import DEFAULT_ROW_GROUP_ROWS, staged_key
from recon_assets.stripe.client import ClientSpec
from recon_assets.stripe.pull import PullResult, pull
from recon_assets.stripe.sources import CHARGES, SOURCES, StripeSource
from recon_assets.timewindows import Window

PULL_PROCESS_NAME = "recon-pull"
"""What each pull process is called in `ps` and `top` (its `comm`)."""

MIN_DAYS_PER_PROCESS = 5
"""A process is worth its start (~1 s to spawn and import) only with a few days to pull: the
nightly's 4 days (yesterday and 3 restated) stay in one process."""


def process_count(
    requested: int, days: int, store: StageStore, source: StripeSource = CHARGES
) -> int:
    """How many processes a pull of `days` days of `source` gets: 1 unless it has days enough
    for more, the stage is a local folder and several processes pay for that source
    (`StripeSource.processes_pay`)."""
    if not isinstance(store, LocalStageStore) or not source.processes_pay:
        return 1
    return max(1, min(requested, days // MIN_DAYS_PER_PROCESS))


def deal_days(days: Sequence[date], n: int) -> list[list[date]]:
    """`days`, sorted, dealt to `n` shares in turn; no share is empty."""
    ordered = sorted(set(days))
    return [share for i in range(n) if (share := ordered[i::n])]


def merge_results(run_id: str, parts: Sequence[StageResult], seconds: float) -> StageResult:
    """The result of one pull over the days of every part (parts cover disjoint days)."""
    counters: Counter[str] = Counter()
    drift_fields: Counter[str] = Counter()
    drift_statuses: Counter[str] = Counter()
    for p in parts:
        counters.update(p.counters)
        drift_fields.update(p.drift_fields)
        drift_statuses.update(p.drift_statuses)
    days = sorted(d for p in parts for d in p.days)
    if len(set(days)) != len(days):
        raise ValueError("the parts of a pull overlap in days")
    by_day = {d: c for p in parts for d, c in p.per_day.items()}
    return StageResult(
        run_id=run_id,
        days=days,
        per_day={d: by_day[d] for d in days},
        files=sorted((f for p in parts for f in p.files), key=lambda f: f.day),
        quarantine_files=sorted(
            (f for p in parts for f in p.quarantine_files), key=lambda f: f.day
        ),
        counters=dict(counters),
        seconds=seconds,
        drift_fields=drift_fields,
        drift_statuses=drift_statuses,
        manifests=sorted((m for p in parts for m in p.manifests), key=lambda m: m.day),
    )


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(f"pull process stopped (signal {signum})")


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling as itself, else a RuntimeError that names it and where."""
    with contextlib.suppress(Exception):
        back = pickle.loads(pickle.dumps(exc))
        if type(back) is type(exc):
            return exc
    text = "".join(traceback.format_exception(exc)).rstrip()
    return RuntimeError(f"{type(exc).__name__}: {exc}\n{text}")


def _pull_share(
    conn: Connection,
    dataset: str,
    spec: ClientSpec,
    store: StageStore,
    days: list[date],
    run_id: str,
    rate_share: int,
    options: dict[str, Any],
) -> None:
    """In the child: pull `days` of the source staged into `dataset` (a name crosses the process
    boundary, the spec's validators do not), write their files, report the result (or the
    failure)."""
    die_with_parent()
    name_process(PULL_PROCESS_NAME)
    # stopped by the parent (a sibling failed): unwind through pull, which aborts its writers,
    # so no file of this process is left on the stage
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        source = SOURCES[dataset]
        result = pull(source, spec.build(rate_share), store, days, run_id, publish=False, **options)
        conn.send(("ok", result))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            conn.send(("error", _portable(exc)))
    finally:
        conn.close()


def pull_in_processes(
    source: StripeSource,
    spec: ClientSpec,
    store: StageStore,
    days: Sequence[date],
    run_id: str,
    *,
    processes: int,
    windows_per_day: int,
    concurrency: int,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    publish: bool = True,
    parents: Mapping[date, Sequence[tuple[str, Window]]] | None = None,
) -> PullResult:
    """`pull` of `source` over `days` in up to `processes` processes (`process_count` decides).

    The same result, files and guarantees as one `pull`: every record fetched is staged or
    quarantined and counted per day, and with `publish=False` nothing becomes current. With
    `parents` (a source pulled by parent), each process gets the parents of its own days."""
    n = process_count(processes, len(set(days)), store, source)
    options: dict[str, Any] = {
        "windows_per_day": windows_per_day,
        "concurrency": concurrency,
        "row_group_rows": row_group_rows,
    }
    if n == 1:
        return pull(
            source, spec.build(), store, days, run_id, publish=publish, parents=parents, **options
        )
    # the processes find the spec by its dataset: it must be that one, whatever its processes
    registered = SOURCES.get(source.dataset)
    if registered is None or source != dataclasses.replace(
        registered, processes_pay=source.processes_pay
    ):
        raise ValueError(f"{source.name} is not a registered source (SOURCES)")
    started = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    pending: dict[Connection, tuple[Any, list[date]]] = {}
    for share in deal_days(days, n):
        receive, send = ctx.Pipe(duplex=False)
        share_options = options
        if parents is not None:
            share_options = {**options, "parents": {d: list(parents.get(d, ())) for d in share}}
        proc = ctx.Process(
            target=_pull_share,
            args=(send, source.dataset, spec, store, share, run_id, n, share_options),
            name=f"recon-pull-{share[0]}",
        )
        proc.start()
        send.close()
        pending[receive] = (proc, share)
    parts: list[StageResult] = []
    failure: BaseException | None = None
    try:
        while pending and failure is None:
            for conn in wait(list(pending)):
                proc, share = pending.pop(conn)  # type: ignore[index]
                try:
                    kind, payload = conn.recv()  # type: ignore[union-attr]
                except EOFError:
                    proc.join()
                    kind, payload = (
                        "error",
                        RuntimeError(
                            f"the pull process for {len(share)} days from {share[0]} ended "
                            f"(exit code {proc.exitcode}) without reporting"
                        ),
                    )
                proc.join()
                if kind == "ok":
                    parts.append(payload)
                elif failure is None:
                    failure = payload
                    failure.add_note(f"in the pull process for {len(share)} days from {share[0]}")
    except BaseException as exc:  # the parent itself stopped: its children must too
        failure = exc
    finally:
        for proc, _ in pending.values():
            if proc.is_alive():
                proc.terminate()
        for proc, _ in pending.values():
            proc.join()
    if failure is not None:
        # Every process has ended. One may have finished its files and been stopped before it
        # reported them, so the run's files are removed by name (they carry the run id), not
        # by what was reported.
        for d in sorted(set(days)):
            for prefix in (source.dataset, source.quarantine_prefix):
                with contextlib.suppress(OSError):
                    store.delete(staged_key(prefix, source.dataset, d, run_id))
        raise failure
    result = merge_results(run_id, parts, time.perf_counter() - started)
    if publish:
        result.manifests = [publish_manifest(store, m) for m in result.manifests]
    return result
