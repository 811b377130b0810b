"""Fixtures for tests that load the whole code location."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from recon_assets.defs.dbt_assets import DBT_PROJECT_DIR, dbt_project, prepare_manifest


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    """The repo's local manifest, prepared once even with several xdist workers."""
    lock = DBT_PROJECT_DIR / "target" / ".prepare.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        manifest = dbt_project("local").manifest_path
        if not manifest.exists():
            prepare_manifest(target="local")
        return manifest
