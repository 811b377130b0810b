"""The dbt project on target `prod` (dbt-snowflake) against a fakesnow server.

Same synthetic cases as tests/test_dbt_models.py, inserted through the Snowflake connector. The
raw charges use TIMESTAMP_TZ (what the Snowflake loader creates) and the raw ledger
TIMESTAMP_NTZ holding UTC, so both branches of the `utc_instant` macro run.

fakesnow runs the SQL on DuckDB, so this proves the Snowflake dialect paths compile and the
incremental mechanics (transient temp table, delete+insert inside `begin ... commit`) work; it
is not proof of Snowflake's own semantics. fakesnow returns a NULL TIMESTAMP_NTZ as 1970-01-01,
so timestamps are compared as epoch seconds.

HAZARD: fakesnow answers unsupported SQL with HTTP 500 and the connector retries; every test
here has a hard timeout and the connection caps `network_timeout`. dbt's connections cannot cap
it (dbt-snowflake passes no `network_timeout`, so the connector retries forever), and a first
build at the profile's 4 threads once hung in CI until the timeout (not reproduced here in 35
builds under load; the cause is unknown), so dbt runs here on one thread and a timeout fails
with the end of dbt's debug log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from recon_assets.stage.schemas import (
    BOOKKEEPING_SCHEMAS,
    LEDGER_ENTRIES_SCHEMA,
    STRIPE_BALANCE_TRANSACTIONS_SCHEMA,
    STRIPE_CHARGES_SCHEMA,
    STRIPE_DISPUTES_SCHEMA,
    STRIPE_PAYOUT_TRANSACTIONS_SCHEMA,
    STRIPE_PAYOUTS_SCHEMA,
    STRIPE_REFUNDS_SCHEMA,
)
from tests.test_dbt_models import (
    FCT_COLUMNS,
    GAP_DAY,
    LOADED_1,
    LOADED_2,
    LOOKUPS,
    RESYNCED,
    RPT_COLUMNS,
    STRIPE_DAYS,
    Expect,
    _key,
    cases,
    charge,
    dispute,
    entry,
    expected_fct,
    expected_rpt,
    flatten,
    loaded_days,
    payout,
    refund,
    run_dbt,
    txn,
    utc,
    window_vars,
)

pytestmark = pytest.mark.timeout(300)


def _sf_type(t: pa.DataType, ntz: bool) -> str:
    if pa.types.is_int64(t):
        return "NUMBER(38,0)"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_string(t):
        return "VARCHAR"
    if pa.types.is_date32(t):
        return "DATE"
    if pa.types.is_float64(t):
        return "FLOAT"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP_NTZ" if ntz else "TIMESTAMP_TZ"
    raise TypeError(t)


@pytest.fixture(scope="module")
def fakesnow_kwargs() -> Iterator[dict[str, Any]]:
    import fakesnow

    serve = fakesnow.server  # before `fakesnow.server` the module shadows the function
    with serve() as kwargs:
        yield {**kwargs, "network_timeout": 8, "login_timeout": 8}


class Warehouse:
    """A database of this test's own on the fakesnow server (it shares one DuckDB)."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.database = f"RECON_DBT_{uuid.uuid4().hex[:8].upper()}"

    def execute(self, *statements: str, params: list[tuple] | None = None) -> list[tuple]:
        import snowflake.connector

        conn = snowflake.connector.connect(**self.kwargs)
        try:
            cur = conn.cursor()
            cur.execute(f"create database if not exists {self.database}")
            cur.execute(f"use database {self.database}")
            rows: list[tuple] = []
            for sql in statements:
                if params is not None:
                    cur.executemany(sql, params)
                else:
                    cur.execute(sql)
                    rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
            return rows
        finally:
            conn.close()

    def write_raw(
        self, charges: list[dict], entries: list[dict], refunds: list[dict] | None = None
    ) -> None:
        self.execute("create schema if not exists RAW")
        refunds = REFUNDS if refunds is None else refunds
        for name, schema, rows, ntz in [
            ("STRIPE_CHARGES", STRIPE_CHARGES_SCHEMA, charges, False),
            ("STRIPE_REFUNDS", STRIPE_REFUNDS_SCHEMA, refunds, False),
            (
                "STRIPE_BALANCE_TRANSACTIONS",
                STRIPE_BALANCE_TRANSACTIONS_SCHEMA,
                [*TXNS, *DISPUTE_TXNS],
                False,
            ),
            ("STRIPE_PAYOUTS", STRIPE_PAYOUTS_SCHEMA, PAYOUTS, False),
            ("STRIPE_PAYOUT_TRANSACTIONS", STRIPE_PAYOUT_TRANSACTIONS_SCHEMA, CARRIED, False),
            ("STRIPE_DISPUTES", STRIPE_DISPUTES_SCHEMA, DISPUTES, False),
            (
                "LEDGER_ENTRIES",
                LEDGER_ENTRIES_SCHEMA,
                [*entries, *REFUND_ENTRIES, *FEE_ENTRIES, *PAYOUT_ENTRIES, *DISPUTE_ENTRIES],
                True,
            ),
        ]:
            cols = ", ".join(f"{f.name} {_sf_type(f.type, ntz)}" for f in schema)
            ts = "TIMESTAMP_NTZ" if ntz else "TIMESTAMP_TZ"
            self.execute(f"create or replace table RAW.{name} ({cols}, _loaded_at {ts})")
            names = [f.name for f in schema]

            def lit(v: Any, ntz: bool = ntz) -> Any:
                if isinstance(v, datetime):  # UTC: NTZ keeps the UTC wall clock
                    return v.replace(tzinfo=None).isoformat() if ntz else v.isoformat()
                return v.isoformat() if isinstance(v, date) else v

            data = [(*(lit(r[n]) for n in names), lit(r.get("_loaded_at", LOADED_1))) for r in rows]
            placeholders = ", ".join(["%s"] * (len(names) + 1))
            self.execute(
                f"insert into RAW.{name} ({', '.join(names)}, _loaded_at) values ({placeholders})",
                params=data,
            )

        for name, schema in BOOKKEEPING_SCHEMAS.items():  # as the Snowflake loader creates them
            cols = ", ".join(f"{f.name} {_sf_type(f.type, False)}" for f in schema)
            self.execute(f"create or replace table RAW.{name.upper()} ({cols})")
        log = [(ds, d) for ds in STRIPE_DAYS for d in loaded_days()] + [
            ("ledger_entries", d) for d in loaded_days() if d != GAP_DAY
        ]
        at = LOADED_1.isoformat()
        self.execute(
            "insert into RAW.LOAD_LOG values (%s, %s, 'day', 0, 'run_test', %s)",
            params=[(ds, d.isoformat(), at) for ds, d in log],
        )
        self.execute(
            "insert into RAW.STRIPE_CHARGE_LOOKUPS values (%s, %s, null, 'run_test', %s)",
            params=[(cid, res, at) for cid, res in LOOKUPS],
        )

    def dbt(self, work: Path, *args: str, fail: bool = False) -> str:
        env = {
            "SNOWFLAKE_ACCOUNT": self.kwargs["account"],
            "SNOWFLAKE_USER": self.kwargs["user"],
            "SNOWFLAKE_PASSWORD": self.kwargs["password"],
            "SNOWFLAKE_ROLE": "recon_test",
            "SNOWFLAKE_WAREHOUSE": "recon_test",
            "SNOWFLAKE_DATABASE": self.database,
            "SNOWFLAKE_HOST": self.kwargs["host"],
            "SNOWFLAKE_PORT": str(self.kwargs["port"]),
            "SNOWFLAKE_PROTOCOL": self.kwargs["protocol"],
            "SNOWFLAKE_QUERY_TAG": "",  # fakesnow has no QUERY_TAG
        }
        # One thread, not the profile's 4 (the module docstring says why): fakesnow serves every
        # session from one in-process DuckDB, so parallel models there exercise DuckDB's and the
        # connector's thread hazards, not Snowflake's.
        return run_dbt(work, *args, "--target", "prod", "--threads", "1", env=env, fail=fail)

    def fct(self) -> list[tuple]:
        cols = [*FCT_COLUMNS[:-1], "date_part(epoch_second, charge_synced_at)"]
        rows = self.execute(f"select {', '.join(cols)} from MARTS.FCT_CHARGE_RECONCILIATION")
        return sorted(rows, key=_key)

    def rpt(self) -> list[tuple]:
        rows = self.execute(
            f"select {', '.join(RPT_COLUMNS)} from MARTS.RPT_DAILY_RECONCILIATION "
            "where item_type = 'charge'"
        )
        return sorted(rows, key=_key)

    def refunds(self) -> dict[str, tuple]:
        rows = self.execute(
            "select refund_id, recon_status, stripe_amount, ledger_amount, amount_diff "
            "from MARTS.FCT_REFUND_RECONCILIATION"
        )
        return {r[0]: tuple(r[1:]) for r in rows}

    def payouts(self) -> dict[str, tuple]:
        rows = self.execute(
            "select payout_id, reporting_date, recon_status, stripe_amount, ledger_amount, "
            "amount_diff from MARTS.FCT_PAYOUT_RECONCILIATION"
        )
        return {r[0]: tuple(r[1:]) for r in rows}

    def disputes(self) -> dict[tuple[str, str], tuple]:
        rows = self.execute(
            "select dispute_id, dispute_leg, reporting_date, recon_status, stripe_amount, "
            "ledger_amount, amount_diff from MARTS.FCT_DISPUTE_RECONCILIATION"
        )
        return {(r[0], r[1]): tuple(r[2:]) for r in rows}

    def fees(self) -> dict[str, tuple]:
        rows = self.execute(
            "select source_id, recon_status, stripe_amount, ledger_amount, amount_diff "
            "from MARTS.FCT_FEE_RECONCILIATION"
        )
        return {r[0]: tuple(r[1:]) for r in rows}


