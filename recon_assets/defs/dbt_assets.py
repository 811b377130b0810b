"""The dbt project as Dagster assets: staging and intermediate views, the two incremental marts,
and every dbt test as an asset check.

Nothing happens at import: no `dbt parse`, no environment read. `definitions.py` calls
`build_dbt_assets(...)` with the daily partitions, the target and T; the manifest must exist by
then (`prepare_manifest` in CI, the demo and tests; `DbtProject.prepare_if_dev()` under
`dagster dev`).

One run covers one partition or a whole range (`BackfillPolicy.single_run()`): the run's time
window becomes the dbt vars (`build_dbt_vars`) and one `dbt build` re-states exactly those
US-Eastern days. Build the first range of a new deployment in one run: separate first
partitions can race to create the incremental tables (dagster#18733).

No `from __future__ import annotations` here: Dagster checks the `context` annotation of the
asset function by identity, and a string annotation fails that check.
"""

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext
from dagster_dbt import (
    DagsterDbtCliRuntimeError,
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)
from dagster_dbt.dbt_project import using_dagster_dev
from packaging.version import Version
from packaging.version import parse as parse_version

from recon_assets.config import DUCKDB_FILE_NAME, DUCKDB_MEMORY_LIMIT
from recon_assets.defs.partitions import WRITER_POOL
from recon_assets.warehouse.dbt_launch import WAREHOUSE_ENV, env_args
from recon_assets.warehouse.dbt_vars import RUN_VARS_ENV, build_dbt_vars

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
"""The dbt project shipped with the code location (top level `dbt_project/`)."""

TARGETS = ("local", "prod")
GROUP_NAME = "reconciliation"
DEFAULT_OWNERS: tuple[str, ...] = ("team:analytics-engineering", "team:finance-ops")
DBT_ASSETS_NAME = "recon_dbt_models"
PARSE_ONLY_SNOWFLAKE_VARS = (
    "SNOWFLAKE_ACCOUNT",
    "SNOWFLAKE_USER",
    "SNOWFLAKE_ROLE",
    "SNOWFLAKE_WAREHOUSE",
)
"""What the prod profile reads only to connect: no manifest holds them (checked by a test)."""
DBT_RUN_LOG_ARGS = (
    "--log-level-file", "info", "--log-format-file", "text", "--no-use-colors",
)  # fmt: skip
"""The per-run dbt log (`dbt.log` in the run's folder): each node's start and result, warnings
and errors, readable as text; not every SQL statement."""


DBT_ENV_DIR = DBT_PROJECT_DIR.parent / ".venv-dbt"
"""dbt's own environment in a checkout (`.ci/install` makes it): dbt-core and its adapters live
there, not beside Dagster, so loading the code location never imports dbt."""


def dbt_core_version(executable: str | Path) -> Version | None:
    """The dbt-core version installed in the environment `executable` lives in, read from that
    environment's package metadata; None when it has none (another kind of executable).

    dagster-dbt learns the version by running `dbt --version` before every invocation (3.2 s on
    the 2-core machine); the metadata says the same without starting dbt.
    """
    path = Path(executable)
    if path.name not in ("dbt", "recon-dbt") or not path.is_absolute():
        return None
    sites = [str(p) for p in path.parent.parent.glob("lib/python3*/site-packages")]
    found = next(iter(distributions(name="dbt-core", path=sites)), None) if sites else None
    return parse_version(found.version) if found is not None else None


def default_dbt_executable() -> str:
    """`recon-dbt` (dbt behind `recon_assets.warehouse.dbt_launch`) of the first environment that
    has dbt-core: the checkout's `.venv-dbt`, then this interpreter's own (a single-environment
    install); else `recon-dbt` on PATH.

    dagster-dbt runs dbt as a subprocess and only looks on PATH; a Dagster started as
    `.venv/bin/dagster` without an activated venv would otherwise not find it. The launcher is
    what lets a run hand dbt its own environment without touching the Dagster process's.
    """
    for candidate in (
        DBT_ENV_DIR / "bin" / "recon-dbt",
        Path(sys.executable).with_name("recon-dbt"),
    ):
        if candidate.exists() and dbt_core_version(candidate) is not None:
            return str(candidate)
    return "recon-dbt"


