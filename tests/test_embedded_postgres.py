"""The embedded Postgres: starts, is reused, stops cleanly, and explains what it cannot do."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import psycopg
import pytest

from recon_assets.config import ConfigError, ReconSettings
from recon_assets.local import postgres as pgmod
from recon_assets.local.postgres import EmbeddedPostgres, EmbeddedPostgresError, ledger_dsn

pytest_plugins = ["tests.ledger_fixtures"]

pytestmark = pytest.mark.timeout(120)


def _settings(tmp: Path, **env: str) -> ReconSettings:
    return ReconSettings.from_env({"RECON_HOME": str(tmp), **env})


def test_a_second_handle_reuses_the_running_server(ledger_pg: EmbeddedPostgres) -> None:
    again = EmbeddedPostgres(ledger_pg.data_dir)
    assert again.start() == ledger_pg.dsn
    with again:  # did not start it, so leaving the block must not stop it
        pass
    assert ledger_pg.is_running()
    assert ledger_pg.state_file.exists()
    assert "password" not in ledger_pg.state_file.read_text().lower()


def test_local_mode_starts_or_reuses_the_server_under_home(
    ledger_pg: EmbeddedPostgres, ledger_home: Path
) -> None:
    assert ledger_dsn(_settings(ledger_home)) == ledger_pg.dsn


def test_an_explicit_dsn_wins_in_every_mode(tmp_path: Path) -> None:
    dsn = "postgresql://reader@ledger.internal/ledger"
    assert ledger_dsn(_settings(tmp_path, RECON_LEDGER_DSN=dsn)) == dsn
    prod = {
        "RECON_ENV": "prod",
        "STRIPE_API_KEY": "rk_x",
        "RECON_STAGE_URI": "s3://recon-b/p",
        "RECON_WAREHOUSE": "duckdb",  # only the ledger setting matters here
    }
    assert ledger_dsn(_settings(tmp_path, RECON_LEDGER_DSN=dsn, **prod)) == dsn
    with pytest.raises(ConfigError, match="RECON_ENV=prod needs RECON_LEDGER_DSN"):
        ledger_dsn(_settings(tmp_path, **prod))
    assert not (tmp_path / "postgres").exists()  # nothing was started


def test_lifecycle_port_retry_and_context_manager(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fresh cluster: the first port is stolen before Postgres binds it, start retries;
    `with` stops what it started; a restart keeps the data."""
    from tests.ledger_fixtures import traversable_tmpdir  # after pytest loaded it as a plugin

    base = traversable_tmpdir("recon-pg-life-")
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    ports = iter([squatter.getsockname()[1]])
    real_free_port = pgmod.free_port
    monkeypatch.setattr(pgmod, "free_port", lambda: next(ports, None) or real_free_port())
    pg = EmbeddedPostgres(base / "pg" / "data", durable=False)
    try:
        with pg:
            dsn = pg.dsn
            assert str(squatter.getsockname()[1]) not in dsn
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("CREATE TABLE kept (a int); INSERT INTO kept VALUES (42)")
        assert not pg.is_running()
        assert json.loads(pg.state_file.read_text())["dsn"] is None
        with pytest.raises(EmbeddedPostgresError, match="not started"):
            _ = pg.dsn
        with EmbeddedPostgres(base / "pg" / "data", durable=False) as again:
            assert again.dsn == dsn  # the recorded port is preferred: DSNs survive restarts
            with psycopg.connect(again.dsn) as conn:
                assert conn.execute("SELECT a FROM kept").fetchone() == (42,)
    finally:
        squatter.close()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the traversal check applies when running as root")
def test_an_unreachable_data_dir_is_a_clear_error_and_changes_nothing(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    with pytest.raises(EmbeddedPostgresError, match="cannot reach") as info:
        EmbeddedPostgres(private / "pg" / "data").start()
    assert "chmod o+x" in str(info.value)
    assert private.stat().st_mode & 0o777 == 0o700
    assert list(private.iterdir()) == []


def test_no_binaries_and_no_pgserver_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    monkeypatch.setattr(pgmod, "find_pg_bin_dir", lambda root=None: None)
    real_import = builtins.__import__

    def no_pgserver(name: str, *args: object, **kwargs: object) -> object:
        if name == "pgserver":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_pgserver)
    with pytest.raises(EmbeddedPostgresError, match="apt-get install postgresql"):
        EmbeddedPostgres(tmp_path / "data").start()


def test_find_pg_bin_dir_picks_the_newest_major(tmp_path: Path) -> None:
    for major in ("9.6", "15", "16", "not-a-version"):
        b = tmp_path / major / "bin"
        b.mkdir(parents=True)
        for exe in ("initdb", "pg_ctl", "postgres"):
            (b / exe).touch()
    assert pgmod.find_pg_bin_dir(tmp_path) == tmp_path / "16" / "bin"
    assert pgmod.find_pg_bin_dir(tmp_path / "missing") is None
