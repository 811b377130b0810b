"""The nightly schedule, the 9 AM deadline and the alerts.

- `nightly_reconciliation` runs at 01:00 US-Eastern: yesterday plus a trailing re-statement
  window (>= the tolerance window T, so every day is re-evaluated until its status is final), as
  ONE run over the range. Dagster schedules do not catch up missed ticks; the trailing window
  covers a daemon that was down for fewer days than it spans.
- A time-partition freshness check on the report with ERROR severity (the default, WARN, alerts
  nobody), evaluated by a sensor: yesterday's report must exist by 09:00 ET.
- A deadline-at-risk sensor: from 07:00 ET, if yesterday's report is still missing, one alert a
  day, early enough for an engineer to act before finance opens it.
- A run-failure sensor: any failed run (a failed blocking ERROR check fails its run) alerts.
"""

from collections.abc import Sequence
from datetime import date, datetime, timedelta

import dagster as dg

from recon_assets.alerts import send_alert
from recon_assets.defs.report_assets import REPORT_KEY
from recon_assets.timewindows import BUSINESS_TZ

NIGHTLY_JOB = "nightly_reconciliation"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


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


def range_request(
    context: dg.ScheduleEvaluationContext, kind: str, days_back: int, start_date: date
) -> dg.RunRequest | dg.SkipReason:
    """One run over `[yesterday - days_back, yesterday]` (ET) at the tick's time, keyed by kind
    and day so a tick evaluated twice never launches twice."""
    now = context.scheduled_execution_time or datetime.now(BUSINESS_TZ)
    window = trailing_window(now.astimezone(BUSINESS_TZ).date(), days_back, start_date)
    if window is None:
        return dg.SkipReason("no complete US-Eastern day since RECON_START_DATE yet")
    first, last = window
    return dg.RunRequest(
        run_key=f"{kind}-{last.isoformat()}",
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
    )


class AlertResource(dg.ConfigurableResource):
    slack_webhook_url: str | None = None

    def send(self, text: str) -> bool:
        return send_alert(text, self.slack_webhook_url)


def build_automation(
    assets: Sequence[dg.AssetsDefinition],
    *,
    start_date: date,
    restate_days: int,
    schedule_cron: str = "0 1 * * *",
    deadline_cron: str = "0 9 * * *",
    at_risk_hour: int = 7,
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
    )
    def nightly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        return range_request(context, "nightly", restate_days, start_date)

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
        alerts.send(text)
        context.update_cursor(cursor)
        return dg.SkipReason(f"alerted: {text}")

    @dg.run_failure_sensor(
        name="run_failure_alert_sensor", default_status=dg.DefaultSensorStatus.RUNNING
    )
    def run_failure_alert(context: dg.RunFailureSensorContext, alerts: AlertResource) -> None:
        run = context.dagster_run
        message = context.failure_event.message or "no message"
        alerts.send(f"recon: run {run.run_id} of {run.job_name} failed: {message[:500]}")

    return {
        "jobs": [job],
        "schedules": [nightly_schedule, deep_restatement],
        "sensors": [freshness_sensor, deadline_at_risk, run_failure_alert],
        "asset_checks": list(freshness),
    }
