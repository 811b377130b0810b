"""The run worker's DuckDB work in a child process (warehouse/duckdb_process.py), against the
in-process loader it must equal call for call, in real spawned processes on real DuckDB files."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import psutil
import pytest

from recon_assets.defs.resources import WarehouseResource
from recon_assets.stage.manifest import CheckFailure, record_check_failure
from recon_assets.stage.store import LocalStageStore
from recon_assets.warehouse.duckdb_loader import DuckDBLoader
from recon_assets.warehouse.duckdb_process import (
    ROWS_PER_MESSAGE,
    WAREHOUSE_PROCESS_NAME,
    DuckDBProcess,
    WarehouseProcessError,
)
from recon_assets.warehouse.loader import (
    CountMismatchError,
    LoadError,
    MissingManifestError,
    StagedCheckFailedError,
)
from tests.warehouse_fixtures import (
    check_events_cursor_moves_with_its_load,
    check_keyed_ledger_load,
    check_lookup_scan_moves_with_its_load,
    days_from,
    rewrite_manifest,
    stage_days,
)

pytestmark = pytest.mark.timeout(180)

DAY0 = date(2024, 3, 9)  # the Saturday before US DST starts: a 23-hour day in the range


@pytest.fixture
def stage(tmp_path: Path) -> LocalStageStore:
    return LocalStageStore(tmp_path / "stage")


@pytest.fixture
def proc(tmp_path: Path) -> Any:
    p = DuckDBProcess(str(tmp_path / "warehouse.duckdb"), memory_limit="64MB")
    yield p
    p.close()


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_loads_and_reads_equal_the_in_process_loader(
    stage: LocalStageStore, tmp_path: Path, proc: DuckDBProcess
) -> None:
    """The same staged days into two files, one through the child and one in process: the same
    results (but the instant of the load) and the same rows."""
    days = days_from(DAY0, 3)
    counts = {"stripe_charges": [4, 0, 7], "ledger_entries": [5, 2, 0]}
    for dataset, n in counts.items():
        stage_days(stage, dataset, dict(zip(days, n, strict=True)), "run1")
    here = DuckDBLoader(tmp_path / "here.duckdb")
    for dataset, n in counts.items():
        got, want = proc.load(stage, dataset, days), here.load(stage, dataset, days)
        assert replace(got, loaded_at=want.loaded_at) == want
        assert got.loaded_by_day == dict(zip(days, n, strict=True))
    for table in ("stripe_charges", "ledger_entries", "load_log"):
        sql = f"select * exclude (_loaded_at) from raw.{table} order by all"
        if table == "load_log":
            sql = "select * exclude (loaded_at) from raw.load_log order by all"
        assert rows(tmp_path / "warehouse.duckdb", sql) == rows(tmp_path / "here.duckdb", sql)
    q = "select id, amount, created from raw.stripe_charges where amount > ? order by id"
    assert proc.query(q, [0]) == here.query(q, [0]) != []


@pytest.mark.parametrize(
    "check",
    [
        check_keyed_ledger_load,
        check_events_cursor_moves_with_its_load,
        check_lookup_scan_moves_with_its_load,
    ],
)
def test_the_loaders_shared_contract_holds_through_the_child(
    check: Any, stage: LocalStageStore, proc: DuckDBProcess
) -> None:
    """The checks both in-process loaders (DuckDB, Snowflake) pass, passed through the child."""
    check(proc, stage)


def test_a_read_larger_than_a_message_arrives_whole_and_in_order(proc: DuckDBProcess) -> None:
    n = ROWS_PER_MESSAGE * 2 + 17
    got = proc.query("select range, md5(range::varchar) from range(?) order by 1", [n])
    assert len(got) == n
    assert got[0] == (0, "cfcd208495d565ef66e7dff9f98764da")
    assert [r[0] for r in got] == list(range(n))
    with proc.reading() as run:
        assert run("select count(*) from range(?)", [n]) == [(n,)]
        assert len(run("select * from range(?)", [n])) == n


def test_errors_cross_as_themselves_and_the_child_stays(
    stage: LocalStageStore, tmp_path: Path, proc: DuckDBProcess
) -> None:
    """A caller catches the loader's own errors, with their fields, and DuckDB's; none of them
    costs the child (the same process answers the next call) or the warehouse's rows."""
    days = days_from(DAY0, 3)
    stage_days(stage, "ledger_entries", dict.fromkeys(days, 3), "run1")
    proc.load(stage, "ledger_entries", days)
    pid = proc.pid
    before = proc.query("select * from raw.ledger_entries order by all")

    with pytest.raises(MissingManifestError, match="2024-03-12") as missing:
        proc.load(stage, "ledger_entries", [*days, date(2024, 3, 12)])
    assert missing.value.days == (date(2024, 3, 12),)

    manifests = stage_days(stage, "ledger_entries", dict.fromkeys(days, 5), "run2", salt="q")
    rewrite_manifest(stage, manifests[days[2]], rows=6)
    with pytest.raises(CountMismatchError, match="staged=6 loaded=5") as mismatch:
        proc.load(stage, "ledger_entries", days)
    assert [d.day for d in mismatch.value.result.mismatched_days] == [days[2]]
    assert "in the warehouse process" in "".join(mismatch.value.__notes__)

    failure = CheckFailure(
        "ledger_entries", days[0], "no_nulls", "run3", "3 null ids", "2999-01-01T00:00:00+00:00"
    )
    record_check_failure(stage, failure)
    with pytest.raises(StagedCheckFailedError, match="no_nulls") as staged:
        proc.load(stage, "ledger_entries", days)
    assert staged.value.failure.check == "no_nulls"

    with pytest.raises(duckdb.CatalogException):
        proc.query("select * from raw.no_such_table")
    assert proc.pid == pid
    assert proc.query("select * from raw.ledger_entries order by all") == before


