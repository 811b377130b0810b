"""How long loading the code location takes (what every run worker, the daemon and the webserver
pay before anything runs), optionally side by side with another checkout of the project.

Each measurement is a fresh interpreter importing `recon_assets.definitions` and building every
job (`defs().resolve_all_job_defs()`), in local mode, timed from inside the process; runs of the
checkouts are interleaved so machine noise hits them alike.

    .venv/bin/python bench/bench_location_load.py --runs 5
    git worktree add /tmp/old <rev> && .venv/bin/python bench/bench_location_load.py --against /tmp/old

`--against-python` loads the other checkout with another interpreter, i.e. in its own
environment: how the install changed matters too (since dbt-core moved to `.venv-dbt`, it is no
longer imported with dagster-dbt), and an older checkout's install had dbt-core beside Dagster:

    cd /tmp/old && uv venv .venv && uv pip install --python .venv/bin/python -e '.[dev]' \
      && .venv/bin/recon prepare
    .venv/bin/python bench/bench_location_load.py --against /tmp/old \
      --against-python /tmp/old/.venv/bin/python [--no-bytecode]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_env import production_env

ROOT = Path(__file__).resolve().parents[1]
CODE = (
    "import time; t = time.perf_counter()\n"
    "from recon_assets.definitions import defs\n"
    "defs().resolve_all_job_defs()\n"
    "import resource\n"
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
)


def load_once(
    checkout: Path, home: Path, python: str = sys.executable, *, bytecode: bool = True
) -> tuple[float, float]:
    """Seconds to load the location and the process's peak RSS (MB) once it has loaded.

    `bytecode=False`: as an environment without .pyc files under PYTHONDONTWRITEBYTECODE (CI and
    Docker images often set it): an empty pycache prefix, so every import compiles from source.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "DAGSTER_"))}
    env = production_env({**env, "PYTHONPATH": str(checkout), "RECON_HOME": str(home)})
    if not bytecode:
        env |= {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": tempfile.mkdtemp(dir=home)}
    out = subprocess.run(
        [python, "-c", CODE], env=env, cwd=checkout, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"loading {checkout} failed:\n{out.stderr[-2000:]}")
    secs, mb = out.stdout.strip().splitlines()[-1].split()
    return float(secs), float(mb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--against", type=Path, help="another checkout (e.g. a git worktree)")
    ap.add_argument(
        "--against-python", default=sys.executable, help="the interpreter (environment) for it"
    )
    ap.add_argument(
        "--no-bytecode", action="store_true", help="every import compiled from source (no .pyc)"
    )
    args = ap.parse_args()
    checkouts = {
        "this checkout": (ROOT, sys.executable),
        **({str(args.against): (args.against, args.against_python)} if args.against else {}),
    }
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in checkouts}
    with tempfile.TemporaryDirectory() as home:
        for path, python in checkouts.values():  # warm the file cache and .pyc files, untimed
            load_once(path, Path(home), python)
        for _ in range(args.runs):
            for name, (path, python) in checkouts.items():
                load = load_once(path, Path(home), python, bytecode=not args.no_bytecode)
                times[name].append(load)
    for name, (_, python) in checkouts.items():
        print(f"{name}: {python}")
    for name, xs in times.items():
        secs, mbs = [t for t, _ in xs], [m for _, m in xs]
        print(
            f"{name}: median {statistics.median(secs):.2f} s ({min(secs):.2f}..{max(secs):.2f}),"
            f" peak RSS {statistics.median(mbs):.0f} MB, n={len(xs)}"
        )
    if args.against:
        ratio = statistics.median(t for t, _ in times[str(args.against)]) / statistics.median(
            t for t, _ in times["this checkout"]
        )
        print(f"ratio {args.against} / this checkout: {ratio:.2f}x")


if __name__ == "__main__":
    main()
