"""How long loading the code location takes (what every run worker, the daemon and the webserver
pay before anything runs), optionally side by side with another checkout of the project.

Each measurement is a fresh interpreter importing `recon_assets.definitions` and building every
job (`defs().resolve_all_job_defs()`), in local mode, timed from inside the process; runs of the
checkouts are interleaved so machine noise hits them alike.

    .venv/bin/python bench/bench_location_load.py --runs 5
    git worktree add /tmp/old <rev> && .venv/bin/python bench/bench_location_load.py --against /tmp/old
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
    "print(time.perf_counter() - t)\n"
)


def load_once(checkout: Path, home: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "DAGSTER_"))}
    env = production_env({**env, "PYTHONPATH": str(checkout), "RECON_HOME": str(home)})
    out = subprocess.run(
        [sys.executable, "-c", CODE], env=env, cwd=checkout, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"loading {checkout} failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--against", type=Path, help="another checkout (e.g. a git worktree)")
    args = ap.parse_args()
    checkouts = {
        "this checkout": ROOT,
        **({str(args.against): args.against} if args.against else {}),
    }
    times: dict[str, list[float]] = {k: [] for k in checkouts}
    with tempfile.TemporaryDirectory() as home:
        for path in checkouts.values():  # warm the file cache and .pyc files, untimed
            load_once(path, Path(home))
        for _ in range(args.runs):
            for name, path in checkouts.items():
                times[name].append(load_once(path, Path(home)))
    for name, xs in times.items():
        print(
            f"{name}: median {statistics.median(xs):.2f} s ({min(xs):.2f}..{max(xs):.2f}), n={len(xs)}"
        )
    if args.against:
        ratio = statistics.median(times[str(args.against)]) / statistics.median(
            times["this checkout"]
        )
        print(f"ratio {args.against} / this checkout: {ratio:.2f}x")


if __name__ == "__main__":
    main()
