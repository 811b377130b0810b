"""Alerting: the at-risk rule, and posting to a (local) Slack-style webhook without leaking it."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import dagster as dg
import pytest

from recon_assets.alerts import Alert, LogSink, WebhookSink, redact, send_alert
from recon_assets.defs.automation import AlertResource, at_risk_alert
from recon_assets.timewindows import BUSINESS_TZ

pytestmark = pytest.mark.timeout(60)
START = date(2024, 1, 1)


def et(*args: int) -> datetime:
    return datetime(*args, tzinfo=BUSINESS_TZ)


def test_no_alert_before_the_at_risk_hour() -> None:
    assert at_risk_alert(et(2024, 5, 2, 6, 59), START, 7, set(), None) == (None, None)


def test_alert_once_when_yesterdays_report_is_missing() -> None:
    text, cursor = at_risk_alert(et(2024, 5, 2, 7, 0), START, 7, {"2024-04-30"}, None)
    assert text is not None and "2024-05-01" in text and "09:00 ET" in text
    assert cursor == "2024-05-01"
    assert at_risk_alert(et(2024, 5, 2, 8, 0), START, 7, set(), cursor) == (None, cursor)


def test_no_alert_when_the_report_is_ready_or_before_the_first_partition() -> None:
    assert at_risk_alert(et(2024, 5, 2, 7, 30), START, 7, {"2024-05-01"}, None)[0] is None
    assert at_risk_alert(et(2024, 1, 1, 8, 0), START, 7, set(), None)[0] is None


def test_yesterday_is_the_us_eastern_one() -> None:
    # 03:30 UTC on May 2 is still May 1 in New York: yesterday is April 30
    from datetime import UTC

    now = datetime(2024, 5, 2, 3, 30, tzinfo=UTC)
    assert at_risk_alert(now, START, 0, set(), None)[1] == "2024-04-30"


@pytest.fixture
def server() -> Iterator[tuple[str, list[tuple[str, dict]]]]:
    """A local HTTP server standing in for a webhook and for Slack's Web API."""
    received: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"])).decode()
            if self.headers.get("Content-Type", "").startswith("application/json"):
                body = json.loads(raw)
            else:  # slack_sdk posts form-encoded
                body = {k: v[0] for k, v in parse_qs(raw).items()}
            received.append((self.path, body))
            ok = self.path.endswith(("/ok", "/api/chat.postMessage"))
            self.send_response(200 if ok else 500)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"ok": ok}).encode())

        def log_message(self, *args: object) -> None:
            pass

    srv = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", received
    srv.shutdown()


ALERT = Alert(
    "run_failed",
    "run of nightly_reconciliation failed",
    "ledger: connection to postgresql://recon:hunter2@db:5432/ledger refused; "
    "key sk_live_51AbCdEf; webhook https://hooks.slack.com/services/T0/B0/XYZ",
    day="2024-03-10..2024-03-12",
    run_url="http://dagster.internal:3000/runs/abc123",
    run_id="abc123",
)


def test_an_alert_names_the_day_what_failed_and_the_run_and_no_secret() -> None:
    text = ALERT.text
    assert "2024-03-10..2024-03-12" in text and "failed" in text
    assert "http://dagster.internal:3000/runs/abc123" in text
    for secret in ("hunter2", "sk_live_51AbCdEf", "T0/B0/XYZ"):
        assert secret not in text and secret not in json.dumps(ALERT.payload())
    assert "postgresql://recon:***@db" in text  # still says where, never the password
    assert redact("xoxb-123-456-abc and password=s3cret") == "xoxb-*** and password=***"


