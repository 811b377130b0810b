"""The ledger seeder: reproducible from a seed, idempotent, break counts as configured, and a
ground truth that follows DESIGN.md's rules table exactly (checked against an independent SQL
implementation of the table over the rows actually written)."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recon_assets.local import ledger_seeder as seeder
from recon_assets.local.ledger_seeder import (
    DAY_US,
    US,
    BreakRates,
    GroundTruthRow,
    account_balance,
    account_refunds,
    classify_charge,
    load_ground_truth,
    seed_ledger,
    seed_ledger_from_emulator,
)
from recon_assets.timewindows import business_day_of, day_window

pytest_plugins = ["tests.ledger_fixtures"]
pytestmark = pytest.mark.timeout(120)

T3 = 3 * DAY_US
FIRST, LAST = date(2024, 3, 9), date(2024, 3, 11)  # spans the spring-forward day
RATES = BreakRates(
    amount_mismatch=0.03,
    currency_mismatch=0.02,
    missing_in_ledger=0.03,
    duplicate_in_ledger=0.02,
    late_posting=0.03,
    within_tolerance=0.05,
    missing_in_stripe=0.01,
    unexpected_ledger_entry=0.2,
    pending_with_entry=0.3,
    corrected=0.5,
    reversed_booking=0.02,
)
FAR_AS_OF = datetime(2024, 4, 1, 4, tzinfo=UTC)


def fake_charges(n_per_day: int = 400, seed: int = 1) -> Any:
    """A stand-in for `ChargeGenerator.iter_charges`: Stripe-shaped dicts, deterministic."""

    def iter_charges(gte: int, lt: int) -> Iterator[dict[str, Any]]:
        day = business_day_of(gte)
        rng = random.Random(f"{seed}:{day}")
        for i in range(n_per_day):
            u = rng.random()
            status, captured = (
                ("pending", True) if u < 0.05
                else ("failed", False) if u < 0.12
                else ("succeeded", False) if u < 0.15
                else ("succeeded", True)
            )  # fmt: skip
            currency = rng.choice(["usd", "usd", "usd", "eur", "gbp", "jpy", "krw"])
            amount = rng.randint(50, 200_000)
            partial = captured and rng.random() < 0.02
            amount_captured = (amount // 2 if partial else amount) if captured else 0
            yield {
                "id": f"ch_test{day:%Y%m%d}{i:06d}",
                "object": "charge",
                "created": rng.randrange(gte, lt),
                "status": status,
                "captured": captured,
                "amount": amount,
                "amount_captured": amount_captured,
                "amount_refunded": amount_captured // 3 if captured and rng.random() < 0.05 else 0,
                "currency": currency,
            }

    return iter_charges


def _entries(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT e.id, entry_type, external_ref, account, amount_minor, currency, posted_at, "
        "e.created_at, updated_at, e.created_by, e.source_system, j.batch_key, reversal_of, "
        "e.description FROM ledger_entries e JOIN ledger_journals j ON j.id = e.journal_id "
        "ORDER BY e.id"
    ).fetchall()


# -- the rules table, row by row, with its edges ----------------------------------------------


class _E:
    def __init__(self, amount: int = 1000, currency: str = "USD", posted_us: int = 0) -> None:
        self.amount_minor, self.currency, self.posted_us = amount, currency, posted_us


CREATED = 1_710_000_000
DEADLINE = CREATED * US + T3


def _charge(**kw: Any) -> dict[str, Any]:
    base = {"id": "ch_x", "created": CREATED, "status": "succeeded", "captured": True,
            "amount": 1000, "amount_captured": 1000, "currency": "usd"}  # fmt: skip
    return base | kw


@pytest.mark.parametrize(
    ("charge", "entries", "as_of_us", "expected"),
    [
        (_charge(status="pending"), [_E(), _E()], DEADLINE + 1, "pending_in_stripe"),
        (_charge(status="failed", captured=False), [], DEADLINE + 1, "not_booked"),
        (_charge(captured=False), [_E()], DEADLINE + 1, "unexpected_ledger_entry"),
        (_charge(), [], DEADLINE - 1, "pending_in_ledger"),
        (_charge(), [], DEADLINE, "missing_in_ledger"),  # deadline not after as_of: missing
        (_charge(), [_E(), _E()], DEADLINE + 1, "duplicate_in_ledger"),
        (_charge(), [_E(currency="EUR", amount=1)], DEADLINE + 1, "currency_mismatch"),
        (_charge(), [_E(amount=999, posted_us=DEADLINE + 5)], DEADLINE + 9, "amount_mismatch"),
        (_charge(amount=1000, amount_captured=600), [_E(amount=1000)], DEADLINE, "amount_mismatch"),
        (_charge(), [_E(posted_us=DEADLINE + 1)], DEADLINE + 9, "late_posting"),
        (_charge(), [_E(posted_us=DEADLINE)], DEADLINE + 9, "matched"),  # on the deadline: in time
        (
            _charge(currency="jpy", amount=1000, amount_captured=1000),
            [_E(currency="JPY")],
            DEADLINE,
            "matched",
        ),
    ],
)
def test_classify_follows_the_rules_table(
    charge: Mapping[str, Any], entries: list[_E], as_of_us: int, expected: str
) -> None:
    assert classify_charge(charge, entries, as_of_us, T3) == expected


def test_break_rates_are_validated() -> None:
    with pytest.raises(ValueError, match="within"):
        BreakRates(amount_mismatch=1.5)
    with pytest.raises(ValueError, match="sum to more than 1"):
        BreakRates(missing_in_ledger=0.6, late_posting=0.6)
    assert all(v == 0 for v in vars(BreakRates.none()).values())


# -- against a real Postgres --------------------------------------------------------------------

_RULES_SQL = """
WITH rev AS (
    SELECT reversal_of, sum(amount_minor) AS amount, array_agg(id) AS ids
    FROM ledger_entries
    WHERE entry_type = 'reversal' AND posted_at < %(as_of)s
    GROUP BY reversal_of
),
ce AS (
    SELECT l.id, l.external_ref, l.amount_minor + coalesce(r.amount, 0) AS net, l.currency,
           l.posted_at, coalesce(r.ids, '{}') AS rev_ids,
           r.reversal_of IS NOT NULL AND l.amount_minor + r.amount = 0 AS gone
    FROM ledger_entries l LEFT JOIN rev r ON r.reversal_of = l.id
    WHERE l.entry_type = 'charge' AND l.posted_at < %(as_of)s
),
ids AS (
    SELECT external_ref, array_agg(i ORDER BY i) AS ids
    FROM (SELECT external_ref, id AS i FROM ce
          UNION ALL SELECT external_ref, unnest(rev_ids) FROM ce) AS x
    GROUP BY external_ref
),
e AS (
    SELECT external_ref, count(*) FILTER (WHERE NOT gone) AS n,
           sum(net) FILTER (WHERE NOT gone) AS amount,
           min(currency) FILTER (WHERE NOT gone) AS cur, min(posted_at) AS first_posted
    FROM ce
    GROUP BY external_ref
)
SELECT s.id,
       CASE
         WHEN s.status = 'pending' THEN 'pending_in_stripe'
         WHEN NOT (s.status = 'succeeded' AND s.captured)
           THEN CASE WHEN coalesce(e.n, 0) = 0 THEN 'not_booked' ELSE 'unexpected_ledger_entry' END
         WHEN coalesce(e.n, 0) = 0
           THEN CASE WHEN s.created + make_interval(hours => 24 * %(t)s) > %(as_of)s
                     THEN 'pending_in_ledger' ELSE 'missing_in_ledger' END
         WHEN e.n > 1 THEN 'duplicate_in_ledger'
         WHEN e.cur <> upper(s.currency) THEN 'currency_mismatch'
         WHEN e.amount <> s.amount_captured THEN 'amount_mismatch'
         WHEN e.first_posted > s.created + make_interval(hours => 24 * %(t)s) THEN 'late_posting'
         ELSE 'matched'
       END,
       coalesce(ids.ids, '{}'), (s.created AT TIME ZONE 'America/New_York')::date,
       upper(s.currency), s.amount_captured, e.amount
