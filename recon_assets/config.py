"""Settings from environment variables, read when resources are built, never at import.

Every knob has a clear name and a default that makes `RECON_ENV=local` work on a fresh machine.
Secrets (`STRIPE_API_KEY`, passwords inside DSNs) are held here but never printed: `__repr__`
masks them so a stray log line or Dagster metadata entry cannot leak them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

LOCAL_STRIPE_API_KEY = "sk_test_recon_local_emulator"
"""The key the local emulator accepts: a test-mode placeholder, not a secret."""

DEFAULT_START_DATE = date(2024, 1, 1)
STRIPE_DOCUMENTED_RATE_PER_S = 25.0
"""Stripe's documented per-endpoint default (and the test-mode global limit)."""

DUCKDB_FILE_NAME = "warehouse.duckdb"
"""The local warehouse's file in RECON_HOME, unless RECON_DUCKDB_PATH names another. dbt opens it
by this bare name from its folder (`recon_assets.warehouse.dbt_launch`), so the dbt manifest
prepared for it is the one every run's partial parse starts from."""

DUCKDB_MEMORY_LIMIT = "256MB"
"""DuckDB's memory limit in dbt's builds and in `recon report` (the run worker's own connections
have `DUCKDB_RUN_MEMORY_LIMIT`). DuckDB's own default is 80 % of the machine's RAM, and it keeps
what it took: in a 540-day nightly dbt's process peaked at ~1.2 GB and the run process at
~950 MB (the report's history reads), against ~450 and ~620 MB with 256 MB, for a few seconds
more of dbt (bench_nightly.py). Bigger sorts and joins spill to `<warehouse>.tmp`: a full
refresh of 540 days took 109 s at 480 MB against 65 s at 2.9 GB without a limit.
`dbt_project/profiles.yml` repeats this value as the default for dbt run by hand; a test keeps
the two equal."""

DUCKDB_RUN_MEMORY_LIMIT = "64MB"
"""DuckDB's memory limit in the run worker's own connections: the loads, the look-up queries and
the events' checks of held ids, the report's reads. dbt's builds keep `DUCKDB_MEMORY_LIMIT`.
Whatever DuckDB takes there is the run worker's, the process a pod is sized by: in a 600 k first
backfill the look-ups' anti-joins took ~220 MB over the process's base at 256MB and ~100 MB at
64MB, for ~0.3 s more (docs/benchmarks.md, "Where the run worker's memory goes"). Bigger work
spills to `<warehouse>.tmp`, as dbt's does."""


_SNOWFLAKE_VARS = (
    "SNOWFLAKE_ACCOUNT",
    "SNOWFLAKE_USER",
    "SNOWFLAKE_PASSWORD",
    "SNOWFLAKE_DATABASE",
)