def test_running_out_of_the_run_limit_names_the_run_setting(tmp_path: Path) -> None:
    heavy = (
        "with t as (select range as id, md5(range::varchar) as s from range(300000)) "
        "select count(*) from t where s in (select s from t where id % 2 = 0)"
    )
    DuckDBLoader(tmp_path / "w.duckdb").query("select 1")  # the file exists for reads
    small = DuckDBProcess(str(tmp_path / "w.duckdb"), memory_limit="1MB")
    try:
        for attempt in ("query", "reading"):
            with pytest.raises(LoadError) as err:
                if attempt == "query":
                    small.query(heavy)
                else:
                    with small.reading() as run:
                        run(heavy, [])
            assert "the run worker's memory limit (1MB)" in str(err.value), attempt
            assert "RECON_DUCKDB_RUN_MEMORY_LIMIT=256MB" in str(err.value), attempt
    finally:
        small.close()


def test_a_killed_child_fails_the_call_clearly_and_the_next_call_starts_another(
    stage: LocalStageStore, proc: DuckDBProcess
) -> None:
    days = days_from(DAY0, 2)
    stage_days(stage, "stripe_charges", dict.fromkeys(days, 3), "run1")
    proc.load(stage, "stripe_charges", days)
    first = proc.pid
    assert first is not None and psutil.Process(first).name() == WAREHOUSE_PROCESS_NAME
    os.kill(first, signal.SIGKILL)  # as the kernel's OOM killer would

    with pytest.raises(WarehouseProcessError, match=r"ended without answering 'query' .*-9"):
        proc.query("select count(*) from raw.stripe_charges")
    assert proc.query("select count(*) from raw.stripe_charges") == [(6,)]
    assert proc.pid not in (None, first)


class Interrupted(Exception):
    """What Dagster raises in a run worker's main thread when the run is stopped from the UI."""


def test_a_call_interrupted_mid_read_stops_its_child_and_the_next_call_starts_another(
    stage: LocalStageStore, proc: DuckDBProcess
) -> None:
    """A run stopped while the child works: the child is stopped at once (it would answer no
    one), the warehouse keeps its rows, and a later call gets a new child, not the stale
    reply. The read never ends by itself, so the signal always lands mid-call."""
    days = days_from(DAY0, 2)
    stage_days(stage, "stripe_charges", dict.fromkeys(days, 3), "run1")
    proc.load(stage, "stripe_charges", days)
    busy = proc.pid
    assert busy is not None
    child = psutil.Process(busy)
    # idle first (whatever the load left to do is done), so the CPU the sender waits for below
    # is the endless read's, never the load's tail
    before = sum(child.cpu_times()[:2])
    for _ in range(600):
        time.sleep(0.1)
        now = sum(child.cpu_times()[:2])
        if now == before:
            break
        before = now

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted

    def send_when_busy() -> None:
        start = sum(child.cpu_times()[:2])
        while sum(child.cpu_times()[:2]) < start + 0.3:  # the endless read is running
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, interrupt)
    sender = threading.Thread(target=send_when_busy, daemon=True)
    try:
        sender.start()
        with pytest.raises(Interrupted):
            proc.query("select sum(hash(range)) from range(1000000000000)")
    finally:
        signal.signal(signal.SIGUSR1, previous)
        sender.join(timeout=60)
    # stopped, not left running: gone, or reaped here if the teardown's join gave up under a
    # loaded machine (still running after 30 s fails: TimeoutExpired); `is_running` also tells
    # the child from a later process that reuses its pid
    with contextlib.suppress(psutil.NoSuchProcess):
        child.wait(timeout=30)
    assert not child.is_running()
    assert proc.query("select count(*) from raw.stripe_charges") == [(6,)]
    assert proc.pid not in (None, busy)


