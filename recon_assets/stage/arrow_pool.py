"""Arrow's memory in the run worker: freed pages go back to the system as they are freed.

pyarrow's default pool (mimalloc) keeps what a step freed for its next allocation, and in a
long-lived process that is memory no later step can shrink: in a 600 k first backfill the
ledger's extract (1.1 M entries, parsed from CSV a 4 MB block at a time) left the run worker
~80 MB larger after it ended, and every later step ran on top of it. jemalloc with its decay at
0 returns a freed page at once: the same extract peaked ~40 MB over its start and kept ~27 MB
(docs/benchmarks.md, "Where the run worker's memory goes").
"""

from __future__ import annotations

import pyarrow as pa


def return_freed_arrow_memory() -> str:
    """Make jemalloc, returning freed pages at once, the default pool of this process (which
    every Arrow read and write here then uses); idempotent. Where pyarrow was built without
    jemalloc the default pool stays. Returns the pool's backend name."""
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:
        return pa.default_memory_pool().backend_name
    pa.jemalloc_set_decay_ms(0)
    pa.set_memory_pool(pool)
    return pool.backend_name
