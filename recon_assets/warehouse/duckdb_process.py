"""The run worker's DuckDB work (loads, look-up reads, the report's reads) in a process of its own.

Why a process: in the run worker DuckDB costs its import (~29 MB) and ~30 MB per opened
warehouse file, which stay until the process ends, and up to its memory limit on top in every
step that touches the file, on which the run worker's own work then runs. Those made the
difference between the run worker's 300 MB of Dagster, the code location and the steps' imports
and its 440 MB peak in a 600 k first backfill (docs/benchmarks.md, "Where the run worker's memory
goes"). Here they belong to one spawned child (`recon-warehouse` in `ps`), started at the run's
first DuckDB call and ended with the run, so the run worker never imports DuckDB. Nor does the
child import pyarrow (44 MB of RSS, the staged schemas are written in it): it creates and checks
the raw tables from the plain columns its parent hands it (`loader.raw_tables`).

The contract is `DuckDBLoader`'s, call for call: the child runs a `DuckDBLoader` and returns its
results and its exceptions (`LoadError` and its kinds, DuckDB's own) as they are. Rows come back
in batches, so no result is ever one pickle. The stage must be a local folder (the child opens
its files by path); an `s3://` stage keeps DuckDB in the run worker (`WarehouseResource`).

A call interrupted in the parent (a run stopped from the UI) leaves the child's reply unread: the
child is then stopped, its open transaction dies with it (DuckDB keeps the previous rows), and the
next call starts a new one.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import signal
import threading
import traceback
import weakref
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from multiprocessing.connection import Connection
from typing import Any

from recon_assets.child_processes import die_with_parent, name_process
from recon_assets.stage.manifest import KeyedManifest
from recon_assets.stage.store import LocalStageStore, StageStore
from recon_assets.warehouse.loader import (
    KeyedLoadResult,
    LoadError,
    LoadResult,
    RawTables,
    raw_tables,
    use_raw_tables,
)

WAREHOUSE_PROCESS_NAME = "recon-warehouse"
"""What the child is called in `ps` and `top` (its `comm`)."""

ROWS_PER_MESSAGE = 10_000
"""Rows per message from the child: a read of any size crosses the pipe in bounded pieces."""


class WarehouseProcessError(LoadError):
    """The warehouse process ended without answering (killed, out of memory), or raised an
    error that cannot cross a process boundary; the child's message and traceback are kept."""


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it survives a pickle round trip, else a `WarehouseProcessError` naming it."""
    exc.add_note("in the warehouse process:\n" + "".join(traceback.format_exception(exc)))
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # any failure to pickle means: send a plain copy
        return WarehouseProcessError(f"{type(exc).__name__}: {exc}")
    return exc


def _send_rows(conn: Connection, batches: Iterator[list]) -> None:
    """A read's answer: its rows, a batch a message, then the end."""
    for batch in batches:
        conn.send(("rows", batch))
    conn.send(("ok", None))


def _serve(
    conn: Connection,
    db_path: str,
    memory_limit: str | None,
    lock_timeout_s: float,
    tables: RawTables,
) -> None:
    """The child's loop: one request at a time, until the parent closes the pipe or says so."""
    die_with_parent()
    name_process(WAREHOUSE_PROCESS_NAME)
    # Ctrl-C reaches the terminal's whole process group: the parent decides, and stops this child
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # the raw tables as the parent read them from the Arrow schemas: this process never imports
    # pyarrow (its import is 44 MB of RSS, a fifth of the 200 MB each child is given)
    use_raw_tables(tables)
    from recon_assets.warehouse.duckdb_loader import DuckDBLoader

    loader = DuckDBLoader(db_path, memory_limit=memory_limit, lock_timeout_s=lock_timeout_s)
    reading: contextlib.ExitStack | None = None
    read: Callable[..., Iterator[list]] | None = None
    while True:
        try:
            op, args = conn.recv()
        except (EOFError, OSError):
            break
        if op == "close":
            break
        try:
            if op == "load":
                conn.send(("ok", loader.load(*args[:3], run_id=args[3])))
            elif op == "load_keyed":
                conn.send(("ok", loader.load_keyed(args[0], args[1], run_id=args[2])))
            elif op == "query":
                _send_rows(conn, loader.query_batches(*args, ROWS_PER_MESSAGE))
            elif op == "open_reading":
                reading = contextlib.ExitStack()
                read = reading.enter_context(loader.reading_batches())
                conn.send(("ok", None))
            elif op == "read":
                if read is None:
                    raise RuntimeError("read without open_reading")
                try:
                    _send_rows(conn, read(*args, ROWS_PER_MESSAGE))
                except BaseException as exc:
                    # out through the reading's own exit, which turns DuckDB's out-of-memory
                    # into the advice naming the run's setting (raised from there), and closes it
                    stack, reading, read = reading, None, None
                    if stack is not None:
                        stack.__exit__(type(exc), exc, exc.__traceback__)
                    raise
            elif op == "close_reading":
                if reading is not None:
                    reading.close()
                reading = read = None
                conn.send(("ok", None))
            else:
                raise ValueError(f"unknown warehouse request {op!r}")
        except BaseException as exc:  # every error goes back to the caller
            conn.send(("error", _portable(exc)))
    if reading is not None:
        reading.close()