FROM stripe s LEFT JOIN e ON e.external_ref = s.id LEFT JOIN ids ON ids.external_ref = s.id
UNION ALL
SELECT l.external_ref, 'missing_in_stripe', ARRAY[l.id],
       (l.posted_at AT TIME ZONE 'America/New_York')::date, l.currency::text, NULL, l.net
FROM ce l
WHERE NOT l.gone
  AND NOT EXISTS (SELECT 1 FROM stripe s WHERE s.id = l.external_ref)
"""


def _independent_truth(
    conn: psycopg.Connection, charges: list[Mapping[str, Any]], as_of: datetime, t_days: int = 3
) -> dict[str, tuple]:
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS stripe (id text PRIMARY KEY, created timestamptz, "
        "status text, captured bool, amount_captured bigint, currency text)"
    )
    conn.execute("TRUNCATE stripe")
    with conn.cursor() as cur, cur.copy("COPY stripe FROM STDIN") as cp:
        for c in charges:
            cp.write_row((c["id"], datetime.fromtimestamp(c["created"], UTC), c["status"],
                          c["captured"], c["amount_captured"], c["currency"]))  # fmt: skip
    rows = conn.execute(_RULES_SQL, {"as_of": as_of, "t": t_days}).fetchall()
    return {r[0]: (r[1], tuple(r[2]), r[3], r[4], r[5], r[6]) for r in rows}


def _as_tuples(rows: list[GroundTruthRow]) -> dict[str, tuple]:
    return {
        r.charge_id: (r.recon_status, r.ledger_entry_ids, r.reporting_date, r.currency,
                      r.stripe_amount, r.ledger_amount)
        for r in rows
    }  # fmt: skip


def _all_charges(source: Any, first: date, last: date) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    d = first
    while d <= last:
        w = day_window(d)
        out += list(source(w.start, w.end))
        d += timedelta(1)
    return out


@pytest.mark.parametrize("as_of", [None, FAR_AS_OF], ids=["as_of_end_of_last_day", "as_of_final"])
def test_ground_truth_matches_an_independent_reading_of_the_rules(
    ledger_conn: psycopg.Connection, as_of: datetime | None
) -> None:
    source = fake_charges()
    result = seed_ledger(ledger_conn, source, FIRST, LAST, seed=11, rates=RATES, as_of=as_of)
    truth = _as_tuples(result.ground_truth)
    assert len(truth) == len(result.ground_truth)  # one row per charge or orphan
    assert _as_tuples(load_ground_truth(ledger_conn)) == truth
    expected = _independent_truth(ledger_conn, _all_charges(source, FIRST, LAST), result.as_of)
    assert truth == expected
    statuses = Counter(v[0] for v in truth.values())
    if as_of is None:
        # As of the end of the last day: its freshest charges are not booked yet.
        assert result.as_of == datetime(2024, 3, 12, 4, tzinfo=UTC)
        assert statuses["pending_in_ledger"] > 0
    else:
        assert statuses["pending_in_ledger"] == 0


def test_break_counts_are_as_configured(
    ledger_conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As of a date when every status is final, each injected break shows up exactly once in
    the ground truth, and each count is r * eligible rounded up or down per day."""
    monkeypatch.setattr(seeder, "ADJUSTMENT_RATE", 0.02)  # make the rare noise entries appear
    result = seed_ledger(
        ledger_conn, fake_charges(), FIRST, LAST, seed=11, rates=RATES, as_of=FAR_AS_OF
    )
    s = result.summary
    inj, gt, eligible = s["injected"], s["ground_truth"], s["eligible"]
    for kind, (lo, hi) in s["injected_bounds"].items():
        assert lo <= inj[kind] <= hi, kind
        n = eligible["succeeded_captured"]
        if kind == "unexpected_ledger_entry":
            n = eligible["failed_or_uncaptured"]
        elif kind == "pending_with_entry":
            n = eligible["pending"]
        elif kind == "reversed_booking":  # of the settled charges no break was injected into
            n = eligible["succeeded_captured"] - sum(inj[k] for k in seeder._SC_BREAKS)
        assert lo <= getattr(RATES, kind) * n <= hi, kind
        assert hi - lo <= 3  # at most one per day of rounding
    # ops corrected about half of the breaks that a reversal can correct, and each correction
    # resolves its break (matched, not_booked, or no orphan at all)
    fixed = s["corrected"]
    correctable = ("amount_mismatch", "duplicate_in_ledger", "missing_in_stripe",
                   "unexpected_ledger_entry")  # fmt: skip
    assert set(fixed) == set(correctable)
    for kind in correctable:
        assert 0 < fixed[kind] < inj[kind], kind
    for kind in ("amount_mismatch", "currency_mismatch", "duplicate_in_ledger", "late_posting",
                 "missing_in_stripe", "unexpected_ledger_entry"):  # fmt: skip
        assert gt[kind] == inj[kind] - fixed.get(kind, 0) > 0, kind
    # a good booking reversed with nothing booked again is missing, not matched
    assert inj["reversed_booking"] > 0
    assert gt["missing_in_ledger"] == inj["missing_in_ledger"] + inj["reversed_booking"]
    assert gt["pending_in_stripe"] == eligible["pending"]
    assert gt["not_booked"] == (
        eligible["failed_or_uncaptured"] - inj["unexpected_ledger_entry"]
        + fixed["unexpected_ledger_entry"]
    )  # fmt: skip
    assert gt["matched"] == eligible["succeeded_captured"] - sum(
        inj[k] for k in ("amount_mismatch", "currency_mismatch", "missing_in_ledger",
                         "duplicate_in_ledger", "late_posting", "reversed_booking")
    ) + fixed["amount_mismatch"] + fixed["duplicate_in_ledger"]  # fmt: skip
    assert sum(gt.values()) == s["charges"] + inj["missing_in_stripe"] - fixed["missing_in_stripe"]
    assert {"adjustment", "reversal"} <= set(s["entries_by_type"])