def dbt_project(target: str = "local", project_dir: Path = DBT_PROJECT_DIR) -> DbtProject:
    """The project for one target; each target keeps its own manifest (`target/<target>/`),
    because the manifest records the adapter (it becomes the assets' `duckdb`/`snowflake` kind).
    """
    if target not in TARGETS:
        raise ValueError(f"dbt target must be one of {TARGETS}, got {target!r}")
    return DbtProject(
        project_dir=project_dir,
        profiles_dir=project_dir,  # profiles.yml lives in the project
        target=target,
        target_path=Path("target") / target,
    )


class ReconDbtCliResource(DbtCliResource):
    """dagster-dbt's resource without two fixed costs it pays before every invocation.

    Measured on the 2-core machine: `dbt --version` in a subprocess (to learn the version of
    the executable, 3.2 s) and an in-process dbt adapter (1.9 s), which dagster-dbt only uses
    for the opt-in row-count and column metadata this project does not ask for (and cannot build
    where dbt-core is not importable, as in this project's install). The version comes from the
    executable's environment (`dbt_core_version`); an executable outside one keeps dagster-dbt's
    own check.
    """

    @property
    def _cli_version(self) -> Any:  # dagster-dbt: a cached_property running `dbt --version`
        resolved = shutil.which(self.dbt_executable)
        found = dbt_core_version(resolved) if resolved else None
        if found is not None:
            return found
        return DbtCliResource._cli_version.func(self)  # type: ignore[attr-defined]

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> Any:
        return None  # only for fetch_row_counts / fetch_column_metadata, which we never call