class DuckDBProcess:
    """A `WarehouseLoader` (and the report's reads) whose DuckDB work runs in one child process,
    started at the first call. Thread-safe: calls from several threads are served in turn."""

    def __init__(
        self, db_path: str, *, memory_limit: str | None, lock_timeout_s: float = 30.0
    ) -> None:
        self.db_path = str(db_path)
        self.memory_limit = memory_limit
        self.lock_timeout_s = lock_timeout_s
        self._lock = threading.RLock()
        self._proc: Any = None
        self._conn: Connection | None = None
        self._finalizer: weakref.finalize | None = None

    # -- the WarehouseLoader protocol -----------------------------------------------------
    def load(
        self, store: StageStore, dataset: str, days: Sequence[date], *, run_id: str | None = None
    ) -> LoadResult:
        return self._call("load", (_local(store), dataset, list(days), run_id))

    def load_keyed(
        self, store: StageStore, manifest: KeyedManifest, *, run_id: str | None = None
    ) -> KeyedLoadResult:
        return self._call("load_keyed", (_local(store), manifest, run_id))

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        rows: list[tuple[object, ...]] = []
        self._call("query", (sql, list(params)), rows)
        return rows

    # -- the report's reads ---------------------------------------------------------------
    @contextlib.contextmanager
    def reading(self) -> Iterator[Callable[[str, Sequence[object]], list[tuple[object, ...]]]]:
        """One read-only connection in the child for a series of reads, as the report makes."""
        with self._lock:
            self._call("open_reading", ())

            def run(sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
                rows: list[tuple[object, ...]] = []
                self._call("read", (sql, list(params)), rows)
                return rows

            try:
                yield run
            finally:
                if self._conn is not None:
                    self._call("close_reading", ())

    def close(self) -> None:
        """End the child (it holds no state between calls worth keeping)."""
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._proc = self._conn = self._finalizer = None

    def _kill(self) -> None:
        """End a child that is busy: it would read a request to close only when done."""
        if self._proc is not None and self._proc.is_alive():
            self._proc.terminate()
        self.close()

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs (for tests and the benches), else None."""
        return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    # -- internals ------------------------------------------------------------------------
    def _start(self) -> Connection:
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            return self._conn
        self.close()
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_serve,
            args=(child, self.db_path, self.memory_limit, self.lock_timeout_s, raw_tables()),
            name=WAREHOUSE_PROCESS_NAME,
            daemon=True,
        )
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        self._finalizer = weakref.finalize(self, _stop, proc, parent)
        return parent

    def _call(self, op: str, args: tuple, rows: list | None = None) -> Any:
        with self._lock:
            try:
                conn = self._start()
                conn.send((op, args))
                while True:
                    kind, payload = conn.recv()
                    if kind == "rows" and rows is not None:
                        rows.extend(payload)
                    elif kind == "ok":
                        return payload
                    else:
                        error: BaseException = payload
                        break
            except (EOFError, OSError) as exc:
                code = None
                if self._proc is not None:
                    self._proc.join(timeout=5)
                    code = self._proc.exitcode
                self.close()
                raise WarehouseProcessError(
                    f"the warehouse process ({WAREHOUSE_PROCESS_NAME}) ended without answering "
                    f"{op!r} (exit code {code}); nothing it had not committed was kept"
                ) from exc
            except BaseException:
                # interrupted mid-call (a run stopped from the UI): the child is still working on
                # a reply no one will read, so it is stopped at once (its open transaction dies
                # with it, DuckDB keeps the previous rows); the next call starts another
                self._kill()
                raise
        raise error  # the child's own answer, read whole: the child is fine and stays


def _local(store: StageStore) -> LocalStageStore:
    """The child opens the staged files by path, so only a local folder can cross to it."""
    if not isinstance(store, LocalStageStore):
        raise TypeError(
            "the warehouse process reads the stage by path; an s3:// stage keeps DuckDB in the "
            "run worker (WarehouseResource)"
        )
    return store


def _stop(proc: Any, conn: Connection) -> None:
    """Ask the child to end, then make sure it has (it holds no work between calls)."""
    with contextlib.suppress(OSError, ValueError):
        conn.send(("close", ()))
    with contextlib.suppress(OSError):
        conn.close()
    proc.join(timeout=5)
    if proc.is_alive():
        proc.terminate()
        proc.join(timeout=5)
