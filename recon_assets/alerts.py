"""Where alerts go: a Slack incoming webhook in production, the log everywhere.

The webhook URL is a secret (anyone holding it can post): it is never logged, and a failure to
post is reported without it.
"""

from __future__ import annotations

import json
import logging
import urllib.request

log = logging.getLogger("recon.alerts")


def send_alert(text: str, webhook_url: str | None, timeout_s: float = 10.0) -> bool:
    """Log `text` and post it to Slack when a webhook is configured; True when posted."""
    log.error("ALERT: %s", text)
    if not webhook_url:
        return False
    req = urllib.request.Request(
        webhook_url,
        data=json.dumps({"text": text}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return 200 <= resp.status < 300
    except Exception as exc:  # an alert must never crash the sensor that sends it
        log.error("could not post the alert to Slack: %s", type(exc).__name__)
        return False
