"""Helpers for the few places recon does work in a spawned child process.

Spawned, never forked: by the time a run needs a child, its process has threads that are not
Python's (jemalloc's, gRPC's, DuckDB's), and a fork copies their locks mid-state.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import threading

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_PR_SET_NAME = 15


def die_with_parent() -> None:
    """In a child: receive SIGTERM when the parent ends (Linux; elsewhere a no-op), and die of it.

    A run killed from the Dagster UI, or a CLI stopped with Ctrl-C, otherwise left its children
    running on: a seeder holding its lock and transaction, a pull still fetching pages.

    SIGTERM's default action comes first: an ignored or blocked SIGTERM survives the spawn's
    `exec` (a parent under Dagster's interrupt handling, as a test worker, passes it on), and a
    child that ignores it outlives both its parent and `Process.terminate()`: a warehouse process
    was found still running an interrupted read, and holding the warehouse file, 25 minutes after
    its test had ended. A child that wants SIGTERM handled sets its handler after this."""
    default_sigterm()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def default_sigterm() -> None:
    """Give this process, and so everything it starts, SIGTERM's default action, unblocked.

    An ignored or blocked SIGTERM survives `exec`, so a process started by a parent that ignores
    it (a test worker after Dagster's own interrupt handling, some supervisors) cannot be stopped
    by `terminate()`, and passes that on to what it starts. Only the main thread may set a
    handler; elsewhere this is a no-op."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def name_process(name: str) -> None:
    """Name this process as `ps -o comm`, `top` and a memory sampler show it (Linux keeps 15
    bytes; elsewhere a no-op).

    A spawned child's command line is multiprocessing's own (`python -c "from
    multiprocessing.spawn import ..."`), the same for every child: without a name, an operator
    sizing a pod cannot tell the pull's processes from any other, nor measure each one."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, name.encode()[:15])
