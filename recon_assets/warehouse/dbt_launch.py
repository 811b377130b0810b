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


def main(argv: Sequence[str] | None = None) -> None:
    env, rest = split_env_args(sys.argv[1:] if argv is None else argv)
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