REFUND_AT = datetime(2024, 3, 5, 15, tzinfo=UTC)
REFUNDS = [refund("re_ok", REFUND_AT), refund("re_sign", REFUND_AT),
           refund("re_missing", REFUND_AT, amount=700)]  # fmt: skip
REFUND_ENTRIES = [
    entry(901, "re_ok", REFUND_AT + timedelta(hours=2), -500, entry_type="refund"),
    entry(902, "re_sign", REFUND_AT + timedelta(hours=2), 500, entry_type="refund"),
]
"""Refunds through the prod target too: the same rules, on Snowflake SQL."""
FEE_AT = utc(2024, 3, 5, 12)  # ch_dup's and ch_amount's created, in cases()
TXNS = [
    txn("txn_ch_dup", "ch_dup", FEE_AT, 1000, 59),
    txn("txn_ch_amount", "ch_amount", FEE_AT, 1000, 59),
    txn("txn_re_ok", "re_ok", REFUND_AT, -500),
]
FEE_ENTRIES = [
    entry(903, "ch_dup", FEE_AT + timedelta(hours=2), -59, entry_type="fee"),
    entry(904, "ch_amount", FEE_AT + timedelta(hours=2), -60, entry_type="fee"),
]
"""Fees and the balance tie-out through the prod target too."""
PAYOUTS = [payout("po_ok", date(2024, 3, 6)), payout("po_short", date(2024, 3, 6), amount=900)]
PAYOUT_ENTRIES = [
    entry(905, "po_ok", utc(2024, 3, 6, 15), -5000, entry_type="payout"),
    entry(906, "po_short", utc(2024, 3, 6, 15), -800, entry_type="payout"),
]
CARRIED = [
    {**txn("txn_c_po_ok", "ch_po_ok", FEE_AT, 5059, 59), "payout": "po_ok"},
    {**txn("txn_po_ok", "po_ok", utc(2024, 3, 5, 2), -5000, type_="payout"), "payout": "po_ok"},
    {**txn("txn_c_po_short", "ch_po_short", FEE_AT, 659, 59), "payout": "po_short"},
]
"""Payouts, their arrival date and what they carried through the prod target too."""
DISPUTE_AT = utc(2024, 3, 7, 15)
DISPUTES = [dispute("dp_ok", DISPUTE_AT, status="lost")]
DISPUTE_TXNS = [
    {**txn("txn_dw_dp_ok", "dp_ok", DISPUTE_AT, -4000, 1500, type_="adjustment"),
     "reporting_category": "dispute"},
]  # fmt: skip
DISPUTE_ENTRIES = [
    entry(907, "dp_ok", DISPUTE_AT + timedelta(hours=2), -4000, entry_type="dispute"),
    entry(908, "dp_ok", DISPUTE_AT + timedelta(hours=2), -1500, entry_type="fee"),
    # a reinstatement booked for a dispute that was lost
    entry(909, "dp_ok", DISPUTE_AT + timedelta(days=1), 4000, entry_type="dispute"),
]
"""A dispute's movements by their sign and its fee through the prod target too."""


