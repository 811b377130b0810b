"""No secret anywhere: the graph runs with canary secrets in the environment (as a user or a
deployment gives them) and no canary may appear in any file under RECON_HOME or DAGSTER_HOME
(Dagster's sqlite storage decompressed: its snapshots are zlib blobs), in dbt's target and logs,
in the stage's Parquet, or on the console.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import subprocess
import sys
import time
import zlib
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from recon_assets.defs.dbt_assets import DBT_PROJECT_DIR
from tests.clock import PINNED_NOW, pinned_days
from tests.ledger_fixtures import TEMPLATE_DB, _admin_dsn, _create_db, _drop_db

pytestmark = [pytest.mark.timeout(600), pytest.mark.xdist_group("secrets")]

RECON = Path(sys.executable).with_name("recon")


def sqlite_texts(path: Path) -> list[bytes]:
    """Every value of every table, and each blob's zlib-decompressed form."""
    out: list[bytes] = []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            for row in con.execute(f'select * from "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        out.append(value)
                        with contextlib.suppress(zlib.error):
                            out.append(zlib.decompress(value))
                    elif isinstance(value, str):
                        out.append(value.encode())
    finally:
        con.close()
    return out


def parquet_texts(path: Path) -> list[bytes]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return [str(v).encode() for col in table.columns for v in col.to_pylist() if v is not None]


def scan(roots: list[Path], since: float) -> dict[str, list[bytes]]:
    found: dict[str, list[bytes]] = {}
    for root in roots:
        for p in root.rglob("*"):
            if not p.is_file() or p.stat().st_mtime < since or "postgres" in p.parts:
                continue
            blobs = [p.read_bytes()]
            if p.suffix == ".db" or p.name.endswith((".db-wal",)):
                if p.suffix == ".db":
                    blobs += sqlite_texts(p)
            elif p.suffix == ".parquet":
                blobs += parquet_texts(p)
            found[str(p)] = blobs
    return found


def test_canary_secrets_reach_no_file_and_no_console(
    ledger_pg: object, dbt_manifest: Path, tmp_path: Path
) -> None:
    server_dsn = ledger_pg.dsn  # type: ignore[attr-defined]
    name = _create_db(server_dsn, TEMPLATE_DB)
    canary = secrets.token_hex(8)
    key = f"sk_test_CANARY{canary}"
    password = f"pwCANARY{canary}"
    role = f"reader_{secrets.token_hex(4)}"  # a user name is not a secret; its password is
    with psycopg.connect(_admin_dsn(server_dsn), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'")
    host = server_dsn.split("@", 1)[1].rsplit("/", 1)[0]
    dsn = f"postgresql://{role}:{password}@{host}/{name}"
    day = pinned_days(1)[0]
    home = tmp_path / "recon"
    env = {
        **os.environ,
        "RECON_HOME": str(home),
        "RECON_START_DATE": (day - timedelta(days=3)).isoformat(),
        "RECON_EMULATOR_NOW": str(PINNED_NOW),
        "RECON_EMULATOR_CHARGES_PER_DAY": "120",
        "STRIPE_API_KEY": key,
        "RECON_LEDGER_DSN": dsn,
        "RECON_ALERT_WEBHOOK_URL": f"http://127.0.0.1:9/hooks/CANARY{canary}",
        "RECON_SLACK_BOT_TOKEN": f"xoxb-CANARY{canary}",
        "RECON_SLACK_CHANNEL": "#recon",
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    env.pop("DAGSTER_HOME", None)
    started = time.time() - 1
    try:
        # the dev ledger seeded by name (recon never writes to RECON_LEDGER_DSN), then the run
        seeded = subprocess.run(
            [str(RECON), "seed", "--dsn", dsn, "--start", day.isoformat(), "--end",
             day.isoformat()], env=env, capture_output=True, timeout=300, check=False,
        )  # fmt: skip
        assert seeded.returncode == 0, (seeded.stdout + seeded.stderr).decode(errors="replace")
        proc = subprocess.run(
            [str(RECON), "backfill", "--start", day.isoformat(), "--end", day.isoformat()],
            env=env, capture_output=True, timeout=500, check=False,
        )  # fmt: skip
        console = seeded.stdout + seeded.stderr + proc.stdout + proc.stderr
        assert proc.returncode == 0, console.decode(errors="replace")[-3000:]
        assert b"day reports written" in console or b"items" in console
        files = scan([home, DBT_PROJECT_DIR / "target", DBT_PROJECT_DIR / "logs"], started)
        assert any(p.endswith("runs.db") for p in files), "Dagster's run storage was not written"
        assert any(".parquet" in p for p in files)
        needles = [
            key.encode(),
            password.encode(),
            env["RECON_ALERT_WEBHOOK_URL"].encode(),
            env["RECON_SLACK_BOT_TOKEN"].encode(),
        ]
        leaks = {
            p: n.decode() for p, blobs in files.items() for n in needles for b in blobs if n in b
        }
        for p, ctx in leaks.items():
            print("LEAK", p, "::", ctx)
        assert not leaks, sorted(leaks)
        assert not any(n in console for n in needles)
    finally:
        _drop_db(server_dsn, name)