def test_no_breaks_means_every_settled_charge_matches(ledger_conn: psycopg.Connection) -> None:
    r = seed_ledger(ledger_conn, fake_charges(200), FIRST, FIRST, seed=3, rates=BreakRates.none(),
                    as_of=FAR_AS_OF)  # fmt: skip
    gt = r.summary["ground_truth"]
    assert gt["matched"] == r.summary["eligible"]["succeeded_captured"]
    assert gt["matched"] + gt["pending_in_stripe"] + gt["not_booked"] == r.summary["charges"]


def test_reproducible_idempotent_and_independent_of_the_range(
    ledger_db_dsn: str, ledger_pg: Any
) -> None:
    """Same seed, same rows; re-seeding replaces; seeding day by day == seeding the range."""
    from tests.ledger_fixtures import _create_db, _db_dsn, _drop_db

    source = fake_charges(300)
    with psycopg.connect(ledger_db_dsn, autocommit=True) as conn:
        first = seed_ledger(conn, source, FIRST, LAST, seed=5, rates=RATES, as_of=FAR_AS_OF)
        rows = _entries(conn)
        again = seed_ledger(conn, source, FIRST, LAST, seed=5, rates=RATES, as_of=FAR_AS_OF)
        assert _entries(conn) == rows
        assert again.ground_truth == first.ground_truth
        assert again.summary == first.summary
        n_truth = conn.execute("SELECT count(*) FROM seed.recon_ground_truth").fetchone()
        assert n_truth == (len(first.ground_truth),)
        # Without keeping the rows (the CLI's bootstrap): the same ledger, table and counts.
        table = "SELECT * FROM seed.recon_ground_truth ORDER BY charge_id"
        kept = conn.execute(table).fetchall()
        lean = seed_ledger(conn, source, FIRST, LAST, seed=5, rates=RATES, as_of=FAR_AS_OF,
                           keep_truth=False)  # fmt: skip
        assert lean.ground_truth == [] and lean.summary == first.summary
        assert _entries(conn) == rows
        assert conn.execute(table).fetchall() == kept
        # Re-seeding one day leaves the others alone.
        seed_ledger(conn, source, LAST, LAST, seed=5, rates=RATES, as_of=FAR_AS_OF)
        assert _entries(conn) == rows
        other = seed_ledger(conn, source, LAST, LAST, seed=6, rates=RATES, as_of=FAR_AS_OF)
        assert _entries(conn) != rows
        assert {r.seed_day for r in other.ground_truth} == {LAST}
    name = _create_db(ledger_pg.dsn, "recon_ledger_template")
    try:
        with psycopg.connect(_db_dsn(ledger_pg.dsn, name), autocommit=True) as conn:
            for d in (LAST, FIRST, FIRST + timedelta(1)):  # any order, one day at a time
                seed_ledger(conn, source, d, d, seed=5, rates=RATES, as_of=FAR_AS_OF)
            assert _entries(conn) == rows
    finally:
        _drop_db(ledger_pg.dsn, name)


