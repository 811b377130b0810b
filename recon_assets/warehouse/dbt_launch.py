"""`recon-dbt`: dbt itself, with environment variables given on its own command line.

dagster-dbt starts dbt as a subprocess with a copy of the parent's `os.environ` and offers no way
to add to it. Two kinds of values must reach dbt's `env_var()` all the same:

- per deployment: which DuckDB file the loader wrote (`RECON_DUCKDB_PATH`, the profile reads it);
- per run: the run's reporting window and run id (`RECON_DBT_RUN_VARS`, see
  `recon_assets.warehouse.dbt_vars` and the `run_var` macro).

Passing the per-run values as `--vars` would change dbt's parse hash on every run, so every run
would throw away its partial parse and parse the whole project again; setting them in the Dagster
process's `os.environ` would leak them into everything else that process starts. So the caller
puts `--recon-env NAME=VALUE` pairs among dbt's arguments; this launcher removes them, sets them
in its own process (which is dbt's) and hands the rest to dbt's own command line.

    recon-dbt --recon-env RECON_DUCKDB_PATH=/data/warehouse.duckdb build --select marts

dbt then runs in the DuckDB file's folder and opens it by its bare name (`open_warehouse_here`):
the profile's connection values are part of dbt's parse hash, so with the full path every new
warehouse (a new home, a fresh clone, every test) threw away the prepared partial parse and
parsed the whole project again (5.5 s here); by its name they are the same for each of them.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence

ENV_FLAG = "--recon-env"
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def env_args(env: Mapping[str, str]) -> list[str]:
    """The launcher arguments that set `env` in the dbt process."""
    out: list[str] = []
    for name, value in env.items():
        if not _NAME.match(name):
            raise ValueError(f"not an environment variable name: {name!r}")
        out += [ENV_FLAG, f"{name}={value}"]
    return out


def split_env_args(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """`(env, dbt_args)`: the `--recon-env NAME=VALUE` pairs taken out of `argv`, in order."""
    env: dict[str, str] = {}
    rest: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg != ENV_FLAG:
            rest.append(arg)
            continue
        pair = next(it, None)
        name, sep, value = (pair or "").partition("=")
        if not sep or not _NAME.match(name):
            raise SystemExit(f"recon-dbt: {ENV_FLAG} needs NAME=VALUE, got {pair!r}")
        env[name] = value
    return env, rest


WAREHOUSE_ENV = "RECON_DUCKDB_PATH"
_PATH_ENV = ("DBT_PROJECT_DIR", "DBT_PROFILES_DIR", "DBT_LOG_PATH")
"""dbt's settings read relative to its working directory (its target path is relative to the
project, and stays so)."""
_PATH_FLAGS = ("--project-dir", "--profiles-dir", "--log-path")


def open_warehouse_here(
    env: Mapping[str, str], dbt_args: Sequence[str], cwd: str, environ: Mapping[str, str]
) -> tuple[dict[str, str], list[str], str]:
    """`(env, dbt_args, cwd)` for dbt to open the DuckDB warehouse by its file name from its
    folder: the same profile, so the same parse hash, for every warehouse of that name.

    The paths dbt would have read relative to `cwd` (in `env`, `environ` or `dbt_args`) are made
    absolute first. Without a warehouse path (a Snowflake target, the profile's default) nothing
    changes."""
    path = env.get(WAREHOUSE_ENV)
    if not path:
        return dict(env), list(dbt_args), cwd
    full = os.path.join(cwd, path)
    out = {**env, WAREHOUSE_ENV: os.path.basename(full)}
    for name in _PATH_ENV:
        value = env.get(name, environ.get(name))
        if value and not os.path.isabs(value):
            out[name] = os.path.join(cwd, value)
    args = list(dbt_args)
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag in _PATH_FLAGS and eq and not os.path.isabs(value):
            args[i] = f"{flag}={os.path.join(cwd, value)}"
        elif arg in _PATH_FLAGS and i + 1 < len(args) and not os.path.isabs(args[i + 1]):
            args[i + 1] = os.path.join(cwd, args[i + 1])
    given = "DBT_PROJECT_DIR" in out or environ.get("DBT_PROJECT_DIR")
    if not given and "--project-dir" not in " ".join(args):
        out["DBT_PROJECT_DIR"] = cwd  # where dbt would have looked for the project
    return out, args, os.path.dirname(full)


def main(argv: Sequence[str] | None = None) -> None:
    env, rest = split_env_args(sys.argv[1:] if argv is None else argv)
    env, rest, cwd = open_warehouse_here(env, rest, os.getcwd(), os.environ)
    os.chdir(cwd)
    os.environ.update(env)  # this process is dbt's: like `env NAME=VALUE dbt ...`
    try:
        from dbt.cli.main import cli  # after the environment is set: dbt reads it on import
    except ImportError as exc:  # Dagster's own environment: dbt lives in its own (.venv-dbt)
        raise SystemExit(
            f"recon-dbt: dbt-core is not installed in {sys.prefix} ({exc}). dbt has its own "
            "environment: `bash .ci/install` makes .venv-dbt, whose bin/recon-dbt Dagster runs."
        ) from exc

    sys.argv = ["dbt", *rest]
    sys.exit(cli())


if __name__ == "__main__":
    main()
