"""The helpers for recon's spawned children, in real spawned processes."""

from __future__ import annotations

import multiprocessing
import sys
from multiprocessing.connection import Connection

import psutil
import pytest

from recon_assets.child_processes import name_process
from recon_assets.stripe.pull_shards import PULL_PROCESS_NAME

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(sys.platform != "linux", reason="a process name is Linux's prctl"),
]


def _named_child(conn: Connection, name: str) -> None:
    name_process(name)
    with open("/proc/self/comm") as f:
        conn.send(f.read().strip())
    conn.recv()  # stay alive until the parent has looked


@pytest.mark.parametrize("name", [PULL_PROCESS_NAME, "a-name-longer-than-fifteen-bytes"])
def test_a_named_child_is_seen_by_that_name_from_outside(name: str) -> None:
    """What `ps`, `top` and the benches' per-process sampler read (psutil's name() is the
    kernel's comm): the name, cut to the 15 bytes Linux keeps."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_named_child, args=(child, name))
    proc.start()
    try:
        assert parent.recv() == name[:15]
        assert psutil.Process(proc.pid).name() == name[:15]
        assert psutil.Process().name() != name[:15]  # the parent keeps its own
    finally:
        parent.send("done")
        proc.join(timeout=30)
    assert proc.exitcode == 0
