"""Helpers for the few places recon does work in a spawned child process.

Spawned, never forked: by the time a run needs a child, its process has threads that are not
Python's (jemalloc's, gRPC's, DuckDB's), and a fork copies their locks mid-state.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """In a child: receive SIGTERM when the parent ends (Linux; elsewhere a no-op).

    A run killed from the Dagster UI, or a CLI stopped with Ctrl-C, otherwise left its children
    running on: a seeder holding its lock and transaction, a pull still fetching pages."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