def test_reporting_dates_are_us_eastern(ledger_conn: psycopg.Connection) -> None:
    """A charge at 01:30 UTC on 2024-03-10 is reported on 2024-03-09 ET; orphans on the ET day
    they were posted."""
    w = day_window(date(2024, 3, 9))

    def source(gte: int, lt: int) -> list[dict[str, Any]]:
        if gte != w.start:
            return []
        t = int(datetime(2024, 3, 10, 1, 30, tzinfo=UTC).timestamp())
        return [_charge(id="ch_late_evening", created=t)]

    rates = BreakRates(missing_in_stripe=1.0)
    r = seed_ledger(ledger_conn, source, date(2024, 3, 9), date(2024, 3, 9), seed=1, rates=rates)
    by_status = {row.recon_status: row for row in r.ground_truth}
    assert by_status["matched"].reporting_date == date(2024, 3, 9)
    orphan = by_status["missing_in_stripe"]
    (posted,) = ledger_conn.execute(
        "SELECT posted_at FROM ledger_entries WHERE id = %s", (orphan.ledger_entry_ids[0],)
    ).fetchone()  # type: ignore[misc]
    assert orphan.reporting_date == business_day_of(posted) == date(2024, 3, 9)


def test_seeding_from_the_emulator_covers_every_charge_once(
    ledger_conn: psycopg.Connection,
) -> None:
    from recon_assets.local.stripe_emulator import ChargeGenerator, EmulatorConfig

    cfg = EmulatorConfig(
        seed=42, charges_per_day=300, start_date=date(2024, 3, 9), end_date=date(2024, 3, 12),
        now=day_window(date(2024, 3, 13)).start,
    )  # fmt: skip
    r = seed_ledger_from_emulator(ledger_conn, cfg)
    gen = ChargeGenerator(cfg)
    charges = _all_charges(gen.iter_charges, cfg.start_date, date(2024, 3, 11))
    truth = _as_tuples(r.ground_truth)
    ids = [k for k, v in truth.items() if v[0] != "missing_in_stripe" and k.startswith("ch_")]
    assert sorted(ids) == sorted(c["id"] for c in charges)
    assert r.summary["charges"] == len(charges) > 0
    charge_truth = {k: v for k, v in truth.items() if not k.startswith(("re_", "fee:", "dp_"))}
    assert charge_truth == _independent_truth(ledger_conn, charges, r.as_of)
    # every fee Stripe took on those charges is an item of its own, Stripe's amount its fee
    fees = {
        "fee:" + t["source"]: t
        for c in charges
        for t in account_balance(gen)(c["id"], None)
        if t["fee"] and t["created"] < r.as_of.timestamp()
    }
    # (a dispute's fee is keyed by the dispute: test_each_dispute_movement_is_booked_...)
    assert fees and {k for k in truth if k.startswith("fee:ch_")} == set(fees)
    for k, t in fees.items():
        assert truth[k][4] == t["fee"] > 0 and truth[k][3] == t["currency"].upper()
        assert truth[k][2] == business_day_of(t["created"])
    # every refund of those charges is an item of its own, booked minus its amount, naming it
    refunds = {
        f["id"]: f
        for c in charges
        for f in account_refunds(gen)(c["id"], None)
        if f["created"] < r.as_of.timestamp()
    }
    assert refunds and {k for k, v in truth.items() if k.startswith("re_")
                        and v[0] != "missing_in_stripe"} == set(refunds)  # fmt: skip
    booked = dict(ledger_conn.execute(
        "SELECT external_ref, sum(amount_minor) FROM ledger_entries WHERE entry_type = 'refund' "
        "GROUP BY 1").fetchall())  # fmt: skip
    for rid, f in refunds.items():
        status, _ids, day, cur, stripe, ledger = truth[rid]
        assert (day, cur, stripe) == (business_day_of(f["created"]), f["currency"].upper(),
                                      f["amount"])  # fmt: skip
        if status == "matched":
            assert ledger == booked[rid] == -f["amount"]


