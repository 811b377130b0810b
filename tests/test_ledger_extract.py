"""The streaming ledger extract: exact US-Eastern days (DST included), half-open edges, the
staged column contract, bounded batches, and late edits picked up on re-extract."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, date, datetime, timedelta

import psycopg
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recon_assets.ledger.extract import (
    LEDGER_EXTRACT_SCHEMA,
    extract_day_counts,
    iter_entry_batches,
)
from recon_assets.stage.schemas import LEDGER_ENTRIES_SCHEMA
from recon_assets.timewindows import Window, business_day_of, day_window

pytest_plugins = ["tests.ledger_fixtures"]

pytestmark = pytest.mark.timeout(120)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _insert_at(conn: psycopg.Connection, instants: list[datetime], ref_prefix: str = "ch_") -> None:
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY ledger_entries (entry_type, external_ref, account, amount_minor, currency, "
            "posted_at, source_system) FROM STDIN"
        ) as copy,
    ):
        for i, t in enumerate(instants):
            copy.write_row(
                ("charge", f"{ref_prefix}{i}", "stripe_clearing", 100 + i, "USD", t, "test")
            )
    conn.commit()


def iter_day_batches(
    conn: psycopg.Connection, window: Window, batch_rows: int = 10_000
) -> Iterator[tuple[date, pa.RecordBatch]]:
    """`(day, batch)` per US-Eastern day of an aligned window: how stage_ledger reads a range."""
    extract_day_counts(conn, window)  # refuses an unaligned window, as stage_ledger's days do
    d = business_day_of(window.start)
    while day_window(d).start < window.end:
        for batch in iter_entry_batches(conn, day_window(d), batch_rows):
            yield d, batch
        d += timedelta(days=1)


def _range(first: date, last: date) -> Window:
    return Window(day_window(first).start, day_window(last).end)


def test_the_batches_carry_the_staged_contract_minus_lineage(
    ledger_conn: psycopg.Connection,
) -> None:
    t = datetime(2024, 6, 1, 16, 0, 0, 123456, tzinfo=UTC)
    _insert_at(ledger_conn, [t])
    (batch,) = list(iter_entry_batches(ledger_conn, day_window(date(2024, 6, 1))))
    expected = [f for f in LEDGER_ENTRIES_SCHEMA if not f.name.startswith("_")]
    assert batch.schema == LEDGER_EXTRACT_SCHEMA == pa.schema(expected)
    row = batch.to_pylist()[0]
    assert row["posted_at"] == t  # microseconds survive, and it is UTC
    assert row["currency"] == "USD" and row["amount_minor"] == 100
    assert row["created_at"].tzinfo is not None and row["updated_at"] >= row["created_at"]


@pytest.mark.parametrize(("day", "hours"), [(date(2024, 3, 10), 23), (date(2024, 11, 3), 25)])
def test_dst_days_are_exact(ledger_conn: psycopg.Connection, day: date, hours: int) -> None:
    """One entry every 30 min from the day before to the day after: the DST day holds 2h per
    hour it really has, its neighbours 48 each."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=1, hours=6)
    instants = [start + timedelta(minutes=30 * i) for i in range(4 * 24 * 2)]
    _insert_at(ledger_conn, instants)
    window = _range(day - timedelta(1), day + timedelta(1))
    expected = Counter(business_day_of(t) for t in instants)
    counts = extract_day_counts(ledger_conn, window)
    assert counts[day] == 2 * hours == expected[day]
    got = Counter()
    for d, batch in iter_day_batches(ledger_conn, window, batch_rows=7):
        assert batch.num_rows <= 7
        got[d] += batch.num_rows
        for ts in batch.column("posted_at").to_pylist():
            assert business_day_of(ts) == d
    assert dict(got) == {d: counts[d] for d in counts if counts[d]}
    assert day_window(day).seconds == hours * 3600


