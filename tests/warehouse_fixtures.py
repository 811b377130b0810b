"""Fixtures and helpers for the warehouse loader tests: staged days, a moto S3 server and a
fakesnow server with the test-only S3 bridge.

Wire into `tests/conftest.py` with `pytest_plugins = ["tests.warehouse_fixtures"]` (or run
`pytest -p tests.warehouse_fixtures`). Nothing here starts at import: the servers start on first
use, once per session, and every test gets its own bucket and Snowflake database so tests never
see each other's rows.

HAZARD: fakesnow answers an unhandled statement with HTTP 500 and the connector retries. The
connection kwargs below cap the retry budget (`network_timeout`) and every test using them must
also carry `@pytest.mark.timeout(...)`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from recon_assets.stage.manifest import DayManifest, manifest_key, write_manifest
from recon_assets.stage.schemas import DATASET_SCHEMAS
from recon_assets.stage.store import StageStore
from recon_assets.stage.writer import PartitionedParquetWriter
from recon_assets.timewindows import day_start_utc

# -- staged data ----------------------------------------------------------------------------

SYNCED_AT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def make_row(dataset: str, day: date, i: int, salt: str) -> dict[str, Any]:
    """A valid row of `dataset` on `day`; `salt` makes a re-staged version's rows differ."""
    created = day_start_utc(day) + timedelta(minutes=7 * i + 1)
    if dataset == "stripe_charges":
        return {
            "id": f"ch_{salt}_{day:%Y%m%d}_{i}",
            "created": created,
            "livemode": False,
            "status": ("succeeded", "pending", "failed")[i % 3],
            "paid": i % 3 == 0,
            "captured": i % 2 == 0,
            "refunded": False,
            "disputed": None,
            "currency": ("usd", "jpy", "eur")[i % 3],
            "amount": 100 * (i + 1) + len(salt),
            "amount_captured": 100 * (i + 1) if i % 2 == 0 else None,
            "amount_refunded": 0,
            "balance_transaction": None,
            "customer": f"cus_{i}",
            "payment_intent": None,
            "failure_code": None,
            "failure_message": 'it\'s "quoted", ünïcode' if i % 5 == 4 else None,
            "outcome_type": "authorized",
            "description": None,
            "metadata": json.dumps({"order": i}),
        }
    if dataset == "ledger_entries":
        return {
            "id": int(f"{day:%Y%m%d}") * 10_000 + i,
            "entry_type": "charge",
            "external_ref": f"ch_{salt}_{day:%Y%m%d}_{i}",
            "account": "revenue",
            "amount_minor": 100 * (i + 1) + len(salt),
            "currency": ("USD", "JPY", "EUR")[i % 3],
            "posted_at": created + timedelta(hours=2),
            "created_at": created,
            "updated_at": created,
        }
    raise ValueError(dataset)


def stage_days(
    store: StageStore,
    dataset: str,
    rows_by_day: Mapping[date, int],
    run_id: str,
    salt: str = "a",
) -> dict[date, DayManifest]:
    """Stage each day (0 rows allowed) with the real writer and publish its manifest."""
    writer = PartitionedParquetWriter(
        store, dataset, DATASET_SCHEMAS[dataset], run_id, row_group_rows=500
    )
    try:
        for day, n in sorted(rows_by_day.items()):
            writer.begin_day(day)
            for i in range(n):
                writer.append_row(day, make_row(dataset, day, i, salt), SYNCED_AT)
        staged = writer.commit()
    except BaseException:
        writer.abort()
        raise
    return {
        s.day: write_manifest(store, s, run_id, quarantined=0, written_at=SYNCED_AT.isoformat())
        for s in staged
    }


def rewrite_manifest(store: StageStore, manifest: DayManifest, **changes: Any) -> DayManifest:
    """Publish a manifest that disagrees with its file (a wrong count, another key)."""
    fields = {**manifest.__dict__, **changes}
    m = DayManifest(**fields)
    with store.open_atomic(manifest_key(m.dataset, m.day)) as fh:
        fh.write(m.to_json().encode())
    return m