def epoch_rows(rows: list[tuple]) -> list[tuple]:
    """Expected fct rows with charge_synced_at as epoch seconds (see module docstring)."""
    return sorted(
        [(*r[:-1], None if r[-1] is None else int(r[-1].timestamp())) for r in rows], key=_key
    )


def test_prod_target_builds_and_restates_a_window(
    fakesnow_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    wh = Warehouse(fakesnow_kwargs)
    cs = cases()
    wh.write_raw(*flatten(cs))

    wh.dbt(tmp_path, "build")
    want = expected_fct(cs)
    before = wh.fct()
    assert before == epoch_rows(want)
    assert wh.rpt() == expected_rpt(want)
    assert wh.refunds() == {
        "re_ok": ("matched", 500, -500, 0),
        "re_sign": ("amount_mismatch", 500, 500, 1000),
        "re_missing": ("missing_in_ledger", 700, None, 700),
        "re_refunded_unknown": ("missing_in_stripe", None, -1000, -1000),
    }
    assert {k: v for k, v in wh.fees().items() if k.startswith("ch_")} == {
        "ch_dup": ("matched", 59, -59, 0),
        "ch_amount": ("amount_mismatch", 59, -60, -1),
    }
    # payouts on their arrival date (a UTC date, never the US-Eastern evening before), and
    # a payout whose listing came back short is named
    assert wh.payouts() == {
        "po_ok": (date(2024, 3, 6), "matched", 5000, -5000, 0),
        "po_short": (date(2024, 3, 6), "amount_mismatch", 900, -800, 100),
    }
    composition = wh.execute(
        "select payout_id, is_complete, carried_net from MARTS.RPT_PAYOUT_COMPOSITION"
    )
    assert sorted(composition) == [("po_ok", True, 5000), ("po_short", False, 600)]
    # the tie-out, on Snowflake SQL: Stripe's side is the day's net, every cent named
    ((stripe_net, difference, explained, unexplained),) = wh.execute(
        "select stripe_net, difference, explained, unexplained from MARTS.RPT_BALANCE_TIEOUT "
        "where reporting_date = '2024-03-05' and currency = 'USD'"
    )
    assert stripe_net == 2 * (1000 - 59) - 500
    assert difference == explained + unexplained
    # a dispute's movements by their sign, its fee keyed by it, on Snowflake SQL
    d7, d8 = date(2024, 3, 7), date(2024, 3, 8)
    assert wh.disputes() == {
        ("dp_ok", "withdrawal"): (d7, "matched", 4000, -4000, 0),
        ("dp_ok", "reinstatement"): (d8, "unexpected_ledger_entry", None, 4000, 4000),
    }
    assert wh.fees()["dp_ok"] == ("matched", 1500, -1500, 0)
    ((d_unexplained,),) = wh.execute(
        "select unexplained from MARTS.RPT_BALANCE_TIEOUT "
        "where reporting_date = '2024-03-07' and currency = 'USD'"
    )
    assert d_unexplained == 0

    # Loaded later: Stripe re-pulls ch_pending (now succeeded); the only 2024-03-12 item
    # becomes an adjustment; a late entry books the Mar 5 charge ch_missing.
    d5, d11, d12, d13 = date(2024, 3, 5), date(2024, 3, 11), date(2024, 3, 12), date(2024, 3, 13)
    charges, entries = flatten(cs)
    charges = [
        {**charge("ch_pending", c["created"], synced=RESYNCED), "_loaded_at": LOADED_2}
        if c["id"] == "ch_pending"
        else c
        for c in charges
    ]
    entries = [
        {**e, "entry_type": "adjustment", "_loaded_at": LOADED_2} if e["id"] == 501 else e
        for e in entries
    ] + [{**entry(601, "ch_missing", utc(2024, 3, 12, 14)), "_loaded_at": LOADED_2}]
    wh.write_raw(charges, entries)

    wh.dbt(tmp_path, "build", "--vars", window_vars(d11, d13))
    after = wh.fct()
    new_d11 = Expect(d11, "ch_pending", "matched", "USD", 1000, 1000, "1", RESYNCED).row()
    assert epoch_rows([new_d11])[0] in after
    reopened = Expect(d5, "ch_missing", "late_posting", "USD", 1000, 1000, "601").row()
    assert epoch_rows([reopened])[0] in after  # outside the window, reopened by its entry
    assert [r for r in after if r[0] == d12] == []
    assert [r for r in after if r[0] not in (d11, d12) and r[1] != "ch_missing"] == [
        r for r in before if r[0] not in (d11, d12) and r[1] != "ch_missing"
    ]
    rpt_after = wh.rpt()
    assert [r for r in rpt_after if r[0] == d12] == []

    # the history kept the first build's version of each changed item, on Snowflake too
    changes = set(
        wh.execute("select recon_key, status_before, status_after from MARTS.RPT_STATUS_CHANGES")
    )
    assert changes == {
        ("charge:ch_pending", "pending_in_stripe", "matched"),
        ("charge:ch_missing", "missing_in_ledger", "late_posting"),
        ("ledger_entry:501", "missing_in_stripe", None),
    }
    versions = wh.execute("select count(*) from MARTS.FCT_RECONCILIATION_HISTORY")

    wh.dbt(tmp_path, "build", "--vars", window_vars(d11, d13))
    assert wh.fct() == after
    assert wh.rpt() == rpt_after
    assert wh.execute("select count(*) from MARTS.FCT_RECONCILIATION_HISTORY") == versions
    gone = wh.execute(
        "select is_open, resolution from MARTS.RPT_BREAK_HISTORY where recon_key = 'ledger_entry:501'"
    )
    assert gone == [(False, "went_away")]
    # every build passed every test of the marts, so the later ones checked `unique` on the
    # keys they wrote (macros/checked_builds.sql), on Snowflake's SQL too
    checked = wh.execute("select model_name, checked from PUBLIC.RECON_CHECKED_BUILDS")
    assert sorted(checked) == sorted(
        [
            ("fct_charge_reconciliation", True),
            ("fct_refund_reconciliation", True),
            ("fct_fee_reconciliation", True),
            ("fct_dispute_reconciliation", True),
            ("fct_payout_reconciliation", True),
            ("fct_reconciliation_history", True),
        ]
        * 3
    )
    log = (tmp_path / "logs" / "dbt.log").read_text()
    assert (
        "recon: unique_fct_charge_reconciliation_recon_key checks the keys this build wrote" in log
    )
    assert (
        "recon: unique_fct_reconciliation_history_history_key checks the keys this build wrote"
        in log
    )


def test_prod_target_stops_on_an_amount_that_overflows(
    fakesnow_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    """The overflow guard on the Snowflake dialect stops the build before the fact table changes.

    fakesnow stores NUMBER(38,0) as DuckDB's BIGINT, so the guard's own widening cast already
    overflows there and the error is fakesnow's conversion error, not the guard's message naming
    the entries (real Snowflake's NUMBER(38,0) holds the sum; the DuckDB test checks the
    message). What must hold on both: the guard errors, everything after it is skipped, and the
    facts are as they were."""
    wh = Warehouse(fakesnow_kwargs)
    t = utc(2024, 3, 5, 12)
    charges = [charge("ch_ok", t), charge("ch_big", t)]
    entries = [entry(1, "ch_ok", t + timedelta(hours=1))]
    wh.write_raw(charges, entries)
    wh.dbt(tmp_path, "build")
    before = wh.fct()
    big = 2**63 - 10
    entries += [
        {**entry(7001, "ch_big", t + timedelta(hours=1), big), "_loaded_at": LOADED_2},
        {**entry(7002, "ch_big", t + timedelta(hours=2), big), "_loaded_at": LOADED_2},
    ]
    wh.write_raw(charges, entries)
    out = wh.dbt(tmp_path, "build", fail=True)
    assert "ERROR assert_amounts_fit_in_int64" in out.replace("\x1b[31m", "").replace("\x1b[0m", "")
    assert wh.fct() == before