def prune_run_folders(runs: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` per-run dbt folders under `runs` (a killed run's too)."""
    if not runs.is_dir():
        return []
    folders = sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    stale = folders[: max(0, len(folders) - keep)]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return stale


def dbt_resource(project: DbtProject, dbt_executable: str | None = None) -> DbtCliResource:
    """The `dbt` resource for `project` (its target and profiles dir included)."""
    return ReconDbtCliResource(
        project_dir=project, dbt_executable=dbt_executable or default_dbt_executable()
    )


def prepare_manifest(
    project_dir: Path = DBT_PROJECT_DIR,
    target: str = "local",
    *,
    dbt_executable: str | None = None,
) -> Path:
    """Run `dbt parse` for `target` and return the manifest path.

    Called explicitly by tests, CI, an image build and the demo bootstrap (never at import).
    Parsing opens no warehouse connection: for `prod`, the connection settings the profile
    reads but the manifest never holds (`PARSE_ONLY_SNOWFLAKE_VARS`) get placeholders in dbt's
    process when unset, so an image build needs no credentials. SNOWFLAKE_DATABASE is in every
    table's name (Dagster shows them), so it must be the real one.

    For `local`, dbt parses with the warehouse named as every run names it: by its bare file
    name (`DUCKDB_FILE_NAME`, see `recon_assets.warehouse.dbt_launch`). The profile is part of
    dbt's parse hash, so otherwise the `partial_parse.msgpack` every run's target folder starts
    from (`stable_target_path`) did not match, and each new home's first `dbt build` (the demo's,
    every test's) parsed the whole project again: 3.4 s.
    """
    project = dbt_project(target, project_dir)
    env: dict[str, str] = {}
    if target == "local":
        # Parsing opens no connection: the file need not exist, only its folder (dbt runs there).
        env = {WAREHOUSE_ENV: str(project.project_dir / DUCKDB_FILE_NAME)}
    if target == "prod":
        if not os.environ.get("SNOWFLAKE_DATABASE"):
            from recon_assets.config import ConfigError

            raise ConfigError(
                "the prod manifest needs SNOWFLAKE_DATABASE (it is in every table's name); "
                "the connection settings are not needed to parse"
            )
        env = {v: "unset-at-parse" for v in PARSE_ONLY_SNOWFLAKE_VARS if not os.environ.get(v)}
    dbt_resource(project, dbt_executable).cli(
        [*env_args(env), "parse", "--quiet"], target_path=project.target_path
    ).wait()
    if not project.manifest_path.exists():
        raise FileNotFoundError(f"dbt parse wrote no manifest at {project.manifest_path}")
    return project.manifest_path


def manifest_is_current(project_dir: Path = DBT_PROJECT_DIR, target: str = "local") -> bool:
    """True when the target's manifest exists and is newer than every file of the project it
    was parsed from (models, macros, tests, the project and profile YAML)."""
    manifest = dbt_project(target, project_dir).manifest_path
    if not manifest.exists():
        return False
    built = manifest.stat().st_mtime
    sources = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for folder in ("models", "macros", "tests"):
        sources += [p for p in (project_dir / folder).rglob("*") if p.is_file()]
    return all(p.stat().st_mtime <= built for p in sources if p.exists())


def ensure_manifest(target: str = "local", project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """The target's manifest, parsed first when it is missing or older than the project (a
    fresh clone, or a pull that changed a model): what `recon demo` and `recon dev` need."""
    if not manifest_is_current(project_dir, target):
        manifest = prepare_manifest(project_dir, target)
        # dbt leaves the file alone when a file was touched but its content did not change:
        # mark it checked, or every later command would parse again
        os.utime(manifest)
        return manifest
    return dbt_project(target, project_dir).manifest_path


class ReconDbtTranslator(DagsterDbtTranslator):
    """All dbt nodes in the `reconciliation` group with named owners.

    Keys, kinds and upstreams need no override in dagster-dbt 0.29: models get
    `[<schema>, <name>]` (e.g. `marts/fct_charge_reconciliation`), kinds are `dbt` plus the
    manifest's adapter (`duckdb` or `snowflake`), and a source's `meta.dagster.asset_key` makes
    `raw/stripe_charges` and `raw/ledger_entries` (the loader's assets) the upstream deps.
    """

    def __init__(self, owners: Sequence[str] = DEFAULT_OWNERS) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
        self._owners = list(owners)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GROUP_NAME

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> Sequence[str] | None:
        return self._owners

    def get_asset_check_spec(
        self,
        asset_spec: dg.AssetSpec,
        manifest: Mapping[str, Any],
        unique_id: str,
        project: DbtProject | None,
    ) -> dg.AssetCheckSpec | None:
        """dagster-dbt's check, described: what the dbt test asserts, on which column."""
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None or spec.description:
            return spec
        test = manifest.get("nodes", {}).get(unique_id, {})
        meta = test.get("test_metadata") or {}
        what = meta.get("name") or "singular test"
        column = test.get("column_name")
        severity = (test.get("config") or {}).get("severity", "error").upper()
        text = test.get("description") or (
            f"dbt test `{what}`"
            + (f" on `{column}`" if column else "")
            + f", severity {severity}: "
            "a failure fails the run and dbt skips every model downstream of it."
        )
        return spec._replace(description=text)

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        """The model's YAML description, as written: dagster-dbt's default appends the raw SQL
        (Jinja included), which the catalog then shows as the description."""
        text = (dbt_resource_props.get("description") or "").strip()
        kind = dbt_resource_props.get("resource_type", "model")
        return text or f"dbt {kind} {dbt_resource_props.get('name', '')}"


def build_dbt_assets(
    *,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    target: str = "local",
    tolerance_days: int = 3,
    project_dir: Path = DBT_PROJECT_DIR,
    dbt_env: Mapping[str, str] | None = None,
    owners: Sequence[str] = DEFAULT_OWNERS,
    select: str = "fqn:*",
    work_dir: Path | None = None,
    keep_runs: int = 5,
) -> dg.AssetsDefinition:
    """The dbt models of `project_dir` as one multi-asset, partitioned by `partitions_def`
    (`recon_assets.defs.partitions.daily_partitions(start_date)`), run as one `dbt build` per
    Dagster run whatever the number of partitions.

    `dbt_env` holds variables the dbt profile reads, set in the dbt process only (through
    `recon-dbt`; for `local`: `{"RECON_DUCKDB_PATH": str(settings.duckdb_path)}` so dbt reads the
    file the loader wrote). The run's window reaches the models the same way
    (`RECON_DBT_RUN_VARS`), not as `--vars`, which would force a full parse on every run. The
    resource key is `dbt` (see `dbt_resource`).

    dbt's target folder is `work_dir/target-<target>` (default: under the system's temp folder),
    never the code folder, and it stays the same from run to run so that dbt's partial parse
    (`partial_parse.msgpack`) is reused: only changed files are parsed again. Runs that write are
    one at a time (the `recon_writer` pool), so they never share it at once. Each run's logs go
    to `work_dir/runs/<run id>`, of which the newest `keep_runs` are kept.
    """
    project = dbt_project(target, project_dir)
    if using_dagster_dev():
        # What DbtProject.prepare_if_dev() does, but with our dbt executable (it uses PATH's).
        prepare_manifest(project_dir, target)
    if not project.manifest_path.exists():
        raise FileNotFoundError(
            f"no dbt manifest at {project.manifest_path}: run "
            f"recon_assets.defs.dbt_assets.prepare_manifest(target={target!r}) first"
        )
    launcher_env = env_args(dict(dbt_env or {}))
    memory_limit = (dbt_env or {}).get("RECON_DUCKDB_MEMORY_LIMIT", DUCKDB_MEMORY_LIMIT)

    @dbt_assets(
        manifest=project.manifest_path,
        select=select,
        name=DBT_ASSETS_NAME,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=ReconDbtTranslator(owners),
        project=project,
        pool=WRITER_POOL,
    )
    def recon_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
        """Re-state the run's US-Eastern days: the partition (range) window becomes the dbt vars."""
        window = context.partition_time_window
        dbt_vars = build_dbt_vars(
            window.start, window.end, tolerance_days, run_id=context.run.run_id
        )
        context.log.info(f"dbt build for {dbt_vars}")
        work = work_dir or Path(tempfile.gettempdir()) / "recon-dbt"
        target_path = stable_target_path(work, target, project)
        logs = work / "runs" / context.run.run_id
        prune_run_folders(work / "runs", keep=keep_runs - 1)
        invocation = dbt.cli(
            [
                *launcher_env,
                *env_args({RUN_VARS_ENV: json.dumps(dbt_vars)}),
                "build",
                "--log-path",
                str(logs),
                # the per-run log ops read: what ran, its result, warnings and errors, as text.
                # dbt's default for the file is every SQL statement at debug, as JSON (the
                # format Dagster reads from stdout): 4 MB and ~3,200 lines a nightly, about
                # a second of dbt's step (docs/benchmarks.md). A failing model's SQL is in
                # the target folder's `run/` all the same.
                *DBT_RUN_LOG_ARGS,
            ],
            context=context,
            target_path=target_path,
        )
        try:
            yield from invocation.stream()
        except DagsterDbtCliRuntimeError as exc:
            # imported here: the code location's load does not import duckdb
            from recon_assets.warehouse.duckdb_loader import out_of_memory_hint

            hint = out_of_memory_hint(str(exc), memory_limit) if target == "local" else None
            if hint is None:
                raise
            raise dg.Failure(description=f"{hint}\n\n{exc}") from exc

    return recon_dbt_models


def stable_target_path(work: Path, target: str, project: DbtProject) -> Path:
    """dbt's target folder for `target` under `work`, the same for every run.

    A new folder starts from the prepared manifest's `partial_parse.msgpack`, so even the first
    run parses only what differs from it (dbt checks file hashes, the profile and the vars and
    parses again whatever changed).
    """
    path = work / f"target-{target}"
    seed = project.project_dir / project.target_path / "partial_parse.msgpack"
    if not (path / "partial_parse.msgpack").exists() and seed.exists():
        path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(seed, path / "partial_parse.msgpack")
    return path