def test_the_child_dies_of_sigterm_even_when_its_parent_ignores_it(tmp_path: Path) -> None:
    """An ignored SIGTERM survives the spawn's exec (a run worker under Dagster's interrupt
    handling, a test worker): the child must not inherit it, or `terminate()` and the
    parent-death signal would leave it running, holding the warehouse file."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        p = DuckDBProcess(str(tmp_path / "w.duckdb"), memory_limit="64MB")
        assert p.query("select 1") == [(1,)]  # spawned while this process ignores SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert p.pid is not None
    child = psutil.Process(p.pid)
    status = Path(f"/proc/{child.pid}/status").read_text()
    ignored = int(
        next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16
    )
    assert not ignored & (1 << (signal.SIGTERM - 1))
    os.kill(child.pid, signal.SIGTERM)
    child.wait(timeout=30)  # TimeoutExpired if it ignored the signal
    assert not child.is_running()
    p.close()


def test_the_run_worker_never_imports_duckdb(tmp_path: Path) -> None:
    """The point of the child: a process that loads and reads through it holds no DuckDB (its
    import, its open file, its buffers), whatever it loads."""
    script = textwrap.dedent(
        f"""
        import sys
        from datetime import date
        from recon_assets.stage.store import LocalStageStore
        from recon_assets.warehouse.duckdb_process import DuckDBProcess
        from tests.warehouse_fixtures import stage_days
        store = LocalStageStore({str(tmp_path / "stage")!r})
        stage_days(store, "stripe_charges", {{date(2024, 3, 9): 5}}, "run1")
        p = DuckDBProcess({str(tmp_path / "w.duckdb")!r}, memory_limit="64MB")
        assert p.load(store, "stripe_charges", [date(2024, 3, 9)]).loaded_total == 5
        with p.reading() as run:
            assert run("select count(*) from raw.stripe_charges", []) == [(5,)]
        p.close()
        print("duckdb" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[1],
        check=True,
    )
    assert out.stdout.strip() == "False", out.stderr


def test_the_warehouse_process_never_loads_pyarrow(
    proc: DuckDBProcess, stage: LocalStageStore, tmp_path: Path
) -> None:
    """The child creates, widens and checks the raw tables from the plain columns its parent
    read from the Arrow schemas: it loads and reads with no Arrow library mapped (pyarrow's
    import alone is 44 MB of a process's RSS)."""
    days = days_from(DAY0, 2)
    stage_days(stage, "stripe_charges", {DAY0: 3, days[1]: 4}, "run1")
    assert proc.load(stage, "stripe_charges", days).loaded_total == 7
    with proc.reading() as run:
        assert run("select count(*) from raw.ledger_entries", []) == [(0,)]
    assert proc.pid is not None
    maps = Path(f"/proc/{proc.pid}/maps").read_text()
    assert "duckdb" in maps  # the right process: it did the work
    assert "libarrow" not in maps and "pyarrow" not in maps


def test_the_resource_starts_one_child_per_run_and_ends_it_with_the_run(tmp_path: Path) -> None:
    """Every call of a run goes to one child (one start per run, not per step), which the
    resource's teardown ends."""
    wh = WarehouseResource(duckdb_path=str(tmp_path / "w.duckdb"), duckdb_memory_limit="64MB")
    with dg.build_resources({"warehouse": wh}) as res:
        first = res.warehouse.loader(str(tmp_path / "stage"))
        first.query("select 1")
        pid = first.pid
        with res.warehouse.query() as run:
            assert run("select 42", []) == [(42,)]
        assert res.warehouse.loader(str(tmp_path / "stage")).pid == pid
        assert psutil.Process(pid).name() == WAREHOUSE_PROCESS_NAME
    assert not psutil.pid_exists(pid)


def test_the_report_reads_the_same_with_duckdb_in_the_run_worker(
    proc: DuckDBProcess, stage: LocalStageStore, tmp_path: Path
) -> None:
    """An `s3://` stage keeps DuckDB in the run worker (`duckdb_in_child=False`): the report's
    reads through the resource answer the same rows, in one shape, either way."""
    days = days_from(DAY0, 2)
    stage_days(stage, "stripe_charges", {DAY0: 3, days[1]: 4}, "run1")
    proc.load(stage, "stripe_charges", days)
    proc.close()
    sql = "select _partition_date, count(*) from raw.stripe_charges where id > ? group by 1 order by 1"
    answers = []
    for in_child in (True, False):
        wh = WarehouseResource(
            duckdb_path=proc.db_path, duckdb_memory_limit="64MB", duckdb_in_child=in_child
        )
        with dg.build_resources({"warehouse": wh}) as res, res.warehouse.query() as run:
            answers.append(run(sql, [""]))
    assert answers[0] == answers[1] == [(DAY0, 3), (days[1], 4)]