_MIDNIGHTS = [
    day_window(d).start
    for d in (
        date(2024, 3, 10),
        date(2024, 3, 11),
        date(2024, 11, 3),
        date(2024, 11, 4),
        date(2024, 6, 1),
    )
]
_instant = st.builds(
    lambda m, us: EPOCH + timedelta(seconds=m, microseconds=us),
    st.sampled_from(_MIDNIGHTS),
    st.integers(min_value=-3_000_000, max_value=3_000_000),  # +-3 s around an ET midnight
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(instants=st.lists(_instant, min_size=1, max_size=12))
def test_an_entry_near_a_midnight_lands_in_exactly_one_day(
    ledger_conn: psycopg.Connection, instants: list[datetime]
) -> None:
    ledger_conn.execute("TRUNCATE ledger_entries")
    _insert_at(ledger_conn, instants)
    window = _range(date(2024, 3, 9), date(2024, 3, 11))
    window2 = _range(date(2024, 5, 31), date(2024, 6, 1))
    window3 = _range(date(2024, 11, 2), date(2024, 11, 4))
    expected = {f"ch_{i}": business_day_of(t) for i, t in enumerate(instants)}
    seen: Counter[str] = Counter()
    for w in (window, window2, window3):
        for d, batch in iter_day_batches(ledger_conn, w):
            refs = batch.column("external_ref").to_pylist()
            for ref, ts in zip(refs, batch.column("posted_at").to_pylist(), strict=True):
                seen[ref] += 1
                us = (ts - EPOCH) // timedelta(microseconds=1)
                assert day_window(d).start * 10**6 <= us < day_window(d).end * 10**6
                assert expected[ref] == d
    assert seen == Counter(dict.fromkeys(expected, 1))


def test_the_window_is_half_open_to_the_microsecond(ledger_conn: psycopg.Connection) -> None:
    w = day_window(date(2024, 3, 10))
    start, end = EPOCH + timedelta(seconds=w.start), EPOCH + timedelta(seconds=w.end)
    us = timedelta(microseconds=1)
    _insert_at(ledger_conn, [start - us, start, end - us, end])
    refs = [
        r for b in iter_entry_batches(ledger_conn, w) for r in b.column("external_ref").to_pylist()
    ]
    assert refs == ["ch_1", "ch_2"]


def test_a_late_edit_is_picked_up_when_the_day_is_re_extracted(
    ledger_conn: psycopg.Connection,
) -> None:
    """Re-extracting a day re-reads it: the edited amount and its new updated_at are staged."""
    day = date(2024, 6, 1)
    _insert_at(
        ledger_conn, [datetime(2024, 6, 1, 15, tzinfo=UTC), datetime(2024, 6, 1, 16, tzinfo=UTC)]
    )
    before = pa.Table.from_batches(list(iter_entry_batches(ledger_conn, day_window(day))))
    ledger_conn.execute("UPDATE ledger_entries SET amount_minor = 555 WHERE external_ref = 'ch_1'")
    ledger_conn.commit()
    after = pa.Table.from_batches(list(iter_entry_batches(ledger_conn, day_window(day))))
    b, a = before.to_pylist(), after.to_pylist()
    assert b[0] == a[0]
    assert (b[1]["amount_minor"], a[1]["amount_minor"]) == (101, 555)
    assert a[1]["updated_at"] > b[1]["updated_at"]


def test_batches_are_bounded_and_ordered(ledger_conn: psycopg.Connection) -> None:
    base = datetime(2024, 6, 1, 12, tzinfo=UTC)
    instants = [base + timedelta(seconds=(i * 7919) % 3600) for i in range(2_500)]
    _insert_at(ledger_conn, instants)
    batches = list(iter_entry_batches(ledger_conn, day_window(date(2024, 6, 1)), batch_rows=1_000))
    assert [b.num_rows for b in batches] == [1_000, 1_000, 500]
    table = pa.Table.from_batches(batches)
    keys = list(
        zip(table.column("posted_at").to_pylist(), table.column("id").to_pylist(), strict=True)
    )
    assert keys == sorted(keys)


def test_an_empty_day_yields_nothing_and_counts_zero(ledger_conn: psycopg.Connection) -> None:
    w = day_window(date(2024, 1, 2))
    assert list(iter_entry_batches(ledger_conn, w)) == []
    assert extract_day_counts(ledger_conn, w) == {date(2024, 1, 2): 0}


def test_stopping_early_closes_the_cursor_and_the_connection_stays_usable(
    ledger_conn: psycopg.Connection,
) -> None:
    _insert_at(ledger_conn, [datetime(2024, 6, 1, 15, tzinfo=UTC)] * 30)
    gen = iter_entry_batches(ledger_conn, day_window(date(2024, 6, 1)), batch_rows=10)
    next(gen)
    gen.close()
    assert ledger_conn.execute("SELECT count(*) FROM pg_cursors").fetchone() == (0,)
    assert (
        sum(b.num_rows for b in iter_entry_batches(ledger_conn, day_window(date(2024, 6, 1)))) == 30
    )


def test_unaligned_windows_and_bad_batch_sizes_are_refused(ledger_conn: psycopg.Connection) -> None:
    w = day_window(date(2024, 6, 1))
    with pytest.raises(ValueError, match="aligned"):
        list(iter_day_batches(ledger_conn, Window(w.start + 3600, w.end)))
    with pytest.raises(ValueError, match="batch_rows"):
        list(iter_entry_batches(ledger_conn, w, batch_rows=0))


def test_works_on_an_autocommit_connection_and_leaves_no_transaction(ledger_db_dsn: str) -> None:
    """The Dagster asset may hand us an autocommit connection: the named cursor still gets the
    transaction it needs, and nothing stays open afterwards."""
    with psycopg.connect(ledger_db_dsn, autocommit=True) as conn:
        _insert_at(conn, [datetime(2024, 6, 1, 15, tzinfo=UTC)] * 5)
        day = date(2024, 6, 1)
        assert [(d, b.num_rows) for d, b in iter_day_batches(conn, day_window(day))] == [(day, 5)]
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.none(), _TEXT),  # external_ref: NULL and '' must stay apart
            _TEXT.filter(bool),  # account: never empty (the ledger's check)
            st.integers(-(2**63), 2**63 - 1),
            st.integers(0, 86_399_999_999),  # microseconds into the day
        ),
        min_size=1,
        max_size=30,
    )
)
def test_every_value_leaves_the_ledger_exactly_as_stored(
    ledger_conn: psycopg.Connection, rows: list[tuple[str | None, str, int, int]]
) -> None:
    """The extract reads COPY's CSV: quotes, commas, newlines, backslashes, any script, '' and
    NULL, the int64 edges and microseconds all come back as Postgres holds them."""
    day = date(2024, 6, 4)
    start = datetime.fromtimestamp(day_window(day).start, UTC)
    ledger_conn.execute("DELETE FROM ledger_entries")
    with (
        ledger_conn.cursor() as cur,
        cur.copy(
            "COPY ledger_entries (entry_type, external_ref, account, amount_minor, currency, "
            "posted_at, created_at, updated_at, source_system) FROM STDIN"
        ) as copy,
    ):
        for ref, account, amount, micros in rows:
            t = start + timedelta(microseconds=micros)
            copy.write_row(("refund", ref, account, amount, "JPY", t, t, t, "test"))
    ledger_conn.commit()
    expected = ledger_conn.execute(
        "SELECT id, external_ref, account, amount_minor, posted_at FROM ledger_entries "
        "ORDER BY posted_at, id"
    ).fetchall()
    got = pa.Table.from_batches(list(iter_entry_batches(ledger_conn, day_window(day), 7)))
    assert got.schema == LEDGER_EXTRACT_SCHEMA
    assert list(
        zip(
            *(got.column(c).to_pylist() for c in ("id", "external_ref", "account", "amount_minor")),
            got.column("posted_at").to_pylist(),
            strict=True,
        )
    ) == [tuple(r) for r in expected]


