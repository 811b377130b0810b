"""Alerting: the at-risk rule, and posting to a (local) Slack-style webhook without leaking it."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from recon_assets.alerts import send_alert
from recon_assets.defs.automation import at_risk_alert
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
def webhook() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            status = 200 if self.path == "/ok" else 500
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


def test_alert_is_posted(webhook: tuple[str, list[dict]]) -> None:
    base, received = webhook
    assert send_alert("report late", f"{base}/ok") is True
    assert received == [{"text": "report late"}]


def test_failed_post_never_logs_the_webhook(
    webhook: tuple[str, list[dict]], caplog: pytest.LogCaptureFixture
) -> None:
    base, _ = webhook
    secret_url = f"{base}/services/T000/B000/SECRETTOKEN"
    with caplog.at_level(logging.ERROR, logger="recon.alerts"):
        assert send_alert("report late", secret_url) is False
    assert "report late" in caplog.text
    assert "SECRETTOKEN" not in caplog.text


def test_no_webhook_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="recon.alerts"):
        assert send_alert("x", None) is False
    assert "ALERT: x" in caplog.text
