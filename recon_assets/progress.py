"""Run the graph over a range in ONE run and say, step by step, what it did: for people.

Dagster's console log (DEBUG lines, framework warnings) and dbt's output go to a log file the
caller names; the terminal gets one line per step (what, how many, how long) as each step ends.
The run happens on a worker thread against the caller's instance; this thread follows it through
the instance's event log, which is also what the UI reads.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import IO, Any

INVOCATION_TAG = "recon/invocation"


@contextlib.contextmanager
def quiet(log: IO[bytes]) -> Iterator[Callable[[str], None]]:
    """Everything written to stdout and stderr meanwhile (fds 1 and 2: Dagster's console log,
    dbt's output, warnings, subprocesses) goes to `log`; yields a `say` that still reaches the
    terminal. Python warnings are not shown at all."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = os.fdopen(os.dup(saved[1]), "w", encoding="utf-8", errors="replace", buffering=1)

    def say(line: str) -> None:
        terminal.write(line + "\n")
        terminal.flush()

    for fd in (1, 2):
        os.dup2(log.fileno(), fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield say
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, keep in saved.items():
            os.dup2(keep, fd)
            os.close(keep)
        terminal.close()


def _sum(metas: list[dict[str, Any]], key: str) -> int:
    return sum(int(m[key]) for m in metas if key in m)


def _first(metas: list[dict[str, Any]], key: str, default: object = 0) -> Any:
    return next((m[key] for m in metas if key in m), default)


def describe_step(step: str, metas: list[dict[str, Any]], checks: tuple[int, int]) -> str:
    """What a step did, from the metadata of its materializations (one per day)."""
    if step == "stripe_charges":
        return (
            f"{_sum(metas, 'rows'):,} charges staged, {_sum(metas, 'quarantined'):,} quarantined "
            f"({_first(metas, 'run_requests'):,} requests, "
            f"{float(_first(metas, 'run_rows_per_s', 0.0)):,.0f} charges/s)"
        )
    if step == "ledger_entries":
        return f"{_sum(metas, 'rows'):,} ledger entries staged"
    if step.startswith("raw__") and step.endswith(("stripe_charges", "ledger_entries")):
        return f"{_sum(metas, 'rows'):,} rows loaded"
    if step == "raw__stripe_charge_events":
        return (
            f"{_first(metas, 'run_events_read'):,} Stripe events read, "
            f"{_first(metas, 'run_charges_repulled'):,} charges re-pulled, "
            f"{_first(metas, 'run_days_reopened'):,} earlier days reopened"
        )
    if step == "raw__stripe_charge_lookups":
        return (
            f"{_first(metas, 'run_lookups'):,} charges looked up by id "
            f"({_first(metas, 'run_found'):,} found, {_first(metas, 'run_not_found_404'):,} not "
            "found)"
        )
    if step == "reconciliation_report":
        return f"{len(metas)} day reports written"
    passed, total = checks
    if total:
        return (
            f"{len({m.get('__key__') for m in metas})} models built, {passed}/{total} tests passed"
        )
    return f"{len(metas)} materializations"


LABELS = {
    "stripe_charges": "pull Stripe charges",
    "ledger_entries": "extract the ledger",
    "raw__stripe_charges": "load charges",
    "raw__ledger_entries": "load ledger entries",
    "raw__stripe_charge_events": "Stripe events",
    "raw__stripe_charge_lookups": "look-ups by id",
    "recon_dbt_models": "dbt build",
    "reconciliation_report": "report",
}


def run_range(defs: Any, first: date, last: date, instance: Any, log_path: Path) -> Any:
    """Materialize [first, last] as one run, quietly, one line per finished step; returns the
    run's result (or raises what the run raised, after saying which step failed)."""
    import dagster as dg

    from recon_assets.cli import materialize_range

    invocation = uuid.uuid4().hex
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = materialize_range(
                defs, first, last, instance=instance, tags={INVOCATION_TAG: invocation}
            )
        except BaseException as exc:
            outcome["error"] = exc

    with open(log_path, "ab") as log, quiet(log) as say:
        worker = threading.Thread(target=work, name="recon-run", daemon=True)
        worker.start()
        seen: set[str] = set()
        run_id = None
        while True:
            alive = worker.is_alive()
            if run_id is None:
                runs = instance.get_runs(filters=dg.RunsFilter(tags={INVOCATION_TAG: invocation}))
                run_id = runs[0].run_id if runs else None
            if run_id is not None:
                _report_steps(instance, run_id, seen, say)
            if not alive:
                break
            time.sleep(0.3)
        worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _report_steps(instance: Any, run_id: str, seen: set[str], say: Callable[[str], None]) -> None:
    import dagster as dg

    ends = instance.all_logs(
        run_id, of_type={dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    )
    fresh = [e for e in ends if e.step_key not in seen]
    if not fresh:
        return
    mats = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    evals = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    for e in fresh:
        seen.add(e.step_key)  # type: ignore[arg-type]
        step = e.step_key or "?"
        ev = e.dagster_event
        seconds = (getattr(ev.event_specific_data, "duration_ms", None) or 0) / 1000
        if ev.event_type == dg.DagsterEventType.STEP_FAILURE:
            say(f"  FAILED {LABELS.get(step, step):<22} after {seconds:.1f} s (see the log)")
            continue
        metas = []
        for m in mats:
            if m.step_key == step:
                mat = m.dagster_event.step_materialization_data.materialization
                metas.append(
                    {"__key__": mat.asset_key, **{k: v.value for k, v in mat.metadata.items()}}
                )
        step_evals = [c for c in evals if c.step_key == step]
        passed = sum(1 for c in step_evals if c.dagster_event.event_specific_data.passed)
        what = describe_step(step, metas, (passed, len(step_evals)))
        say(f"  {LABELS.get(step, step):<22} {what:<76} {seconds:6.1f} s")
