"""The vars of a dbt build for a partition time window: the one place where a Dagster window
becomes the dbt models' incremental window.

They reach dbt as the JSON environment variable `RUN_VARS_ENV` of the dbt process (set by
`recon-dbt`), which the `run_var` macro reads when the models execute; `--vars` would change
dbt's parse hash on every run and force a full parse. By hand, `dbt build --vars '{...}'` with
the same names still works (`run_var` falls back to `var`).

Pure and Dagster-free so it is unit-testable on its own (DST days included). The window is
half-open everywhere: `min_reporting_date` is included, `max_reporting_date_exclusive` is not.
The models compare `date >= min and date < max_exclusive`, never `between`. Every var here is
read by the models (int_recon__touched_charges, the day status, int_recon__charges,
fct_reconciliation_history).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from recon_assets.timewindows import days_of_range

DbtVars = dict[str, str | int]
RUN_VARS_ENV = "RECON_DBT_RUN_VARS"
_RUN_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def _require_aware(name: str, value: datetime) -> None:
    # A naive datetime would be read in the machine's local zone: a silent off-by-hours window.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def _utc_iso(value: datetime) -> str:
    """ISO-8601 in UTC with an explicit `+00:00`, which the dbt macros require."""
    return value.astimezone(UTC).isoformat()


def build_dbt_vars(
    window_start: datetime,
    window_end: datetime,
    tolerance_days: int,
    *,
    as_of: datetime | None = None,
    run_id: str | None = None,
) -> DbtVars:
    """The dbt vars for the US-Eastern days of `[window_start, window_end)`.

    Both ends must be aware datetimes at US-Eastern midnights (a Dagster daily partition time
    window, single day or range) and the window must hold at least one day; anything else raises
    `ValueError`, because a misaligned window would silently re-state part of a day.

    Returns JSON-serialisable values: `min_reporting_date` (inclusive) and
    `max_reporting_date_exclusive` (ISO dates, ET),
    `tolerance_days`, and `as_of` (ISO UTC) only when given, so that by default the models take
    "as of" from the ledger data itself; `dagster_run_id` when given (the history's
    `changed_by_run`; a plain run id, so it is safe to put in SQL).
    """
    _require_aware("window_start", window_start)
    _require_aware("window_end", window_end)
    if isinstance(tolerance_days, bool) or not isinstance(tolerance_days, int):
        raise ValueError(f"tolerance_days must be an int, got {tolerance_days!r}")
    if tolerance_days < 0:
        raise ValueError(f"tolerance_days must be >= 0, got {tolerance_days}")
    days = days_of_range(window_start, window_end)  # raises when not on ET midnights
    if not days:
        raise ValueError(f"empty window [{window_start.isoformat()}, {window_end.isoformat()})")
    end_exclusive = days[-1] + timedelta(days=1)
    out: DbtVars = {
        "min_reporting_date": days[0].isoformat(),
        "max_reporting_date_exclusive": end_exclusive.isoformat(),
        "tolerance_days": tolerance_days,
    }
    if as_of is not None:
        _require_aware("as_of", as_of)
        out["as_of"] = _utc_iso(as_of)
    if run_id is not None:
        if not _RUN_ID.match(run_id):
            raise ValueError("run_id must be letters, digits and dashes (a Dagster run id)")
        out["dagster_run_id"] = run_id
    return out
