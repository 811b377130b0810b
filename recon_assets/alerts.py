"""Alerts that reach people: what happened, on which day, and a link to the run; never a secret.

Dagster-free. An `Alert` is sent to every configured sink: in production Slack (through
dagster-slack's client: a bot token and a channel) and/or a generic JSON webhook; everywhere, the
console log and (locally) an alerts log file under RECON_HOME. Sending never raises: an alert
must not crash the sensor that sends it, and a sink that fails is reported without its address
(a webhook URL or a token is a credential).

Texts are redacted before they leave: an exception message can carry a Stripe key, a DSN with
its password or a Slack token, and none of them may reach a channel.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

log = logging.getLogger("recon.alerts")

AlertKind = Literal["run_failed", "check_failed", "deadline_at_risk", "report_ready"]

_SECRETS = [
    (re.compile(r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9_]+"), r"\1_\2_***"),
    (re.compile(r"\b(xox[abposr]-)[A-Za-z0-9-]+"), r"\1***"),
    (re.compile(r"(https://hooks\.slack\.com/)\S+"), r"\1***"),
    (re.compile(r"([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@"), r"\1***@"),  # user:password@
    (re.compile(r"(?i)\b(password|passwd|pwd|token|secret|api_key)=\S+"), r"\1=***"),
]


def redact(text: str) -> str:
    """`text` without anything shaped like a credential."""
    for pattern, repl in _SECRETS:
        text = pattern.sub(repl, text)
    return text


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    title: str
    detail: str
    day: str | None = None
    """The US-Eastern day (or range) concerned."""
    run_url: str | None = None
    run_id: str | None = None

    @property
    def text(self) -> str:
        where = f" ({self.day})" if self.day else ""
        link = (
            f"\nRun: {self.run_url}"
            if self.run_url
            else (f"\nRun: {self.run_id}" if self.run_id else "")
        )
        return redact(
            f"recon {self.kind.replace('_', ' ')}{where}: {self.title}\n{self.detail}{link}"
        )

    def payload(self) -> dict[str, Any]:
        d = {k: (redact(v) if isinstance(v, str) else v) for k, v in asdict(self).items()}
        d["text"] = self.text
        return d


class Sink(Protocol):
    name: str

    def send(self, alert: Alert) -> bool: ...


class LogSink:
    """The console (Python logging) and, when given, a JSON-lines file: the local channel."""

    name = "log"

    def __init__(self, path: Path | None = None) -> None:
        self.path = path

    def send(self, alert: Alert) -> bool:
        log.error("ALERT %s", alert.text)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            line = {"at": datetime.now(UTC).isoformat(), **alert.payload()}
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(line, sort_keys=True) + "\n")
        return True


class WebhookSink:
    """POST the alert as JSON (`kind`, `day`, `title`, `detail`, `run_url`, `text`): a Slack
    incoming webhook reads `text`, anything else can read the fields."""

    name = "webhook"

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self._url = url
        self._timeout_s = timeout_s

    def __repr__(self) -> str:  # the URL is a credential
        return "WebhookSink(<url>)"

    def send(self, alert: Alert) -> bool:
        req = urllib.request.Request(
            self._url,
            data=json.dumps(alert.payload()).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=self._timeout_s) as resp:
            return 200 <= resp.status < 300


class SlackSink:
    """Slack through dagster-slack's client (`chat.postMessage` with a bot token)."""

    name = "slack"

    def __init__(self, client: Callable[[], Any], channel: str) -> None:
        self._client = client
        self._channel = channel

    def send(self, alert: Alert) -> bool:
        resp = self._client().chat_postMessage(channel=self._channel, text=alert.text)
        return bool(resp.get("ok"))


def send_alert(alert: Alert, sinks: Sequence[Sink]) -> dict[str, bool]:
    """Send to every sink; a sink that fails is logged by name, never with its address."""
    out: dict[str, bool] = {}
    for sink in sinks:
        try:
            out[sink.name] = sink.send(alert)
        except Exception as exc:  # an alert must never crash the sensor that sends it
            log.error("could not send the alert to %s: %s", sink.name, type(exc).__name__)
            out[sink.name] = False
    return out
