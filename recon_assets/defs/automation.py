"""The nightly schedule, the 9 AM deadline and the alerts.

- `nightly_reconciliation` runs at 01:00 US-Eastern: yesterday plus a trailing re-statement
  window (>= the tolerance window T, so every day is re-evaluated until its status is final), as
  ONE run over the range. Dagster schedules do not catch up missed ticks, so the tick does: it
  starts the range at the earliest day of the last RECON_CATCHUP_DAYS whose report is missing or
  whose last attempt failed (a daemon that was down N nights is caught up by one run).
- A time-partition freshness check on the report with ERROR severity (the default, WARN, alerts
  nobody), evaluated by a sensor: yesterday's report must exist by 09:00 ET.
- A deadline-at-risk sensor: from 07:00 ET, if yesterday's report is still missing, one alert a
  day, early enough for an engineer to act before finance opens it.
- Run-status sensors: a failed run alerts once (naming its days, failed step and failed checks);
  a run that succeeded but has a failed ERROR check (the 09:00 freshness check runs in its own
  run) alerts once per check; optionally, "report ready" once the nightly wrote yesterday's
  report. Dagster's run-status cursor is what makes each alert go out exactly once.
- A dead-worker sensor: a started run whose worker process is gone is marked failed within
  about a minute (so its failure alert goes out and the runs queued behind the one-writer pool
  start), not after its maximum runtime.
"""

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import dagster as dg

from recon_assets.alerts import Alert, LogSink, SlackSink, WebhookSink, send_alert
from recon_assets.defs.report_assets import REPORT_KEY
from recon_assets.timewindows import BUSINESS_TZ

NIGHTLY_JOB = "nightly_reconciliation"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"


def trailing_window(today: date, restate_days: int, start_date: date) -> tuple[date, date] | None:
    """The inclusive partition range [yesterday - restate_days, yesterday], clipped at the
    first partition; None before there is any complete day."""
    last = today - timedelta(days=1)
    if last < start_date:
        return None
    return max(start_date, last - timedelta(days=restate_days)), last


def at_risk_alert(
    now: datetime,
    start_date: date,
    at_risk_hour: int,
    materialized: set[str],
    alerted_for: str | None,
) -> tuple[str | None, str | None]:
    """(alert text or None, new cursor): alert once a day, from `at_risk_hour` ET, while
    yesterday's report partition is missing."""
    now = now.astimezone(BUSINESS_TZ)
    yesterday = (now - timedelta(days=1)).date()
    day = yesterday.isoformat()
    if now.hour < at_risk_hour or yesterday < start_date or alerted_for == day:
        return None, alerted_for
    if day in materialized:
        return None, alerted_for
    return (
        f"recon: the reconciliation report for {day} is not ready at {now:%H:%M} ET; finance "
        f"ops expects it at 09:00 ET. Check the '{NIGHTLY_JOB}' runs in Dagster.",
        day,
    )


def catch_up_window(
    today: date, restate_days: int, start_date: date, done: set[date], catchup_days: int
) -> tuple[date, date] | None:
    """The trailing window, started earlier at the first day of the last `catchup_days` that is
    not `done` (its report missing, or its last attempt failed): missed nights in one run."""
    window = trailing_window(today, restate_days, start_date)
    if window is None:
        return None
    first, last = window
    lookback = max(start_date, last - timedelta(days=max(catchup_days, 1) - 1))
    d = lookback
    while d < first:
        if d not in done:
            return d, last
        d += timedelta(days=1)
    return first, last


def range_request(
    context: dg.ScheduleEvaluationContext,
    kind: str,
    days_back: int,
    start_date: date,
    done: Callable[[date, date], set[date]] | None = None,
    catchup_days: int = 0,
) -> dg.RunRequest | dg.SkipReason:
    """One run over `[yesterday - days_back, yesterday]` (ET) at the tick's time, started
    earlier to catch up missed days when `done` says which days are done, keyed by kind and
    day so a tick evaluated twice never launches twice."""
    now = context.scheduled_execution_time or datetime.now(BUSINESS_TZ)
    today = now.astimezone(BUSINESS_TZ).date()
    window = trailing_window(today, days_back, start_date)
    if window is None:
        return dg.SkipReason("no complete US-Eastern day since RECON_START_DATE yet")
    first, last = window
    if done is not None and catchup_days:
        lookback = max(start_date, last - timedelta(days=catchup_days - 1))
        caught = catch_up_window(today, days_back, start_date, done(lookback, last), catchup_days)
        assert caught is not None
        first = caught[0]
    tags = {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()}
    if first < window[0]:
        tags["recon/caught_up_from"] = first.isoformat()
    return dg.RunRequest(run_key=f"{kind}-{last.isoformat()}", tags=tags)