# --- grow_ledger: a ledger that grows with the clock, never re-seeded ---------------------------

ACCOUNT = {"seed": 5, "charges_per_day": 300, "tolerance_days": 3, "changes": None}
GROW_DAYS = (FIRST, LAST)


def settles_at(charge: Mapping[str, Any]) -> int | None:
    """A tenth of the settled charges settle 1..72 h after they are created (bank debits)."""
    h = int(str(charge["id"])[-6:])
    if h % 10 or not (charge["status"] == "succeeded" and charge["captured"]):
        return None
    return int(charge["created"]) + 3600 * (1 + h % 72)


def fake_account(n_per_day: int = 300) -> seeder.AccountSource:
    """`fake_charges` as an account over time: nothing exists before it is created, and a
    charge that settles late is pending until then."""
    eventual = fake_charges(n_per_day)

    def at(gte: int, lt: int, now: int) -> Iterator[dict[str, Any]]:
        for c in eventual(gte, lt):
            if int(c["created"]) > now:
                continue
            t = settles_at(c)
            yield {**c, "status": "pending"} if t is not None and now < t else c

    return at


def _grow(conn: psycopg.Connection, clock: datetime, days: tuple[date, date] = GROW_DAYS,
          account: Mapping[str, Any] = ACCOUNT, rates: BreakRates = RATES) -> seeder.GrowResult:  # fmt: skip
    return seeder.grow_ledger(
        conn, fake_account(300), days[0], days[1], clock, seed=5, account=account, rates=rates
    )


def _stamped(conn: psycopg.Connection) -> dict[int, tuple[Any, ...]]:
    """id -> (the whole row as written, its created_at, its updated_at)."""
    return {
        r[0]: r
        for r in conn.execute(
            "SELECT id, entry_type, external_ref, account, amount_minor, currency, posted_at, "
            "reversal_of, description, created_at, updated_at FROM ledger_entries"
        ).fetchall()
    }


def _utc(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


@settings(max_examples=12, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 9 * DAY_US), min_size=1, max_size=4),
    spans=st.lists(st.sampled_from([(FIRST, FIRST), (LAST, LAST), GROW_DAYS]), min_size=4,
                   max_size=4),
)  # fmt: skip
def test_growing_in_any_steps_gives_the_ledger_of_one_step_and_rewrites_nothing(
    ledger_pg: Any, cuts: list[int], spans: list[tuple[date, date]]
) -> None:
    """Whatever the clock steps and day ranges, the entries equal one grow to the last clock over
    every day; a row once written never changes; each row is stamped when it is written, so an
    extract that ran before sees it as a late change."""
    from tests.ledger_fixtures import database_copy

    start_us = day_window(FIRST).start * US
    clocks = [_utc(start_us + c) for c in sorted(cuts)]
    with database_copy(ledger_pg.dsn) as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        seen: dict[int, tuple[Any, ...]] = {}
        for i, clock in enumerate([*clocks, clocks[-1]]):
            began = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
            _grow(conn, clock, spans[i % len(spans)])
            rows = _stamped(conn)
            assert all(rows[k] == v for k, v in seen.items()), "a written row changed"
            for k in rows.keys() - seen.keys():
                assert rows[k][9] == rows[k][10] >= began  # stamped when written
                assert rows[k][6] < clock  # posted before the clock
                assert rows[k][2] not in waiting_at(clock)  # its charge has settled
            seen = rows
        _grow(conn, clocks[-1])  # every day, to the last clock
        stepped = {k: v[:9] for k, v in _stamped(conn).items()}
    with database_copy(ledger_pg.dsn) as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        _grow(conn, clocks[-1])
        assert {k: v[:9] for k, v in _stamped(conn).items()} == stepped


def waiting_at(clock: datetime) -> set[str]:
    """Ids of the grown days' charges that will settle but have not by `clock`."""
    now = int(clock.timestamp())
    source = fake_charges(300)
    return {
        str(c["id"])
        for d in (FIRST, FIRST + timedelta(1), LAST)
        for c in source(day_window(d).start, day_window(d).end)
        if (t := settles_at(c)) is not None and now < t
    }


