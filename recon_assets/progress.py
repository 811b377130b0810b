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

from recon_assets.warehouse.loader import DATASETS

INVOCATION_TAG = "recon/invocation"


def materialize_range(
    defs: Any,
    first: date,
    last: date,
    *,
    instance: Any = None,
    selection: str | None = None,
    tags: dict[str, str] | None = None,
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
            **(tags or {}),
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
        raise_on_error=True,
    )


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
    if step in (
        "stripe_refunds",
        "stripe_balance_transactions",
        "stripe_payouts",
        "stripe_payout_transactions",
        "stripe_disputes",
    ):
        noun = step.removeprefix("stripe_").replace("_", " ")
        return (
            f"{_sum(metas, 'rows'):,} {noun} staged, {_sum(metas, 'quarantined'):,} quarantined "
            f"({_first(metas, 'run_requests'):,} requests)"
        )
    if step == "ledger_entries":
        return f"{_sum(metas, 'rows'):,} ledger entries staged"
    if step.startswith("raw__") and step.endswith(DATASETS):
        return f"{_sum(metas, 'rows'):,} rows loaded"
    if step == "raw__stripe_charge_events":
        return (
            f"{_first(metas, 'run_events_read'):,} Stripe events read, "
            f"{_first(metas, 'run_charges_repulled'):,} charges, "
            f"{_first(metas, 'run_refunds_repulled'):,} refunds, "
            f"{_first(metas, 'run_disputes_repulled'):,} disputes and "
            f"{_first(metas, 'run_payouts_repulled'):,} payouts re-pulled, "
            f"{_first(metas, 'run_days_reopened'):,} earlier days reopened"
        )
    if step == "raw__stripe_charge_lookups":
        return (
            f"{_first(metas, 'run_lookups'):,} charges, refunds, disputes, payouts and fee "
            "transactions "
            "looked up by id "
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
    "stripe_refunds": "pull Stripe refunds",
    "ledger_entries": "extract the ledger",
    "raw__stripe_charges": "load charges",
    "raw__stripe_refunds": "load refunds",
    "stripe_balance_transactions": "pull balance txns",
    "raw__stripe_balance_transactions": "load balance txns",
    "stripe_payouts": "pull payouts",
    "raw__stripe_payouts": "load payouts",
    "stripe_payout_transactions": "pull payout txns",
    "raw__stripe_payout_transactions": "load payout txns",
    "stripe_disputes": "pull disputes",
    "raw__stripe_disputes": "load disputes",
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
        reporter: _StepReporter | None = None
        while True:
            alive = worker.is_alive()
            if reporter is None:
                runs = instance.get_runs(filters=dg.RunsFilter(tags={INVOCATION_TAG: invocation}))
                if runs:
                    reporter = _StepReporter(instance, runs[0].run_id, say)
            if reporter is not None:
                reporter.poll()
            if not alive:
                break
            time.sleep(0.3)
        worker.join()
    if "error" in outcome:
        error = outcome["error"]
        # What the run raised is not always what failed: a step's error can be followed by
        # Dagster's own teardown failing (its compute-log `tail` not stopping, as when SIGTERM
        # was ignored before `recon` reset it), so the steps' own errors travel with it as notes.
        for failure in reporter.failures if reporter is not None else []:
            error.add_note(failure)
        raise error
    return outcome["result"]


class _StepReporter:
    """Says one line per finished step, reading only the run's events it has not read yet.

    Why a cursor: a 540-day backfill writes a materialization per day per asset (thousands), and
    re-reading every one of them each time a step ended took about a fifth of the run process's
    CPU (py-spy) while the run itself was still writing events. A step's materializations and
    check evaluations are logged before its STEP_SUCCESS, so they are all here when it ends.
    """

    def __init__(self, instance: Any, run_id: str, say: Callable[[str], None]) -> None:
        import dagster as dg

        self.instance, self.run_id, self.say = instance, run_id, say
        self.cursor: str | None = None
        self.metas: dict[str, list[dict[str, Any]]] = {}
        self.checks: dict[str, list[bool]] = {}
        self.failures: list[str] = []  # "<step>: <its error>", in the order they failed
        t = dg.DagsterEventType
        self.types = {
            t.STEP_SUCCESS,
            t.STEP_FAILURE,
            t.ASSET_MATERIALIZATION,
            t.ASSET_CHECK_EVALUATION,
        }

    def poll(self) -> None:
        import dagster as dg

        t = dg.DagsterEventType
        while True:
            conn = self.instance.get_records_for_run(
                self.run_id, cursor=self.cursor, of_type=self.types, limit=2000
            )
            for record in conn.records:
                e = record.event_log_entry
                ev = e.dagster_event
                step = e.step_key or "?"
                if ev.event_type == t.ASSET_MATERIALIZATION:
                    mat = ev.step_materialization_data.materialization
                    self.metas.setdefault(step, []).append(
                        {"__key__": mat.asset_key, **{k: v.value for k, v in mat.metadata.items()}}
                    )
                elif ev.event_type == t.ASSET_CHECK_EVALUATION:
                    self.checks.setdefault(step, []).append(bool(ev.event_specific_data.passed))
                else:
                    self._say_step(step, ev)
            self.cursor = conn.cursor
            if not conn.has_more:
                return

    def _say_step(self, step: str, ev: Any) -> None:
        import dagster as dg

        seconds = (getattr(ev.event_specific_data, "duration_ms", None) or 0) / 1000
        if ev.event_type == dg.DagsterEventType.STEP_FAILURE:
            self.say(f"  FAILED {LABELS.get(step, step):<22} after {seconds:.1f} s (see the log)")
            data = ev.step_failure_data
            # Dagster wraps what the step raised: its own message is in the error's causes
            messages, error = [], data.error
            while error is not None:
                messages.append(error.message.strip())
                error = error.cause
            if data.user_failure_data and data.user_failure_data.description:
                messages.insert(0, data.user_failure_data.description)
            self.failures.append(f"{step}: " + "\n".join(messages))
            return
        checks = self.checks.pop(step, [])
        what = describe_step(step, self.metas.pop(step, []), (sum(checks), len(checks)))
        self.say(f"  {LABELS.get(step, step):<22} {what:<76} {seconds:6.1f} s")