def run_day_tags(tags: Mapping[str, str]) -> tuple[str, str] | None:
    """The first and last partition keys (inclusive) a run targets, as Dagster tagged them: a
    range run's range tags, else a single partition's tag."""
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if start and end:
        return start, end
    day = tags.get(PARTITION_TAG)
    return (day, day) if day else None


def run_day_span(tags: Mapping[str, str]) -> tuple[date, date] | None:
    """The inclusive day range a run targets."""
    keys = run_day_tags(tags)
    return None if keys is None else (date.fromisoformat(keys[0]), date.fromisoformat(keys[1]))


def reported_days(instance: dg.DagsterInstance, first: date, last: date) -> set[date]:
    """Days in [first, last] whose report is materialized and whose last attempt did not fail.

    Read from the report's materializations and the failed runs, not from Dagster's partition
    status: Dagster marks a partition FAILED through the run's per-partition planned events, and
    an instance that writes one planned event per asset for a range run
    (`DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS`, which docs/operations.md gives for long
    backfills) never marks one failed. A day is not done when a run that covered it failed after
    the day's latest report (a run that wrote the report itself and failed later still counts
    as done, as in Dagster's own status); a cancelled run is someone's decision, not a failure."""
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    latest: dict[date, float] = {}
    for day in days:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=REPORT_KEY, asset_partitions=[day.isoformat()]),
            limit=1,
        ).records
        if records:
            latest[day] = records[0].timestamp
    if not latest:
        return set()
    # Only a failure after a day's latest report undoes it: older runs need not be read.
    failed = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE],
            created_after=datetime.fromtimestamp(min(latest.values()), BUSINESS_TZ),
        )
    )
    done = set(latest)
    for record in failed:
        run = record.dagster_run
        span = run_day_span(run.tags)
        if span is None or (run.asset_selection and REPORT_KEY not in run.asset_selection):
            continue
        created = record.create_timestamp.timestamp()
        done -= {d for d in latest if span[0] <= d <= span[1] and created > latest[d]}
    return done


class AlertResource(dg.ConfigurableResource):
    """Where alerts go. Every field that is a credential comes from an `EnvVar`."""

    log_path: str | None = None
    """Locally: a JSON-lines alerts log under RECON_HOME (the console always gets them)."""
    webhook_url: str | None = None
    """A generic JSON webhook (a Slack incoming webhook reads its `text`)."""
    slack: dg.ConfigurableResource | None = None
    """dagster-slack's SlackResource (imported only when a bot token is set)."""
    slack_channel: str | None = None
    slack_api_url: str | None = None
    """Only to point the Slack client elsewhere (a test's local server); unset in production."""
    dagster_url: str | None = None
    """The webserver's base URL: alerts link to `<url>/runs/<run id>`."""
    report_ready: bool = False

    def run_url(self, run_id: str) -> str | None:
        return f"{self.dagster_url.rstrip('/')}/runs/{run_id}" if self.dagster_url else None

    def _slack_client(self) -> Any:
        assert self.slack is not None
        client = self.slack.get_client()
        if self.slack_api_url:
            client.base_url = self.slack_api_url
        return client

    def sinks(self) -> list[Any]:
        out: list[Any] = [LogSink(Path(self.log_path) if self.log_path else None)]
        if self.webhook_url:
            out.append(WebhookSink(self.webhook_url))
        if self.slack is not None and self.slack_channel:
            out.append(SlackSink(self._slack_client, self.slack_channel))
        return out

    def send(self, alert: Alert) -> dict[str, bool]:
        return send_alert(alert, self.sinks())


def run_days(run: dg.DagsterRun) -> str | None:
    """The US-Eastern day (or range) a run covered, as its tags say it (not parsed: an alert
    must go out whatever the tags hold)."""
    keys = run_day_tags(run.tags)
    if keys is None:
        return None
    start, end = keys
    return start if start == end else f"{start}..{end}"