def test_a_charge_that_settles_late_is_booked_once_it_has_settled(
    ledger_conn: psycopg.Connection,
) -> None:
    """Bookkeeping books a settled charge: a bank debit still pending has no entry yet; once it
    settles, its booking arrives, stamped when written (a late entry, as in any ledger)."""
    ledger_conn.autocommit = True
    clock = _utc(day_window(FIRST).end * US)
    waiting = waiting_at(clock)
    assert waiting
    none = BreakRates.none()  # every settled charge is booked once, in time
    _grow(ledger_conn, clock, rates=none)
    refs = {r[2] for r in _stamped(ledger_conn).values()}
    assert not refs & waiting
    later = clock + timedelta(days=4)
    began = ledger_conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    _grow(ledger_conn, later, rates=none)
    booked = [r for r in _stamped(ledger_conn).values() if r[2] in waiting and r[1] == "charge"]
    settled = waiting - waiting_at(later)
    assert settled and {r[2] for r in booked} == settled
    assert all(r[9] >= began for r in booked)


def test_a_grown_day_is_never_seeded_again_and_a_complete_day_never_planned_again(
    ledger_conn: psycopg.Connection,
) -> None:
    ledger_conn.autocommit = True
    early = _utc(day_window(LAST).end * US)
    first = _grow(ledger_conn, early)
    rows = _stamped(ledger_conn)
    assert first.entries_written == len(rows) > 0 and first.days_complete_before == 0
    again = _grow(ledger_conn, early)
    assert (again.entries_written, again.days_written) == (0, 0)
    assert _stamped(ledger_conn) == rows
    late = _utc(day_window(LAST + timedelta(days=30)).end * US)
    grown = _grow(ledger_conn, late)  # the late postings arrive; nothing earlier moves
    after = _stamped(ledger_conn)
    assert grown.entries_written == len(after) - len(rows) > 0
    assert all(after[k] == v for k, v in rows.items())
    done = _grow(ledger_conn, late + timedelta(days=1))
    assert done.days_complete_before == (LAST - FIRST).days + 1 and done.entries_written == 0


def test_a_ledger_grown_for_another_account_is_refused(ledger_conn: psycopg.Connection) -> None:
    ledger_conn.autocommit = True
    clock = _utc(day_window(LAST).end * US)
    _grow(ledger_conn, clock)
    rows = _stamped(ledger_conn)
    with pytest.raises(seeder.SeedAccountMismatch, match="another RECON_HOME"):
        _grow(ledger_conn, clock + timedelta(days=1), account={**ACCOUNT, "charges_per_day": 9})
    assert _stamped(ledger_conn) == rows


