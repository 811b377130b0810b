"""Dagster resources: thin configuration holders that build the Dagster-free parts.

Values come from `ReconSettings` (environment variables) when the definitions are built, or
from `dg.EnvVar` for secrets in production, so a secret is resolved inside the run and never
appears in the UI's resource config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field, PrivateAttr

from recon_assets.config import DUCKDB_MEMORY_LIMIT
from recon_assets.stage.store import StageStore, stage_store_from_uri
from recon_assets.stripe.client import ChargesClient, ClientSpec
from recon_assets.warehouse.duckdb_process import DuckDBProcess
from recon_assets.warehouse.loader import WarehouseLoader

if TYPE_CHECKING:
    from recon_assets.warehouse.duckdb_loader import DuckDBLoader


class StripeResource(dg.ConfigurableResource):
    """Stripe's API: the production resource, and the local one when STRIPE_API_BASE is set.
    No value has a default here: every one comes from `ReconSettings`, the one place defaults
    live."""

    api_key: str = Field(description="Restricted read-only key; from STRIPE_API_KEY.")
    api_base: str | None = Field(default=None, description="STRIPE_API_BASE; None = Stripe.")
    rate_per_s: float
    max_retries: int
    windows_per_day: int
    concurrency: int
    pull_processes: int

    def _spec(self, api_base: str | None) -> ClientSpec:
        return ClientSpec(self.api_key, api_base, self.rate_per_s, self.max_retries)

    @contextmanager
    def client_spec(self) -> Iterator[ClientSpec]:
        """What builds a client, in this process or another (the charges pull's processes)."""
        yield self._spec(self.api_base)

    @contextmanager
    def charges_client(self) -> Iterator[ChargesClient]:
        with self.client_spec() as spec:
            yield spec.build()


class LocalStripeResource(StripeResource):
    """Local mode without STRIPE_API_BASE only: the project's emulator, started for the run.
    Production never builds it, so it never imports `recon_assets.local`."""

    emulator_seed: int
    emulator_charges_per_day: int
    emulator_start_date: str
    emulator_now: int | None = Field(
        default=None, description="Freeze the emulator's clock (unix s); None = wall clock."
    )
    emulator_changes: str | None = Field(
        default=None, description="RECON_EMULATOR_CHANGES: a JSON file of hand-made changes."
    )

    @contextmanager
    def client_spec(self) -> Iterator[ClientSpec]:
        from recon_assets.local.bootstrap import emulator_config
        from recon_assets.local.stripe_emulator import StripeEmulator

        cfg = emulator_config(
            self.emulator_seed,
            self.emulator_charges_per_day,
            date.fromisoformat(self.emulator_start_date),
            self.api_key,
            now=self.emulator_now,
            changes_file=Path(self.emulator_changes) if self.emulator_changes else None,
        )
        with StripeEmulator(cfg, host="127.0.0.1", port=0) as emu:
            yield self._spec(emu.base_url)


class StageResource(dg.ConfigurableResource):
    """The stage: a local folder, or `s3://bucket/prefix` through dagster-aws's S3Resource."""

    uri: str
    # dagster-aws's S3Resource; annotated with the base class so that loading the code location
    # never imports dagster-aws (about 2 s) where the stage is a local folder
    s3: dg.ConfigurableResource | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Every step that stages or loads has this resource: before its first Arrow work, the
        run worker's Arrow memory goes back to the system as it is freed (stage/arrow_pool.py)."""
        from recon_assets.stage.arrow_pool import return_freed_arrow_memory

        return_freed_arrow_memory()

    def store(self) -> StageStore:
        client = self.s3.get_client() if self.uri.startswith("s3://") and self.s3 else None
        return stage_store_from_uri(self.uri, client)

    def store_for_writing(self, context: dg.AssetExecutionContext) -> StageStore:
        """The store, with abandoned temp files of killed runs (older than an hour) removed."""
        store = self.store()
        removed = getattr(store, "remove_stale_temp_files", lambda: 0)()
        if removed:
            context.log.info(f"removed {removed} stale temp files of unfinished writes")
        return store


class LedgerResource(dg.ConfigurableResource):
    """The ledger's Postgres: `RECON_LEDGER_DSN`, else (local mode) the embedded server."""

    dsn: str | None = Field(default=None, description="RECON_LEDGER_DSN; secret, never logged.")
    embedded_data_dir: str | None = Field(
        default=None, description="Local mode: the embedded server's data dir to start/reuse."
    )

    def resolve_dsn(self) -> str:
        if self.dsn:
            return self.dsn
        if not self.embedded_data_dir:
            raise dg.DagsterInvariantViolationError(
                "no ledger: set RECON_LEDGER_DSN (required when RECON_ENV=prod)"
            )
        from recon_assets.local.postgres import EmbeddedPostgres

        return EmbeddedPostgres(Path(self.embedded_data_dir)).start()


_STAGES_ENSURED: set[tuple[str, str, str]] = set()
"""Snowflake external stages this process already created or checked."""


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse the raw tables are loaded into: a DuckDB file, or Snowflake."""

    kind: str = Field(default="duckdb", description="duckdb | snowflake")
    duckdb_path: str | None = None
    duckdb_memory_limit: str = Field(
        default=DUCKDB_MEMORY_LIMIT, description="DuckDB's memory_limit for every connection"
    )
    duckdb_in_child: bool = Field(
        default=True,
        description="DuckDB's loads and reads in one child process per run, not the run worker "
        "(warehouse/duckdb_process.py); False where the stage is s3://, which the child cannot "
        "read by path",
    )
    # dagster-snowflake's SnowflakeResource; annotated with the base class so that loading the
    # code location never imports dagster-snowflake (about 7 s: it pulls in snowpark) for DuckDB
    snowflake: dg.ConfigurableResource | None = None
    snowflake_database: str | None = None
    snowflake_stage: str = "RECON_STAGE"
    snowflake_storage_integration: str | None = None
    _duckdb_process: DuckDBProcess | None = PrivateAttr(default=None)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """The run's warehouse process ends with the run (with the in-process executor the
        resource is set up once per run, so every step shares the one process)."""
        if self._duckdb_process is not None:
            self._duckdb_process.close()

    def _duckdb(self) -> DuckDBProcess | DuckDBLoader:
        if not self.duckdb_path:
            raise dg.DagsterInvariantViolationError("duckdb_path is not set")
        if not self.duckdb_in_child:
            from recon_assets.warehouse.duckdb_loader import DuckDBLoader

            return DuckDBLoader(self.duckdb_path, memory_limit=self.duckdb_memory_limit)
        if self._duckdb_process is None:
            self._duckdb_process = DuckDBProcess(
                self.duckdb_path, memory_limit=self.duckdb_memory_limit
            )
        return self._duckdb_process

    def loader(self, stage_uri: str) -> WarehouseLoader:
        if self.kind == "duckdb":
            return self._duckdb()
        if self.snowflake is None or not self.snowflake_database:
            raise dg.DagsterInvariantViolationError("Snowflake warehouse is not configured")
        from recon_assets.warehouse.snowflake_loader import SnowflakeLoader

        loader = SnowflakeLoader(
            self.snowflake.get_connection,
            self.snowflake_stage,
            self.snowflake_database,
            query_tag=True,
        )
        if self.snowflake_storage_integration:
            # once per process: its DDL round trips would otherwise run before every load
            key = (self.snowflake_database, self.snowflake_stage, stage_uri)
            if key not in _STAGES_ENSURED:
                loader.ensure_stage(stage_uri, self.snowflake_storage_integration)
                _STAGES_ENSURED.add(key)
        return loader

    @contextmanager
    def query(self) -> Iterator[Callable[[str, Sequence[object]], list[tuple[object, ...]]]]:
        """A read-only `run(sql, params)` for the report: `?` placeholders on both engines."""
        if self.kind == "duckdb":
            with self._duckdb().reading() as run:
                yield run
            return
        if self.snowflake is None:
            raise dg.DagsterInvariantViolationError("Snowflake warehouse is not configured")
        with self.snowflake.get_connection() as conn:
            cur = conn.cursor()
            try:

                def run(sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
                    cur.execute(sql.replace("?", "%s"), list(params))
                    return list(cur.fetchall())

                yield run
            finally:
                cur.close()