def root_cause(error: Any) -> str:
    """The innermost error's message: Dagster wraps what the step raised."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return str(getattr(error, "message", error)).strip()


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """`asset: check` of every ERROR-severity check that failed in the run, with what the
    check said (the tie-out's names the day and the amount)."""
    out = []
    for rec in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        ev = rec.dagster_event.event_specific_data if rec.dagster_event else None
        if ev is None or ev.passed or ev.severity != dg.AssetCheckSeverity.ERROR:
            continue
        said = f" ({ev.description})" if getattr(ev, "description", None) else ""
        out.append(f"{ev.asset_key.to_user_string()}: {ev.check_name}{said}")
    return sorted(set(out))


_WORKER_PID = re.compile(r"Started process for run \(pid: (\d+)\)")
_CLOCK_SLACK_S = 2.0
"""A process's creation time is read against the boot time, which Linux gives in whole seconds."""


class Worker(NamedTuple):
    pid: int
    reported_at: float
    """When the worker said it had started (unix seconds): it was created before that."""


def run_worker(instance: dg.DagsterInstance, run_id: str) -> Worker | None:
    """A launched run's worker: its pid and when it reported it, from the engine event it
    writes once it runs (a run executed in a CLI's own process has none: not ours to judge)."""
    for rec in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        m = _WORKER_PID.search(rec.message or "")
        if m:
            return Worker(int(m.group(1)), rec.timestamp)
    return None


def worker_alive(worker: Worker) -> bool:
    """Whether the worker's process still runs: a zombie is dead, and so is a process created
    after the worker reported its pid (the kernel gave the pid to another process since).

    Its command line cannot tell: a worker a code server starts is a spawned multiprocessing
    child (`python -c "from multiprocessing.spawn import ..."`) that does not name its run."""
    import psutil

    try:
        proc = psutil.Process(worker.pid)
        if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        return proc.create_time() <= worker.reported_at + _CLOCK_SLACK_S
    except psutil.Error:
        return False


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every started run of this machine's run launcher whose worker is gone; the
    run ids marked. Only the default run launcher's workers are processes of this machine (other
    launchers have Dagster's own worker health check)."""
    if not isinstance(instance.run_launcher, dg.DefaultRunLauncher):
        return []
    failed = []
    started = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
    for record in instance.get_run_records(filters=started):
        run = record.dagster_run
        worker = run_worker(instance, run.run_id)
        if worker is None or worker_alive(worker):
            continue
        now = instance.get_run_by_id(run.run_id)  # it may have ended as we looked
        if now is None or now.status != dg.DagsterRunStatus.STARTED:
            continue
        instance.report_run_failed(
            now, message=f"the run's worker process (pid {worker.pid}) is gone: it was killed or died "
            "without ending the run; marked failed so the runs queued behind it can start",
        )  # fmt: skip
        failed.append(run.run_id)
    return failed


def build_automation(
    assets: Sequence[dg.AssetsDefinition],
    *,
    start_date: date,
    restate_days: int,
    catchup_days: int = 31,
    schedule_cron: str = "0 1 * * *",
    deadline_cron: str = "0 9 * * *",
    at_risk_hour: int = 7,
    dead_run_check_seconds: int = 60,
    deep_restate_days: int = 120,
    deep_restate_cron: str = "0 3 * * 0",
) -> dict[str, list]:
    job = dg.define_asset_job(
        NIGHTLY_JOB,
        selection=dg.AssetSelection.assets(*assets),
        description="Pull, load and reconcile yesterday and the trailing re-statement window.",
    )

    @dg.schedule(
        name="nightly_reconciliation_schedule",
        job=job,
        cron_schedule=schedule_cron,
        execution_timezone=BUSINESS_TZ.key,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Every night: one run over yesterday and the {restate_days} days before it "
            "(late changes re-stated), started earlier at the first day of the last "
            f"{catchup_days} whose report is missing or whose last attempt failed, so nights "
            "the daemon missed are caught up by the same single run."
        ),
    )
    def nightly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        def done(first: date, last: date) -> set[date]:
            return reported_days(context.instance, first, last)

        return range_request(context, "nightly", restate_days, start_date, done, catchup_days)

    @dg.schedule(
        name="deep_restatement_schedule",
        job=job,
        cron_schedule=deep_restate_cron,
        execution_timezone=BUSINESS_TZ.key,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Weekly, re-pull and re-reconcile the last {deep_restate_days} days as one range "
            "run: refunds, disputes and settlements that land after the nightly window (and "
            "after Stripe's 30 days of events) reach their charge's own day. Nothing else "
            "changes: the marts rebuild only what the data touches."
        ),
    )
    def deep_restatement(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        return range_request(context, "deep", deep_restate_days, start_date)

    # Deliberately not FreshnessPolicy (which Dagster now suggests): a policy looks at the latest
    # materialization of ANY partition, so backfilling an old day would look fresh. This check
    # asks for yesterday's partition specifically.
    freshness = dg.build_time_partition_freshness_checks(
        assets=[REPORT_KEY],
        deadline_cron=deadline_cron,
        timezone=BUSINESS_TZ.key,
        severity=dg.AssetCheckSeverity.ERROR,
    )
    freshness_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=freshness,
        name="report_freshness_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )

    @dg.sensor(
        name="deadline_at_risk_sensor",
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"From {at_risk_hour:02d}:00 ET, alert once a day if yesterday's report is missing.",
    )
    def deadline_at_risk(
        context: dg.SensorEvaluationContext, alerts: AlertResource
    ) -> dg.SkipReason:
        text, cursor = at_risk_alert(
            datetime.now(BUSINESS_TZ),
            start_date,
            at_risk_hour,
            set(context.instance.get_materialized_partitions(REPORT_KEY)),
            context.cursor,
        )
        if text is None:
            return dg.SkipReason("report on time, not yet at-risk time, or already alerted")
        alerts.send(Alert("deadline_at_risk", "the report is not ready", text, day=cursor))
        context.update_cursor(cursor)
        return dg.SkipReason(f"alerted: {text}")

    @dg.run_failure_sensor(
        name="run_failure_alert_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=False,
        description=(
            "One alert per failed run: its days, the step that failed and its message, the "
            "ERROR checks that failed, and a link to the run."
        ),
    )
    def run_failure_alert(context: dg.RunFailureSensorContext, alerts: AlertResource) -> None:
        run = context.dagster_run
        steps = [
            f"step {e.step_key}: {root_cause(e.step_failure_data.error)[:400]}"
            for e in context.get_step_failure_events()
            if e.step_failure_data.error is not None
        ]
        message = "\n".join(steps) or context.failure_event.message or "no message"
        checks = failed_checks(context.instance, run.run_id)
        detail = message[:1200] + (f"\nFailed checks: {', '.join(checks)}" if checks else "")
        alerts.send(
            Alert(
                "run_failed",
                f"run of {run.job_name} failed",
                detail,
                day=run_days(run),
                run_url=alerts.run_url(run.run_id),
                run_id=run.run_id,
            )
        )

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name="run_success_alert_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=False,
        description=(
            "For each successful run: one alert per failed ERROR check (the 09:00 freshness "
            "check is evaluated in its own run), and, if RECON_ALERT_REPORT_READY is set, "
            "'report ready' when the run wrote yesterday's report."
        ),
    )
    def run_success_alert(context: dg.RunStatusSensorContext, alerts: AlertResource) -> None:
        run = context.dagster_run
        for check in failed_checks(context.instance, run.run_id):
            alerts.send(
                Alert(
                    "check_failed",
                    f"check {check} failed",
                    "An ERROR-severity check failed; its day is not trustworthy until it passes.",
                    day=run_days(run),
                    run_url=alerts.run_url(run.run_id),
                    run_id=run.run_id,
                )
            )
        if alerts.report_ready:
            yesterday = (datetime.now(BUSINESS_TZ) - timedelta(days=1)).date().isoformat()
            days = {
                e.dagster_event.event_specific_data.materialization.partition
                for e in context.instance.all_logs(
                    run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
                )
                if e.dagster_event
                and e.dagster_event.event_specific_data.materialization.asset_key == REPORT_KEY
            }
            if yesterday in days:
                alerts.send(
                    Alert(
                        "report_ready",
                        "the reconciliation report is ready",
                        "Yesterday's report was written.",
                        day=yesterday,
                        run_url=alerts.run_url(run.run_id),
                        run_id=run.run_id,
                    )
                )

    @dg.sensor(
        name="dead_run_worker_sensor",
        minimum_interval_seconds=dead_run_check_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Every minute: a started run whose worker process is gone (killed, out of memory, "
            "its machine's process table says so) is marked failed, which frees the "
            "recon_writer pool for the runs queued behind it and sends the failure alert. "
            "Dagster's run monitoring cannot see a dead worker of the default run launcher, "
            "so without this such a run held the pool until its maximum runtime (3 h)."
        ),
    )
    def dead_run_worker(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        failed = fail_dead_runs(context.instance)
        return dg.SkipReason(
            f"marked failed (worker gone): {', '.join(failed)}" if failed else "no dead worker"
        )

    return {
        "jobs": [job],
        "schedules": [nightly_schedule, deep_restatement],
        "sensors": [
            freshness_sensor,
            deadline_at_risk,
            run_failure_alert,
            run_success_alert,
            dead_run_worker,
        ],
        "asset_checks": list(freshness),
    }