def test_webhook_gets_the_fields_and_slack_gets_a_message(
    server: tuple[str, list[tuple[str, dict]]], tmp_path: Path
) -> None:
    from dagster_slack import SlackResource

    base, received = server
    alerts = AlertResource(
        log_path=str(tmp_path / "alerts.log"),
        webhook_url=f"{base}/ok",
        slack=SlackResource(token="xoxb-test-token"),
        slack_channel="#recon-alerts",
        slack_api_url=f"{base}/api/",
    )
    assert alerts.send(ALERT) == {"log": True, "webhook": True, "slack": True}
    (path, hook), (slack_path, slack) = received
    assert path == "/ok" and hook["kind"] == "run_failed" and hook["day"] == ALERT.day
    assert hook["run_url"] == ALERT.run_url and "hunter2" not in json.dumps(hook)
    assert slack_path == "/api/chat.postMessage"
    assert slack["channel"] == "#recon-alerts" and slack["text"] == ALERT.text
    logged = [json.loads(line) for line in (tmp_path / "alerts.log").read_text().splitlines()]
    assert [a["kind"] for a in logged] == ["run_failed"] and "hunter2" not in str(logged)


def test_a_failing_sink_never_logs_its_address(
    server: tuple[str, list[tuple[str, dict]]], caplog: pytest.LogCaptureFixture
) -> None:
    base, _ = server
    secret_url = f"{base}/services/T000/B000/SECRETTOKEN"
    with caplog.at_level(logging.ERROR, logger="recon.alerts"):
        got = send_alert(ALERT, [LogSink(), WebhookSink(secret_url)])
    assert got == {"log": True, "webhook": False}
    assert "could not send the alert to webhook" in caplog.text
    assert "SECRETTOKEN" not in caplog.text and "SECRETTOKEN" not in repr(WebhookSink(secret_url))


def test_run_sensors_alert_on_a_failed_run_and_a_failed_error_check(
    server: tuple[str, list[tuple[str, dict]]], tmp_path: Path
) -> None:
    """Real runs on a real instance: a run whose step fails, and a successful run with a failed
    ERROR check (as the 09:00 freshness check's run is). Each sensor sends one alert that names
    the day and what failed, with a link to the run."""
    from recon_assets.defs.automation import build_automation

    @dg.asset(partitions_def=dg.DailyPartitionsDefinition("2024-03-01"))
    def boom() -> None:
        raise RuntimeError("the ledger said no")

    @dg.asset(
        partitions_def=dg.DailyPartitionsDefinition("2024-03-01"),
        check_specs=[dg.AssetCheckSpec("fresh", asset="fine")],
    )
    def fine() -> dg.MaterializeResult:
        return dg.MaterializeResult(
            check_results=[dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR)]
        )

    base, received = server
    home = tmp_path / "home"
    home.mkdir()
    instance = dg.DagsterInstance.local_temp(str(home))
    failed = dg.materialize(
        [boom], instance=instance, partition_key="2024-03-10", raise_on_error=False
    )
    ok = dg.materialize([fine], instance=instance, partition_key="2024-03-11")
    auto = build_automation([fine], start_date=date(2024, 3, 1), restate_days=3)
    sensors = {s.name: s for s in auto["sensors"]}
    alerts = AlertResource(log_path=str(tmp_path / "alerts.log"), webhook_url=f"{base}/ok",
                           dagster_url="http://dagster:3000")  # fmt: skip
    failure = next(e for e in failed.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    with dg.build_run_status_sensor_context(
        "run_failure_alert_sensor", failure, instance, failed.dagster_run,
        resources={"alerts": alerts},
    ) as ctx:  # fmt: skip
        sensors["run_failure_alert_sensor"](ctx.for_run_failure())
    success = next(e for e in ok.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
    with dg.build_run_status_sensor_context(
        "run_success_alert_sensor", success, instance, ok.dagster_run,
        resources={"alerts": alerts},
    ) as ctx:  # fmt: skip
        sensors["run_success_alert_sensor"](ctx)
    kinds = [(b["kind"], b["day"]) for _, b in received]
    assert kinds == [("run_failed", "2024-03-10"), ("check_failed", "2024-03-11")]
    assert "the ledger said no" in received[0][1]["detail"]
    assert received[0][1]["run_url"] == f"http://dagster:3000/runs/{failed.run_id}"
    assert "fine: fresh" in received[1][1]["title"]
