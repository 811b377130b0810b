"""The stage stores and the per-day Parquet writer: atomic publication, streaming, lineage."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from recon_assets.stage.schemas import QUARANTINE_SCHEMA
from recon_assets.stage.store import LocalStageStore, S3StageStore, StageStore, stage_store_from_uri
from recon_assets.stage.writer import PartitionedParquetWriter

pytestmark = pytest.mark.timeout(120)
SYNCED = datetime(2024, 1, 5, tzinfo=UTC)


def _stores(tmp_path: Path, s3_client: Any, s3_bucket: str) -> list[StageStore]:
    return [LocalStageStore(tmp_path), S3StageStore(s3_client, s3_bucket, "pre/fix")]


def test_large_s3_write_is_multipart_and_atomic(s3_client: Any, s3_bucket: str) -> None:
    store = S3StageStore(s3_client, s3_bucket, "big")
    payload = os.urandom(17 * 1024 * 1024 + 5)  # 3 parts: 8 + 8 + 1 MiB
    with store.open_atomic("a/b.bin") as fh:
        for i in range(0, len(payload), 1 << 20):
            fh.write(payload[i : i + (1 << 20)])
        assert store.list_keys("a") == []  # nothing visible before completion
    assert store.read_bytes("a/b.bin") == payload
    with pytest.raises(RuntimeError, match="boom"), store.open_atomic("a/c.bin") as fh:
        fh.write(payload)
        raise RuntimeError("boom")
    assert store.list_keys("a") == ["a/b.bin"]
    assert not s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")


def test_local_write_is_atomic(tmp_path: Path) -> None:
    store = LocalStageStore(tmp_path)
    with pytest.raises(RuntimeError), store.open_atomic("d/x.parquet") as fh:
        fh.write(b"partial")
        raise RuntimeError
    assert store.list_keys("") == []
    assert list(tmp_path.rglob("*.tmp")) == []


def test_uri_dispatch(tmp_path: Path, s3_client: Any) -> None:
    assert isinstance(stage_store_from_uri(str(tmp_path)), LocalStageStore)
    s3 = stage_store_from_uri("s3://bkt/some/prefix", s3_client)
    assert isinstance(s3, S3StageStore) and s3.uri("k") == "s3://bkt/some/prefix/k"
    with pytest.raises(ValueError, match="S3 client"):
        stage_store_from_uri("s3://bkt/p")


@pytest.mark.parametrize("rows", [0, 1, 9, 10, 11, 25])
def test_writer_row_groups_and_lineage(
    tmp_path: Path, s3_client: Any, s3_bucket: str, rows: int
) -> None:
    for store in _stores(tmp_path, s3_client, s3_bucket):
        w = PartitionedParquetWriter(store, "q", QUARANTINE_SCHEMA, "r1", row_group_rows=10)
        day = date(2024, 3, 10)
        w.begin_day(day)
        for i in range(rows):
            w.append_row(day, {"source": "s", "raw_payload": "{}", "error": f"e{i}"}, SYNCED)
        (staged,) = w.commit()
        import io

        f = pq.ParquetFile(io.BytesIO(store.read_bytes(staged.key)))
        assert f.schema_arrow == QUARANTINE_SCHEMA
        assert f.metadata.num_rows == staged.rows == rows
        assert f.metadata.num_row_groups == -(-rows // 10)
        assert staged.bytes == len(store.read_bytes(staged.key))
        t = f.read()
        assert t.column("error").to_pylist() == [f"e{i}" for i in range(rows)]
        assert set(t.column("_partition_date").to_pylist()) <= {day}
        assert set(t.column("_run_id").to_pylist()) <= {"r1"}


def test_abort_removes_published_days(tmp_path: Path) -> None:
    store = LocalStageStore(tmp_path)
    w = PartitionedParquetWriter(store, "q", QUARANTINE_SCHEMA, "r2")
    w.append_row(date(2024, 1, 1), {"source": "s", "raw_payload": "{}", "error": "e"}, SYNCED)
    w.close_day(date(2024, 1, 1))
    assert len(store.list_keys("q")) == 1
    w.append_row(date(2024, 1, 2), {"source": "s", "raw_payload": "{}", "error": "e"}, SYNCED)
    w.abort()
    assert store.list_keys("q") == []


def test_a_killed_writes_temp_file_is_invisible_and_removed_once_stale(tmp_path: Path) -> None:
    """kill -9 inside `open_atomic` leaves a temp file that no listing shows; the next writer
    (`StageResource.store_for_writing`) removes it once it is older than an hour, never a
    fresh one (a write still running) and never a published file."""
    import signal
    import subprocess
    import sys

    store = LocalStageStore(tmp_path / "stage")
    with store.open_atomic("stripe_charges/2024-03-10/kept.parquet") as fh:
        fh.write(b"published")
    code = (
        "import os, signal, sys\n"
        "from recon_assets.stage.store import LocalStageStore\n"
        "store = LocalStageStore(sys.argv[1])\n"
        "with store.open_atomic('stripe_charges/2024-03-10/killed.parquet') as fh:\n"
        "    fh.write(b'half a file'); fh.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(store.root)], check=False)
    assert proc.returncode == -signal.SIGKILL
    temps = list(store.root.rglob(".*.tmp"))
    assert len(temps) == 1
    assert store.list_keys("") == ["stripe_charges/2024-03-10/kept.parquet"]
    assert store.remove_stale_temp_files() == 0  # might be a write in progress
    old = temps[0].stat().st_mtime - 2 * 3600
    os.utime(temps[0], (old, old))
    assert store.remove_stale_temp_files() == 1
    assert not list(store.root.rglob(".*.tmp"))
    assert store.read_bytes("stripe_charges/2024-03-10/kept.parquet") == b"published"


def test_a_runs_steps_stage_through_a_pool_that_returns_freed_memory(tmp_path: Path) -> None:
    """The run worker lives for the whole run: a step that uses the stage (every pull, load and
    report) runs with Arrow's default pool switched to jemalloc returning freed pages at once,
    so a step's peak is not carried into the next (docs/benchmarks.md). Checked in a fresh
    process, as a run worker starts: its pool before the step, and the one a step's own Arrow
    work gets, and the staged file reads back."""
    import subprocess
    import sys

    code = """
import sys
import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from recon_assets.defs.resources import StageResource

before = pa.default_memory_pool().backend_name

@dg.asset
def staged(stage: StageResource) -> str:
    table = pa.table({"id": [f"ch_{i}" for i in range(1000)]})
    with stage.store().open_atomic("t/x.parquet") as fh:
        pq.write_table(table, fh)
    return pa.default_memory_pool().backend_name

result = dg.materialize([staged], resources={"stage": StageResource(uri=sys.argv[1])})
print(before, result.output_for_node("staged"))
"""
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "stage")],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout.split()  # fmt: skip
    assert out == ["mimalloc", "jemalloc"], out
    assert pq.read_table(tmp_path / "stage" / "t" / "x.parquet").num_rows == 1000
