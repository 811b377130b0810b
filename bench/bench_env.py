"""The environment of the benchmark children that measure recon: as recon's own install has it."""

from __future__ import annotations

import argparse
import contextlib
import os
import textwrap
from pathlib import Path

NO_PANDAS = Path(__file__).resolve().parent / "no_pandas"
REPO = Path(__file__).resolve().parents[1]


def production_env(env: dict[str, str]) -> dict[str, str]:
    """`env` with pandas unimportable, as in recon's own install.

    The `bench` extra installs pandas (the legacy peer needs it). Where pandas is installed,
    pyarrow imports it on its first `pa.array` (1-2 s here, holding the GIL: it stalled a
    rate-limited pull for a second mid-run) and dagster-snowflake imports it when loaded. recon's
    install has no pandas, so the children measuring recon (and dlt, which needs none either)
    find a `pandas` that is "not installed".
    """
    paths = [str(NO_PANDAS), *filter(None, [env.get("PYTHONPATH")])]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


# Dagster instances to compare: (storage, Dagster's own environment settings). The settings are
# the ones docs/operations.md gives a production instance for backfills.
INSTANCES: dict[str, tuple[str, dict[str, str]]] = {
    "sqlite": ("sqlite", {}),
    "postgres": ("postgres", {}),
    "postgres-batched": ("postgres", {"DAGSTER_EVENT_BATCH_SIZE": "1000"}),
    "postgres-batched-subset": (
        "postgres",
        {
            "DAGSTER_EVENT_BATCH_SIZE": "1000",
            "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
        },
    ),
}


@contextlib.contextmanager
def dagster_postgres(needed: bool, root: Path):  # type: ignore[no-untyped-def]
    """A Postgres server for Dagster's storage (recon's embedded one, durable like production),
    or None when no instance needs it."""
    if not needed:
        yield None
        return
    from recon_assets.local.postgres import EmbeddedPostgres

    os.chmod(root, 0o711)  # the embedded Postgres runs as `postgres` under root
    server = EmbeddedPostgres(root / "data", dbname="postgres")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def instance_home(home: Path, storage: str, server: object, run: int) -> dict[str, str]:
    """Prepare RECON_HOME/dagster for `storage` (recon keeps a dagster.yaml it finds there) and
    return the environment it needs. Postgres: the project's instance settings plus the
    operations guide's storage block, on a new database."""
    if storage == "sqlite":
        return {}
    import psycopg

    guide = (REPO / "docs" / "operations.md").read_text()
    block = textwrap.dedent(guide.split("```yaml\n", 1)[1].split("```", 1)[0])
    admin = server.dsn  # type: ignore[attr-defined]
    db = f"bench_dagster_{os.getpid()}_{run}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db}")
        conn.execute(f"CREATE DATABASE {db}")
    dagster = home / "dagster"
    dagster.mkdir(parents=True, exist_ok=True)
    (dagster / "dagster.yaml").write_text(
        (REPO / "recon_assets" / "dagster.yaml").read_text() + "\n" + block
    )
    url = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
    return {"DAGSTER_PG_URL": f"{url}/{db}"}


EMULATOR_MODES = ("apart", "thread")
"""Where the local Stripe emulator runs during a measured command: `apart`, in a process of its
own outside the measured tree (as Stripe is to a production run worker, which the issue sizes
without it); `thread`, on a thread of the run's own process, as a plain local run starts it."""


def add_emulator_argument(ap: argparse.ArgumentParser, during: str = "") -> None:
    """The benches' one `--emulator` option (`during`: which part of the bench it is for)."""
    ap.add_argument(
        "--emulator", nargs="+", default=["apart"], choices=EMULATOR_MODES,
        help=f"where the Stripe emulator runs{during}: apart (its own process, outside the "
        "measured tree, as Stripe is to a production run worker) or thread (in the run's "
        "process, as a plain local run starts it); several compare side by side",
    )  # fmt: skip


@contextlib.contextmanager
def emulator_apart(env: dict[str, str], mode: str):  # type: ignore[no-untyped-def]
    """For `apart`: `recon emulator` serving the very account `env`'s local runs read, in its
    own process (not a child of the measured command), warm (`--warm-days`: its recent days
    derived before it listens, as Stripe answers at once); yields the settings that point the
    run at it. It is this checkout's emulator whatever `env`'s PYTHONPATH says: a variant
    compares recon's code, against one and the same stand-in for Stripe. For `thread`: nothing
    to start, no settings."""
    import subprocess
    import sys

    if mode == "thread":
        yield {}
        return
    recon = Path(sys.executable).parent / "recon"
    proc = subprocess.Popen(
        [str(recon), "emulator", "--port", "0"],
        env={**env, "PYTHONPATH": str(REPO)}, cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        base = proc.stdout.readline().strip() if proc.stdout else ""
        if not base.startswith("http"):
            raise SystemExit(f"recon emulator did not say where it listens (exit {proc.poll()})")
        yield {"STRIPE_API_BASE": base}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