def test_stopping_mid_copy_leaves_the_connection_usable(ledger_conn: psycopg.Connection) -> None:
    """More rows than one CSV block: closing the generator ends a COPY still streaming.

    pyarrow reads the COPY ahead on a thread of its own, so each stop races that read; the
    stops fall at several points to meet it (CI once saw the race break the connection)."""
    day = date(2024, 6, 5)
    start = datetime.fromtimestamp(day_window(day).start, UTC)
    _insert_at(ledger_conn, [start + timedelta(seconds=i % 80_000) for i in range(120_000)])
    for taken in (1, 2, 5, 17, 40, 41, 60, 90, 1, 3):
        # a block's last batch may be short, so the stop is counted in batches, not rows
        with closing(iter_entry_batches(ledger_conn, day_window(day), batch_rows=1_000)) as gen:
            assert all(0 < next(gen).num_rows <= 1_000 for _ in range(taken))
        assert ledger_conn.execute("SELECT count(*) FROM ledger_entries").fetchone() == (120_000,)
    assert sum(b.num_rows for b in iter_entry_batches(ledger_conn, day_window(day))) == 120_000


def test_a_consumer_failing_mid_copy_does_not_hang_the_connection(
    ledger_conn: psycopg.Connection,
) -> None:
    """The COPY holds the connection's lock while the generator is suspended: a loop body that
    raises must end it (the stage's writer can fail on a full disk), not leave the run hanging
    on its rollback."""
    day = date(2024, 6, 6)
    start = datetime.fromtimestamp(day_window(day).start, UTC)
    _insert_at(ledger_conn, [start + timedelta(seconds=i % 80_000) for i in range(60_000)])
    seen = 0
    with pytest.raises(OSError, match="disk full"):
        for batch in iter_entry_batches(ledger_conn, day_window(day), batch_rows=1_000):
            seen += batch.num_rows
            if seen >= 5_000:
                raise OSError("disk full")
    ledger_conn.rollback()  # would block on the lock if the COPY were still open
    assert sum(b.num_rows for b in iter_entry_batches(ledger_conn, day_window(day))) == 60_000