SECRET_VARIABLES = (
    "STRIPE_API_KEY",
    "RECON_LEDGER_DSN",
    "SNOWFLAKE_PASSWORD",
    "RECON_ALERT_WEBHOOK_URL",
    "RECON_SLACK_WEBHOOK_URL",
    "RECON_SLACK_BOT_TOKEN",
)
"""Variables whose values are credentials: never logged, never in metadata or Dagster's storage."""


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable, never its value."""


def _mask(secret: str | None) -> str:
    return "<unset>" if not secret else "<set>"


@dataclass(frozen=True)
class ReconSettings:
    env: str
    home: Path
    stripe_api_key: str | None = field(repr=False)
    stripe_api_base: str | None
    stage_uri: str
    start_date: date
    stripe_rate_per_s: float
    stripe_max_retries: int
    stripe_windows_per_day: int
    stripe_concurrency: int
    stripe_pull_processes: int
    ledger_dsn: str | None = field(repr=False)
    duckdb_path: Path
    duckdb_memory_limit: str
    restate_days: int
    tolerance_days: int
    emulator_seed: int = 42
    emulator_charges_per_day: int = 2000
    emulator_now: int | None = None
    duckdb_run_memory_limit: str = DUCKDB_RUN_MEMORY_LIMIT
    warehouse: str = "duckdb"
    s3_endpoint_url: str | None = None
    snowflake_stage: str = "RECON_STAGE"
    snowflake_storage_integration: str | None = None
    schedule_cron: str = "0 1 * * *"
    deep_restate_days: int = 120
    """Days the weekly deep re-statement re-pulls and rebuilds: what late refunds, disputes and
    settlements beyond the nightly window (and beyond Stripe's 30 days of events) still change."""
    deep_restate_cron: str = "0 3 * * 0"
    catchup_days: int = 31
    """How far back the nightly tick looks for days whose report is missing or failed."""
    at_risk_hour: int = 7
    dead_run_check_seconds: int = 60
    """How often the daemon looks for started runs whose worker process is gone (and fails
    them, freeing the writer pool): a minute is well inside the 5 minutes a queued nightly may
    wait; each look reads the started runs only."""
    alert_webhook_env: str | None = None
    """Which variable holds the alerts webhook URL (a credential, read by Dagster as an EnvVar):
    RECON_ALERT_WEBHOOK_URL, or the older RECON_SLACK_WEBHOOK_URL; None when neither is set."""
    slack_bot_configured: bool = False
    """RECON_SLACK_BOT_TOKEN is set: alerts go to Slack through dagster-slack."""
    slack_channel: str | None = None
    slack_api_url: str | None = None
    alert_report_ready: bool = False
    stripe_max_lookups: int = 10_000
    """Ledger-named charges looked up by id per run at most; more fails asking for a backfill.
    Sized for the first backfill of a range, whose first ledger day books charges of the day
    before it (up to a day's volume): 10 k look-ups take 100 s at Stripe's live 100 req/s."""
    ledger_changes_lookback_minutes: int = 60
    """How far before the newest `updated_at` the warehouse holds the ledger changes are read
    again: covers transactions that committed after a later one (re-loading by id is safe)."""
    stripe_events_overlap_minutes: int = 10
    """How far before the stored cursor Stripe's events are read again: an event can become
    listable a moment after a later one (re-loading a charge by id is safe)."""
    emulator_changes: Path | None = None
    """Local only: a JSON file of hand-made late changes the emulator applies (demo, tests)."""
    secrets_in_environment: frozenset[str] = frozenset()
    """Which secret variables came from the process environment: resources get those as
    `dg.EnvVar` (resolved inside the run, never written into Dagster's storage). Settings built
    from an explicit mapping (tests, scripts) have none."""
    dagster_url: str | None = None
    """The Dagster webserver's base URL: reports and alerts link to their run under it."""
    stripe_dashboard_url: str = "https://dashboard.stripe.com/test/payments/"
    """Where a charge id links to in the report (live keys: without `/test`)."""

    @property
    def is_local(self) -> bool:
        return self.env == "local"

    def __repr__(self) -> str:  # secrets masked, whatever dataclass would print
        return (
            f"ReconSettings(env={self.env!r}, home={str(self.home)!r}, "
            f"stripe_api_key={_mask(self.stripe_api_key)}, "
            f"stripe_api_base={self.stripe_api_base!r}, stage_uri={self.stage_uri!r}, "
            f"start_date={self.start_date.isoformat()!r}, "
            f"ledger_dsn={_mask(self.ledger_dsn)}, duckdb_path={str(self.duckdb_path)!r})"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReconSettings:
        """Build settings from `environ` (default `os.environ`), validating every value."""
        e = os.environ if environ is None else environ
        in_env = frozenset(v for v in SECRET_VARIABLES if environ is None and e.get(v))
        env = e.get("RECON_ENV", "local").strip().lower()
        if env not in ("local", "prod"):
            raise ConfigError(f"RECON_ENV must be 'local' or 'prod', got {env!r}")
        home = Path(e.get("RECON_HOME") or Path.cwd() / ".recon").resolve()
        if env == "prod":
            _require_prod(e)
        api_key = e.get("STRIPE_API_KEY") or None
        if env == "local" and api_key is None:
            api_key = LOCAL_STRIPE_API_KEY
        stage_uri = _stage_uri(e.get("RECON_STAGE_URI") or str(home / "stage"))
        if env == "prod" and not stage_uri.startswith("s3://"):
            # Production runs go to ephemeral run workers: a local folder would vanish with them.
            raise ConfigError("RECON_STAGE_URI must be an s3:// URI when RECON_ENV=prod")
        ledger_dsn = e.get("RECON_LEDGER_DSN") or None
        if ledger_dsn is not None:
            _check_dsn(ledger_dsn)
        if e.get("STRIPE_API_BASE"):
            _url(e, "STRIPE_API_BASE", None)
        try:
            raw_start = e.get("RECON_START_DATE") or ""
            start = (
                date.fromisoformat(raw_start)
                if raw_start
                else (local_start_date() if env == "local" else DEFAULT_START_DATE)
            )
        except ValueError:
            raise ConfigError("RECON_START_DATE must be an ISO date (YYYY-MM-DD)") from None
        # Locally the emulator accepts any rate; Stripe's documented limit is the prod default.
        default_rate = 200.0 if env == "local" else STRIPE_DOCUMENTED_RATE_PER_S
        # Locally the pull is CPU-bound on 2 cores (threads share the GIL: 2 beat 4 by ~20 %);
        # against Stripe it is latency-bound, so it needs about rate x latency in flight.
        default_concurrency = 2 if env == "local" else 8
        # Against the emulator a long range is CPU-bound, and one process gets one core; against
        # Stripe one process uses under half a core at the live rate (stripe/pull_shards.py).
        default_processes = 2 if env == "local" else 1
        restate = _int(e, "RECON_RESTATE_DAYS", 3, minimum=0)
        tolerance = _int(e, "RECON_TOLERANCE_DAYS", 3, minimum=0)
        if restate < tolerance:
            raise ConfigError(
                "RECON_RESTATE_DAYS must be >= RECON_TOLERANCE_DAYS so every day is re-evaluated "
                "until its status is final"
            )
        warehouse = (
            e.get("RECON_WAREHOUSE") or ("duckdb" if env == "local" else "snowflake")
        ).lower()
        if warehouse not in ("duckdb", "snowflake"):
            raise ConfigError("RECON_WAREHOUSE must be 'duckdb' or 'snowflake'")
        if warehouse == "snowflake":
            _require(e, _SNOWFLAKE_VARS, "RECON_WAREHOUSE=snowflake")
        if e.get("RECON_SLACK_BOT_TOKEN") and not e.get("RECON_SLACK_CHANNEL"):
            raise ConfigError(
                "RECON_SLACK_BOT_TOKEN is set: RECON_SLACK_CHANNEL must name a channel"
            )
        return cls(
            secrets_in_environment=in_env,
            env=env,
            home=home,
            stripe_api_key=api_key,
            stripe_api_base=e.get("STRIPE_API_BASE") or None,
            stage_uri=stage_uri,
            start_date=start,
            stripe_rate_per_s=_float(e, "RECON_STRIPE_RATE", default_rate),
            stripe_max_retries=_int(e, "RECON_STRIPE_MAX_RETRIES", 8, minimum=0),
            stripe_windows_per_day=_int(e, "RECON_STRIPE_WINDOWS_PER_DAY", 8, minimum=1),
            stripe_concurrency=_int(e, "RECON_STRIPE_CONCURRENCY", default_concurrency, minimum=1),
            stripe_pull_processes=_int(
                e, "RECON_STRIPE_PULL_PROCESSES", default_processes, minimum=1
            ),
            ledger_dsn=ledger_dsn,
            duckdb_path=Path(e.get("RECON_DUCKDB_PATH") or home / DUCKDB_FILE_NAME).resolve(),
            duckdb_memory_limit=_memory_size(e, "RECON_DUCKDB_MEMORY_LIMIT", DUCKDB_MEMORY_LIMIT),
            duckdb_run_memory_limit=_memory_size(
                e, "RECON_DUCKDB_RUN_MEMORY_LIMIT", DUCKDB_RUN_MEMORY_LIMIT
            ),
            restate_days=restate,
            tolerance_days=tolerance,
            emulator_seed=_int(e, "RECON_EMULATOR_SEED", 42, minimum=0),
            emulator_charges_per_day=_int(e, "RECON_EMULATOR_CHARGES_PER_DAY", 2000, minimum=0),
            emulator_now=_int(e, "RECON_EMULATOR_NOW", 0, minimum=0) or None,
            warehouse=warehouse,
            s3_endpoint_url=e.get("RECON_S3_ENDPOINT_URL") or None,
            snowflake_stage=e.get("RECON_SNOWFLAKE_STAGE") or "RECON_STAGE",
            snowflake_storage_integration=e.get("RECON_SNOWFLAKE_STORAGE_INTEGRATION") or None,
            schedule_cron=_cron(e, "RECON_SCHEDULE_CRON", "0 1 * * *"),
            deep_restate_days=_int(e, "RECON_DEEP_RESTATE_DAYS", 120, minimum=0),
            deep_restate_cron=_cron(e, "RECON_DEEP_RESTATE_CRON", "0 3 * * 0"),
            catchup_days=_int(e, "RECON_CATCHUP_DAYS", 31, minimum=1),
            at_risk_hour=_int(e, "RECON_AT_RISK_HOUR", 7, minimum=0),
            dead_run_check_seconds=_int(e, "RECON_DEAD_RUN_CHECK_SECONDS", 60, minimum=5),
            alert_webhook_env=next(
                (v for v in ("RECON_ALERT_WEBHOOK_URL", "RECON_SLACK_WEBHOOK_URL") if e.get(v)),
                None,
            ),
            slack_bot_configured=bool(e.get("RECON_SLACK_BOT_TOKEN")),
            slack_channel=e.get("RECON_SLACK_CHANNEL") or None,
            slack_api_url=_url(e, "RECON_SLACK_API_URL", None),
            alert_report_ready=_bool(e, "RECON_ALERT_REPORT_READY"),
            stripe_max_lookups=_int(e, "RECON_STRIPE_MAX_LOOKUPS", 10_000, minimum=0),
            ledger_changes_lookback_minutes=_int(
                e, "RECON_LEDGER_CHANGES_LOOKBACK_MINUTES", 60, minimum=0
            ),
            stripe_events_overlap_minutes=_int(
                e, "RECON_STRIPE_EVENTS_OVERLAP_MINUTES", 10, minimum=0
            ),
            dagster_url=_url(
                e, "RECON_DAGSTER_URL", "http://127.0.0.1:3000" if env == "local" else None
            ),
            stripe_dashboard_url=_url(
                e,
                "RECON_STRIPE_DASHBOARD_URL",
                "https://dashboard.stripe.com/"
                + ("test/payments/" if env == "local" or _test_key(api_key) else "payments/"),
            )
            or "",
            emulator_changes=(
                Path(e["RECON_EMULATOR_CHANGES"]).resolve()
                if e.get("RECON_EMULATOR_CHANGES")
                else None
            ),
        )


def _stage_uri(raw: str) -> str:
    """`s3://bucket/prefix` or an absolute local folder; anything else (`s3:/typo`, `s3//x`,
    `http://...`) is refused instead of becoming a folder named `s3:` under the working dir."""
    raw = raw.strip()
    if "://" in raw or raw.lower().startswith("s3:"):
        parsed = urlsplit(raw)
        if parsed.scheme != "s3" or not parsed.netloc or not raw.startswith("s3://"):
            raise ConfigError("RECON_STAGE_URI must be s3://bucket/prefix or a local folder path")
        if not _BUCKET.match(parsed.netloc):
            raise ConfigError("RECON_STAGE_URI names an invalid S3 bucket")
        return raw.rstrip("/")
    return str(Path(raw).expanduser().resolve())


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _check_dsn(dsn: str) -> None:
    """A PostgreSQL URI or key=value DSN; the message names the variable, never the value."""
    if dsn.startswith(("postgresql://", "postgres://")):
        parsed = urlsplit(dsn)
        if not parsed.hostname and "host=" not in (parsed.query or ""):
            raise ConfigError("RECON_LEDGER_DSN has no host")
        if not parsed.path.strip("/"):
            raise ConfigError("RECON_LEDGER_DSN names no database")
        return
    if "=" in dsn and "dbname=" in dsn:
        return
    raise ConfigError(
        "RECON_LEDGER_DSN must be a postgresql:// URI or a 'key=value' DSN with dbname"
    )


def local_start_date(today: date | None = None) -> date:
    """Locally, the first partition is the first day of last month: the UI opens on a few weeks
    of days, not on a thousand missing ones (production: DEFAULT_START_DATE, the history the
    ledger and Stripe hold)."""
    today = today or datetime.now(ZoneInfo("America/New_York")).date()
    first_of_month = today.replace(day=1)
    return (first_of_month - timedelta(days=1)).replace(day=1)


def _bool(e: Mapping[str, str], name: str) -> bool:
    raw = (e.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name} must be true or false")


def _test_key(api_key: str | None) -> bool:
    return bool(api_key) and "_test_" in str(api_key)


def _url(e: Mapping[str, str], name: str, default: str | None) -> str | None:
    """An http(s) URL (never printed back: it may carry a token), or the default."""
    raw = (e.get(name) or "").strip()
    if not raw:
        return default
    parsed = urlsplit(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{name} must be an http(s) URL")
    return raw


_MEMORY_SIZE = re.compile(r"^[0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


def _memory_size(e: Mapping[str, str], name: str, default: str) -> str:
    """A size DuckDB's `memory_limit` accepts (e.g. `256MB`, `1.5GiB`): checked here, so a typo
    is a clear error at start, not a failed SQL statement in the middle of a run."""
    raw = (e.get(name) or "").strip()
    if not raw:
        return default
    if not _MEMORY_SIZE.match(raw):
        raise ConfigError(f"{name} must be a size such as 256MB or 1GiB, got {raw!r}")
    return raw


_PROD_REQUIRED = ("STRIPE_API_KEY", "RECON_STAGE_URI", "RECON_LEDGER_DSN")


def _require_prod(e: Mapping[str, str]) -> None:
    """Production's settings without a default, all named at once (checked when the location
    loads, not when a run first needs one): a deployment fixes its environment in one pass
    instead of one variable per failed start."""
    warehouse = (e.get("RECON_WAREHOUSE") or "snowflake").lower()
    needed = _PROD_REQUIRED + (_SNOWFLAKE_VARS if warehouse == "snowflake" else ())
    _require(e, needed, "RECON_ENV=prod", " (see the README's settings)")


def _require(e: Mapping[str, str], names: Sequence[str], what: str, hint: str = "") -> None:
    """The one check of settings that must be set: every missing one named in one message."""
    missing = [v for v in names if not e.get(v)]
    if missing:
        raise ConfigError(f"{what} needs {', '.join(missing)}{hint}")


_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    (
        "month",
        1,
        12,
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    ),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_CRON_ALIASES = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")
_CRON_ITEM = re.compile(r"^(\*|([0-9a-z]+)(-([0-9a-z]+))?)(/([0-9]+))?$")


def _cron_value(text: str, low: int, high: int, names: tuple[str, ...]) -> int | None:
    if text.isdigit():
        value = int(text)
    elif text in names:
        value = names.index(text) + (1 if names[0] == "jan" else 0)
    else:
        return None
    return value if low <= value <= high else None


def _cron(e: Mapping[str, str], name: str, default: str) -> str:
    """A standard five-field cron expression (numbers, ranges, steps, lists, month and weekday
    names, or an @alias), as Dagster's schedules take it. Checked here so a typo is refused
    naming its variable, not later as an error of a schedule whose name says nothing of it."""
    raw = (e.get(name) or "").strip()
    if not raw:
        return default
    if raw.lower() in _CRON_ALIASES:
        return raw
    fields = raw.lower().split()
    if len(fields) != len(_CRON_FIELDS):
        raise ConfigError(f"{name} must be a cron expression of 5 fields, got {raw!r}")
    for text, (what, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.split(","):
            m = _CRON_ITEM.match(item)
            ok = m is not None and (m.group(6) is None or int(m.group(6)) > 0)
            if ok and m is not None and m.group(1) != "*":
                first = _cron_value(m.group(2), low, high, names)
                last = first if m.group(4) is None else _cron_value(m.group(4), low, high, names)
                ok = first is not None and last is not None and first <= last
            if not ok:
                raise ConfigError(
                    f"{name}: {item!r} is not a valid {what} ({low}-{high}), got {raw!r}"
                )
    return raw


def _int(e: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = e.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}")
    return value


def _float(e: Mapping[str, str], name: str, default: float) -> float:
    raw = e.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number") from None
    if value <= 0:
        raise ConfigError(f"{name} must be > 0")
    return value
