"""Fixtures for tests that load the whole code location."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from recon_assets.defs.dbt_assets import DBT_PROJECT_DIR, dbt_project, prepare_manifest


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    """The repo's local manifest, prepared once even with several xdist workers."""
    lock = DBT_PROJECT_DIR / "target" / ".prepare.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        manifest = dbt_project("local").manifest_path
        if not manifest.exists():
            prepare_manifest(target="local")
        return manifest


LINEAGE = {
    "_synced_at", "_run_id", "_loaded_at", "charge_synced_at", "refund_synced_at",
    "fee_synced_at", "payout_synced_at", "dispute_synced_at",
    "raw_loaded_through",
    "run_id", "looked_up_at", "loaded_at",
}  # fmt: skip
"""Per-run lineage: when and by which run a row was read or written, not what it says."""
HISTORY_TABLES = {
    "raw.load_log", "raw.stripe_charge_lookups", "raw.stripe_event_reads",
    "raw.stripe_lookup_scans",
    "marts.fct_reconciliation_history", "marts.rpt_status_changes", "marts.rpt_break_history",
}  # fmt: skip
"""Record what was loaded, looked up and changed, in which order: history by design, not data."""


def snapshot(db: Path) -> dict[str, list[tuple]]:
    """Every raw and mart table and view's rows, sorted, without the per-run lineage columns."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for schema, table in con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('raw', 'marts')"
        ).fetchall():
            if f"{schema}.{table}" in HISTORY_TABLES:
                continue
            cols = [
                c
                for (c,) in con.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position",
                    [schema, table],
                ).fetchall()
                if c not in LINEAGE
            ]
            rows = con.execute(f"select {', '.join(cols)} from {schema}.{table}").fetchall()
            out[f"{schema}.{table}"] = sorted(rows, key=lambda r: tuple(map(str, r)))
        return out
    finally:
        con.close()


def assert_same_tables(got: dict[str, list[tuple]], want: dict[str, list[tuple]]) -> None:
    """Table by table, naming the first rows that differ (a whole-dict diff is unreadable)."""
    assert sorted(got) == sorted(want)
    for name in want:
        g, w = set(got[name]), set(want[name])
        assert g == w and len(got[name]) == len(want[name]), (
            name,
            sorted(g - w, key=str)[:2],
            sorted(w - g, key=str)[:2],
        )


def report_files(stage: Path) -> dict[str, str]:
    """Every day's break CSV under the stage, without the columns that depend on when runs
    happened (first seen, days open, since the last report): the data two loading orders must
    agree on. The HTML (generation time, run link, history) and the report state are not."""
    import csv
    import io

    from recon_assets.report.data import HISTORY_CSV_COLUMNS

    out = {}
    for p in sorted((stage / "reports").rglob("*.csv")):
        rows = list(csv.reader(io.StringIO(p.read_text())))
        keep = [i for i, name in enumerate(rows[0]) if name not in HISTORY_CSV_COLUMNS]
        out[str(p.relative_to(stage))] = "\n".join(",".join(r[i] for i in keep) for r in rows)
    return out