def test_each_fee_is_booked_from_its_transaction_with_the_fee_breaks_as_configured(
    ledger_conn: psycopg.Connection,
) -> None:
    """With a balance source, each booked charge's fee is a `fee` entry naming the charge with
    minus its transaction's fee (never posted before the transaction), the fee breaks are
    injected at their rates, a charge left unbooked leaves its fee unbooked too, and every fee
    is an item of the ground truth, classified by the charges' rules."""
    charges = fake_charges(300)
    by_id: dict[str, dict[str, Any]] = {}
    for d in (FIRST, FIRST + timedelta(1), LAST):
        w = day_window(d)
        by_id.update({str(c["id"]): c for c in charges(w.start, w.end)})

    def balance(cid: str, now: int | None) -> list[dict[str, Any]]:
        c = by_id.get(cid)
        if c is None or c["status"] != "succeeded" or not c["captured"]:
            return []
        fee = max(1, int(c["amount_captured"]) * 29 // 1000 + 30)
        return [{"id": "txn_" + cid[3:], "source": cid, "created": c["created"] + 60,
                 "amount": c["amount_captured"], "fee": fee, "currency": c["currency"]}]  # fmt: skip

    rates = dataclasses.replace(
        RATES, fee_missing=0.05, fee_amount_mismatch=0.05, fee_duplicate=0.05
    )
    r = seed_ledger(ledger_conn, charges, FIRST, LAST, seed=5, rates=rates, as_of=FAR_AS_OF,
                    balance=balance)  # fmt: skip
    fees = {t.charge_id: t for t in r.ground_truth if t.item_type == "fee"}
    settled = [c for c in by_id.values() if c["status"] == "succeeded" and c["captured"]]
    assert set(fees) == {"fee:" + str(c["id"]) for c in settled}
    inj, fixed = r.summary["injected"], r.summary["corrected"]
    for kind in ("fee_missing", "fee_amount_mismatch", "fee_duplicate"):
        assert 0.02 * len(settled) < inj[kind] < 0.09 * len(settled), kind
    statuses = Counter(t.recon_status for t in fees.values())
    # an unbooked charge's fee is missing too; a wrong fee corrected is matched again
    assert statuses["missing_in_ledger"] == inj["fee_missing"] + inj["missing_in_ledger"]
    # (a wrong fee on a charge booked in the wrong currency is a currency mismatch first)
    wrong_fee = inj["fee_amount_mismatch"] - fixed["fee_amount_mismatch"]
    assert wrong_fee - inj["currency_mismatch"] <= statuses["amount_mismatch"] <= wrong_fee
    assert statuses["duplicate_in_ledger"] == inj["fee_duplicate"] - fixed["fee_duplicate"]
    rows = ledger_conn.execute(
        "SELECT external_ref, amount_minor, posted_at FROM ledger_entries WHERE entry_type = 'fee'"
    ).fetchall()
    assert rows
    for ref, amount, posted in rows:
        (txn,) = balance(ref, None)
        assert posted.timestamp() >= txn["created"]
        assert amount in {-txn["fee"] + d for d in (0, -30, -1, 1, 30)}
    matched = [t for t in fees.values() if t.recon_status == "matched"]
    assert matched and all(t.ledger_amount == -t.stripe_amount for t in matched)


def test_each_payout_is_booked_on_its_bank_day_with_the_payout_breaks_as_configured(
    ledger_conn: psycopg.Connection,
) -> None:
    """With a payout source, each payout arriving on a seeded day is a `payout` entry naming it
    with minus its amount, posted in the US-Eastern business day of its arrival date (never the
    evening before, when Stripe's arrival instant falls); a failed one is reversed after it
    failed, except the share ops never reverse; pending ones are not booked; the payout breaks
    are injected at their rates; and every payout is an item of the ground truth on its
    arrival date, classified by the charges' rules."""
    charges = fake_charges(50)
    statuses = ["paid"] * 14 + ["failed", "failed", "in_transit"]

    def payouts(day: date, now: int | None) -> list[dict[str, Any]]:
        arrives = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        return [
            {"id": f"po_{day:%m%d}{i:02d}", "object": "payout", "amount": 10_000 + i,
             "currency": "usd" if i % 2 else "jpy", "created": arrives - 22 * 3600,
             "arrival_date": arrives, "status": st,
             **({"_failed_at": arrives + 6 * 3600} if st == "failed" else {})}
            for i, st in enumerate(statuses)
        ]  # fmt: skip

    rates = dataclasses.replace(
        RATES, payout_missing=0.1, payout_amount_mismatch=0.1, payout_duplicate=0.1,
        payout_failure_unreversed=0.5,
    )  # fmt: skip
    r = seed_ledger(ledger_conn, charges, FIRST, LAST, seed=9, rates=rates, as_of=FAR_AS_OF,
                    payouts=payouts)  # fmt: skip
    truth = {t.charge_id: t for t in r.ground_truth if t.item_type == "payout"}
    days = [FIRST + timedelta(i) for i in range((LAST - FIRST).days + 1)]
    want = {p["id"]: p for d in days for p in payouts(d, None)}
    assert set(truth) == set(want)
    for pid, t in truth.items():
        p = want[pid]
        assert t.reporting_date == datetime.fromtimestamp(p["arrival_date"], UTC).date()
        assert t.stripe_amount == p["amount"] and t.currency == p["currency"].upper()
        if p["status"] == "in_transit":
            assert t.recon_status == "pending_in_stripe" and not t.ledger_entry_ids
        if p["status"] == "failed":
            assert t.recon_status in ("not_booked", "unexpected_ledger_entry")
    inj = r.summary["injected"]
    assert sum(inj[k] for k in ("payout_missing", "payout_amount_mismatch",
                                "payout_duplicate")) > 0  # fmt: skip
    got = Counter(t.recon_status for t in truth.values())
    assert got["missing_in_ledger"] == inj["payout_missing"]
    assert got["duplicate_in_ledger"] == inj["payout_duplicate"]
    assert got["amount_mismatch"] == inj["payout_amount_mismatch"]
    assert got["unexpected_ledger_entry"] == inj["payout_failure_unreversed"]
    assert got["matched"] > 0
    rows = ledger_conn.execute(
        "SELECT external_ref, amount_minor, posted_at FROM ledger_entries "
        "WHERE entry_type = 'payout'"
    ).fetchall()
    assert rows
    for ref, amount, posted in rows:
        p = want[ref]
        assert p["status"] in ("paid", "failed")
        bank_day = datetime.fromtimestamp(p["arrival_date"], UTC).date()
        assert business_day_of(posted) >= bank_day  # booked on the bank's day, or after
        assert amount in {-p["amount"] + d for d in (0, 1, -1, 1500, 2500)}


def test_each_dispute_movement_is_booked_by_its_sign_with_the_dispute_breaks_as_configured(
    ledger_conn: psycopg.Connection,
) -> None:
    """With a dispute source, each movement of a dispute of a seeded day's settled charge (the
    withdrawal, the reinstatement of a won one) is a `dispute` entry naming the dispute, signed
    as the money moved, posted after Stripe moved it; the dispute fee is a `fee` entry naming
    the dispute; the dispute breaks are injected at their rates; and every movement is an item
    of the ground truth on its transaction's day, keyed `dp_...#withdrawal` / `#reinstatement`,
    Stripe's amount what it took out of the balance."""
    charges = fake_charges(60)

    def disputes(cid: str, now: int | None) -> list[dict[str, Any]]:
        h = int(cid[-4:], 36) if cid[-4:].isalnum() else 0
        if h % 7:
            return []  # one charge in seven is disputed
        opened = 1_710_000_000 + h % 200_000  # within the seeded days
        did = "dp_" + cid[3:]
        txn = {"id": "txn_dw" + cid[3:], "source": did, "created": opened, "amount": -2500,
               "fee": 1500, "net": -4000, "currency": "usd", "type": "adjustment",
               "reporting_category": "dispute"}  # fmt: skip
        out = [txn]
        if h % 2:  # won, 30 days later
            out.append({**txn, "id": "txn_dr" + cid[3:], "created": opened + 30 * 86400,
                        "amount": 2500, "fee": 0, "net": 2500,
                        "reporting_category": "dispute_reversal"})  # fmt: skip
        return [{"id": did, "object": "dispute", "charge": cid, "balance_transactions": out}]

    rates = dataclasses.replace(
        RATES, dispute_missing=0.1, dispute_amount_mismatch=0.1, dispute_duplicate=0.1,
        dispute_late_posting=0.1, dispute_currency_mismatch=0.1, dispute_missing_in_stripe=0.05,
    )  # fmt: skip
    as_of = datetime(2024, 4, 20, tzinfo=UTC)  # after the won ones are reinstated
    r = seed_ledger(ledger_conn, charges, FIRST, LAST, seed=9, rates=rates, as_of=as_of,
                    disputes=disputes)  # fmt: skip
    truth = {t.charge_id: t for t in r.ground_truth if t.item_type == "dispute"}
    # orphan withdrawals naming a dispute Stripe never had: missing_in_stripe, on the ET day
    # they were posted, the entry's own amount and currency
    orphans = {k: t for k, t in truth.items() if t.recon_status == "missing_in_stripe"}
    assert len(orphans) == r.summary["injected"]["dispute_missing_in_stripe"] > 0
    posted = dict(ledger_conn.execute(
        "SELECT external_ref, posted_at FROM ledger_entries WHERE entry_type = 'dispute'"
    ).fetchall())  # fmt: skip
    for k, t in orphans.items():
        ref, leg = k.split("#")
        assert len(ref) == 3 + 25 and leg == "withdrawal" and t.stripe_amount is None
        assert t.ledger_amount is not None and t.ledger_amount < 0
        assert t.reporting_date == business_day_of(int(posted[ref].timestamp()))
        del truth[k]
    windows = [day_window(FIRST + timedelta(d)) for d in range((LAST - FIRST).days + 1)]
    settled = [
        c
        for w in windows
        for c in charges(w.start, w.end)
        if c["status"] == "succeeded" and c["captured"]
    ]
    want = {
        f"{t['source']}#{'withdrawal' if t['amount'] < 0 else 'reinstatement'}": t
        for c in settled
        for d in disputes(c["id"], None)
        for t in d["balance_transactions"]
    }
    assert want and set(truth) == set(want)
    legs = Counter(k.split("#")[1] for k in truth)
    assert legs["withdrawal"] > 0 and legs["reinstatement"] > 0
    for k, t in truth.items():
        x = want[k]
        assert t.reporting_date == business_day_of(x["created"])
        assert t.stripe_amount == -x["amount"] and t.currency == "USD"
    inj = r.summary["injected"]
    assert sum(inj[k] for k in ("dispute_missing", "dispute_amount_mismatch",
                                "dispute_duplicate")) > 0  # fmt: skip
    got = Counter(t.recon_status for t in truth.values())
    # a late posting is `late_posting` once posted, `missing_in_ledger` until then (as of)
    assert got["late_posting"] > 0
    assert (got["missing_in_ledger"] + got["late_posting"]
            == inj["dispute_missing"] + inj["dispute_late_posting"])  # fmt: skip
    assert got["duplicate_in_ledger"] == inj["dispute_duplicate"]
    assert got["amount_mismatch"] == inj["dispute_amount_mismatch"]
    assert got["currency_mismatch"] == inj["dispute_currency_mismatch"] > 0
    matched = [t for t in truth.values() if t.recon_status == "matched"]
    assert matched and all(t.ledger_amount == -t.stripe_amount for t in matched)
    rows = ledger_conn.execute(
        "SELECT external_ref, amount_minor, posted_at FROM ledger_entries "
        "WHERE entry_type = 'dispute'"
    ).fetchall()
    assert rows
    for ref, amount, posted in rows:
        leg = "withdrawal" if amount < 0 else "reinstatement"
        if f"{ref}#{leg}" in orphans:
            continue
        x = want[f"{ref}#{leg}"]
        assert posted.timestamp() > x["created"]
        assert amount in (x["amount"], x["net"], x["amount"] + 1, x["amount"] - 1)
    # the dispute fee is a fee entry naming the dispute, minus the fee (or a fee break)
    fees = dict(ledger_conn.execute(
        "SELECT external_ref, sum(amount_minor) FROM ledger_entries "
        "WHERE entry_type = 'fee' AND external_ref LIKE 'dp_%' GROUP BY 1").fetchall())  # fmt: skip
    assert fees and all(ref.removeprefix("dp_") for ref in fees)
    assert Counter(fees.values()).most_common(1)[0][0] == -1500