def days_from(first: date, n: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(n)]


LoadOp = tuple[int, list[int]]
"""A re-load in a model test: (index of its first day in the window, rows staged per day)."""


def load_ops(window: int, max_ops: int) -> Any:
    """Hypothesis strategy: a few re-stage-and-load operations on sub-ranges of a window."""
    from hypothesis import strategies as st

    def op(start: int) -> Any:
        return st.tuples(
            st.just(start),
            st.lists(st.integers(0, 12), min_size=1, max_size=window - start),
        )

    return st.lists(st.integers(0, window - 1).flatmap(op), min_size=1, max_size=max_ops)


# -- moto S3 --------------------------------------------------------------------------------

AWS_TEST_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto S3 server per session on a free port; its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def boto3_s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, **AWS_TEST_CREDENTIALS)


@pytest.fixture
def s3_client(moto_endpoint: str) -> Any:
    return boto3_s3_client(moto_endpoint)


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    """A fresh bucket per test, so staged keys never collide across tests."""
    name = f"recon-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


# -- fakesnow -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fakesnow_server(moto_endpoint: str) -> Iterator[dict[str, Any]]:
    """A fakesnow server (uvicorn thread) whose DuckDB reads `s3://` from moto.

    Started here rather than with `fakesnow.server()`: importing the module `fakesnow.server`
    shadows that function, and binding our own socket gives a race-free free port. Yields the
    connector kwargs (host/port/protocol http) shared by every test.
    """
    import uvicorn

    from tests.s3_bridge import BotoS3FileSystem

    fs_server = importlib.import_module("fakesnow.server")
    fs_server.shared_fs.duck_conn.register_filesystem(
        BotoS3FileSystem(boto3_s3_client(moto_endpoint))
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(fs_server.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fakesnow", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("fakesnow server did not start")
        time.sleep(0.05)
    try:
        yield {
            "user": "fake",
            "password": "snow",
            "account": "fakesnow",
            "host": "127.0.0.1",
            "port": port,
            "protocol": "http",
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
            # Caps the connector's retries of fakesnow's HTTP 500s (see module docstring).
            "network_timeout": 8,
            "login_timeout": 8,
        }
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def snowflake_database() -> str:
    """A database name of this test's own (fakesnow shares one DuckDB across sessions)."""
    return f"RECON_TEST_{uuid.uuid4().hex[:10].upper()}"


@pytest.fixture
def snowflake_connect(
    fakesnow_server: dict[str, Any], snowflake_database: str
) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """A connection factory like `SnowflakeResource.get_connection`: a fresh, closed-after use."""
    import snowflake.connector

    @contextlib.contextmanager
    def connect() -> Iterator[Any]:
        conn = snowflake.connector.connect(**fakesnow_server, database=snowflake_database)
        try:
            yield conn
        finally:
            conn.close()

    return connect


def check_keyed_ledger_load(loader: Any, store: StageStore) -> None:
    """The by-id load, on either loader: a late change replaces its entry by id without touching
    the rest of its day, a re-pointed entry's old charge is recorded, and the load log says
    what kind of load each was. Both loaders must pass exactly this."""
    from recon_assets.stage.manifest import KeyedFile, KeyedManifest

    day = date(2024, 11, 3)
    stage_days(store, "ledger_entries", {day: 3}, "run-day")
    loader.load(store, "ledger_entries", [day], run_id="run-day")
    writer = PartitionedParquetWriter(
        store, "ledger_entries", DATASET_SCHEMAS["ledger_entries"], "run-chg",
        prefix="ledger_entries/_changes_files",
    )  # fmt: skip
    later = SYNCED_AT + timedelta(hours=1)  # read from the ledger after the day's file
    writer.append_row(day, make_row("ledger_entries", day, 0, "b"), later)  # re-pointed
    writer.append_row(day, make_row("ledger_entries", day, 7, "b"), later)  # backdated
    (staged,) = writer.commit()
    manifest = KeyedManifest(
        "ledger_entries", "run-chg", "changes", (KeyedFile(day, staged.key, 2),)
    )
    result = loader.load_keyed(store, manifest, run_id="run-chg")
    assert (result.replaced_rows, result.inserted_rows) == (1, 2)
    refs = sorted(
        loader.query("select id, external_ref from raw.ledger_entries"), key=lambda r: r[0]
    )
    assert [r[1] for r in refs] == [
        make_row("ledger_entries", day, 0, "b")["external_ref"],
        make_row("ledger_entries", day, 1, "a")["external_ref"],
        make_row("ledger_entries", day, 2, "a")["external_ref"],
        make_row("ledger_entries", day, 7, "b")["external_ref"],
    ]
    dropped = loader.query("select external_ref, run_id from raw.ledger_dropped_refs")
    assert [tuple(r) for r in dropped] == [
        (make_row("ledger_entries", day, 0, "a")["external_ref"], "run-chg")
    ]
    log = loader.query(
        "select dataset, partition_date, load_kind, rows, run_id from raw.load_log "
        "order by loaded_at"
    )
    assert [tuple(r) for r in log] == [
        ("ledger_entries", day, "day", 3, "run-day"),
        ("ledger_entries", day, "changes", 2, "run-chg"),
    ]
    # re-loading the day's OLDER file never undoes the newer changes: the latest version of
    # each id (what staging reads) is unchanged, and nothing new is recorded as dropped
    latest = (
        "select id, external_ref from (select id, external_ref, row_number() over "
        "(partition by id order by _synced_at desc) as k from raw.ledger_entries) where k = 1"
    )
    before = sorted(tuple(r) for r in loader.query(latest))
    again = loader.load(store, "ledger_entries", [day], run_id="run-again")
    assert again.ok and again.loaded_by_day == {day: 3}
    assert sorted(tuple(r) for r in loader.query(latest)) == before
    assert len(loader.query("select * from raw.ledger_dropped_refs")) == 1


def check_events_cursor_moves_with_its_load(loader: Any, store: StageStore) -> None:
    """The events cursor (raw.stripe_event_reads) is written by the load of the charges the read
    re-pulled, in its transaction: a load that fails records no read, so the cursor never moves
    past charges that did not land. Both loaders must pass exactly this."""
    from recon_assets.defs.stripe_assets import EVENTS_CURSOR_SQL
    from recon_assets.stage.manifest import EventsRead, KeyedFile, KeyedManifest

    day = date(2024, 11, 3)
    stage_days(store, "stripe_charges", {day: 2}, "run-day")
    loader.load(store, "stripe_charges", [day], run_id="run-day")
    assert loader.query(EVENTS_CURSOR_SQL) == []
    writer = PartitionedParquetWriter(
        store, "stripe_charges", DATASET_SCHEMAS["stripe_charges"], "run-ev",
        prefix="stripe_charges/_events_files",
    )  # fmt: skip
    refunded = {**make_row("stripe_charges", day, 1, "a"), "amount_refunded": 50}  # same id
    writer.append_row(day, refunded, SYNCED_AT + timedelta(hours=1))
    (staged,) = writer.commit()
    read = EventsRead(read_from=1_730_000_000, read_until=1_730_600_000, events=9, charges=1)
    good = KeyedManifest("stripe_charges", "run-ev", "events", (KeyedFile(day, staged.key, 1),),
                         events_read=read)  # fmt: skip
    # a manifest that claims more rows than its file holds fails the load's count check
    bad = KeyedManifest("stripe_charges", "run-bad", "events", (KeyedFile(day, staged.key, 5),),
                        events_read=EventsRead(1_730_000_000, 1_731_000_000, 9, 5))  # fmt: skip
    with pytest.raises(Exception, match=r"(?i)count|rows"):
        loader.load_keyed(store, bad, run_id="run-bad")
    assert loader.query("select count(*) from raw.stripe_event_reads") == [(0,)]
    result = loader.load_keyed(store, good, run_id="run-ev")
    assert (result.replaced_rows, result.inserted_rows) == (1, 1)
    (row,) = loader.query(
        "select read_from, read_until, events, charges, run_id from raw.stripe_event_reads"
    )
    as_unix = [int(v.replace(tzinfo=v.tzinfo or UTC).timestamp()) for v in row[:2]]
    assert as_unix == [read.read_from, read.read_until]
    assert tuple(row[2:]) == (9, 1, "run-ev")
    (cursor,) = loader.query(EVENTS_CURSOR_SQL)
    assert int(cursor[0].replace(tzinfo=cursor[0].tzinfo or UTC).timestamp()) == read.read_until


def check_lookup_scan_moves_with_its_load(loader: Any, store: StageStore) -> None:
    """The look-up scan (raw.stripe_lookup_scans) is written by the load that ends a look-up
    run, in its transaction: a load that fails records no scan, so the next run reads again
    what this one read. A recorded scan comes back as the instants it was given, and the next
    run reads ledger rows by when they were loaded (the `?` of the scoped queries binds on both
    warehouses). Both loaders must pass exactly this."""
    from recon_assets.defs.stripe_assets import _utc
    from recon_assets.stage.manifest import KeyedFile, KeyedManifest
    from recon_assets.stripe.lookup import (
        EPOCH,
        LOOKUP_SCAN_MARGIN,
        LOOKUP_SCAN_MARK_SQL,
        LOOKUP_SCANS_SQL,
        UNKNOWN_REFS_SQL,
        next_lookup_scan,
    )

    day = date(2024, 11, 3)
    stage_days(store, "ledger_entries", {day: 2}, "run-day")
    loader.load(store, "ledger_entries", [day], run_id="run-day")
    (mark_row,) = loader.query(LOOKUP_SCAN_MARK_SQL)
    mark = _utc(mark_row[0])
    assert loader.query(LOOKUP_SCANS_SQL) == []
    first = next_lookup_scan(mark, [])
    assert first.read_from == EPOCH  # nothing recorded: every row is read
    named = sorted(str(r[0]) for r in loader.query(UNKNOWN_REFS_SQL, (EPOCH, EPOCH)))
    assert named == [make_row("ledger_entries", day, i, "a")["external_ref"] for i in range(2)]
    # a load that fails (its staged file is missing) records no scan
    bad = KeyedManifest("stripe_balance_transactions", "run-bad", "lookup",
                        (KeyedFile(day, "nonexistent/part.parquet", 5),), lookup_scan=first)  # fmt: skip
    with pytest.raises(Exception):  # noqa: B017 - either loader's own error; what matters is below
        loader.load_keyed(store, bad, run_id="run-bad")
    assert loader.query(LOOKUP_SCANS_SQL) == []
    good = KeyedManifest("stripe_balance_transactions", "run-1", "lookup", (), lookup_scan=first)
    loader.load_keyed(store, good, run_id="run-1")
    scans = [(_utc(a), _utc(b)) for a, b in loader.query(LOOKUP_SCANS_SQL)]
    assert scans == [(mark, EPOCH)]
    later = next_lookup_scan(mark + timedelta(days=1), scans)
    assert later.read_from == mark - LOOKUP_SCAN_MARGIN
    # rows are read by when they were loaded: through the margin, and not from after it
    assert len(loader.query(UNKNOWN_REFS_SQL, (later.read_from, later.read_from))) == 2
    after = mark + timedelta(seconds=1)
    assert loader.query(UNKNOWN_REFS_SQL, (after, after)) == []
