"""A backfill launched from the UI: how long until its run starts, its first step starts, and it
ends (issue 36).

For each variant of the instance's `dagster.yaml`, `--runs` times, interleaved: a fresh
RECON_HOME, `recon dev` (webserver, daemon, code server) on the local embedded default, and once
the code location is loaded, a backfill of the last 3 complete days of every partitioned asset
launched over the webserver's GraphQL API exactly as the UI's "Materialize" dialog launches one
(`launchPartitionBackfill`). The bench polls the API every 0.25 s and reports, from the launch:

- `run created`: the backfill daemon has turned the backfill into its (single) run;
- `run started`: the run queue has dequeued it and its worker has started (the run's
  `startTime`);
- `first step`: the worker has loaded the code location and begun the first step;
- `backfill done`: the backfill's status is final.

Variants: `landed` is the `dagster.yaml` of `--against` (a checkout, default: this one at
HEAD via `git show`), `this` is this checkout's `recon_assets/dagster.yaml`.

    .venv/bin/python bench/bench_ui_launch.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from bench_nightly import machine  # noqa: E402

ROOT = BENCH.parent
RECON = Path(sys.executable).with_name("recon")
EASTERN = "America/New_York"

LOADED = """
{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }
"""
ASSETS = "{ assetNodes { assetKey { path } isMaterializable isPartitioned } }"
LAUNCH = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }
"""
BACKFILL = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status } } }
"""
RUNS = """
query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) { ... on Runs {
  results { runId status startTime endTime stepStats { stepKey startTime } } } } }
"""
FINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    req = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = json.loads(resp.read())
    if "errors" in body:
        raise RuntimeError(body["errors"])
    return body["data"]


def one_launch(instance_yaml: str, days: list[str], start_date: str) -> dict[str, float]:
    """One fresh `recon dev` and one UI backfill; the seconds from the launch to each mark."""
    base = Path(tempfile.mkdtemp(prefix="recon-ui-bench-"))
    base.chmod(0o755)  # the embedded Postgres runs as `postgres` and must traverse it
    home = base / "recon"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text(instance_yaml)
    port = free_port()
    env = {
        **os.environ,
        "RECON_HOME": str(home),
        "RECON_START_DATE": start_date,
        "RECON_EMULATOR_CHARGES_PER_DAY": "300",
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    env.pop("DAGSTER_HOME", None)
    url = f"http://127.0.0.1:{port}"
    with (home.parent / "dev.log").open("wb") as log:
        dev = subprocess.Popen(
            [str(RECON), "dev", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while True:
                if dev.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((home.parent / "dev.log").read_text()[-3000:])
                try:
                    entries = graphql(url, LOADED)["workspaceOrError"]["locationEntries"]
                    if entries and entries[0]["loadStatus"] == "LOADED":
                        break
                except OSError:
                    pass
                time.sleep(1)
            nodes = graphql(url, ASSETS)["assetNodes"]
            selection = [{"path": n["assetKey"]["path"]} for n in nodes
                         if n["isMaterializable"] and n["isPartitioned"]]  # fmt: skip
            params = {"assetSelection": selection, "partitionNames": days,
                      "fromFailure": False, "tags": []}  # fmt: skip
            launched_at = time.time()
            got = graphql(url, LAUNCH, {"params": params})["launchPartitionBackfill"]
            if got["__typename"] != "LaunchBackfillSuccess":
                raise RuntimeError(got)
            backfill_id = got["backfillId"]
            marks: dict[str, float] = {}
            tags = [{"key": "dagster/backfill", "value": backfill_id}]
            while time.time() - launched_at < 900:
                runs = graphql(url, RUNS, {"tags": tags})["runsOrError"]["results"]
                if runs and "run created" not in marks:
                    marks["run created"] = time.time() - launched_at
                for r in runs[:1]:
                    if r["startTime"] and "run started" not in marks:
                        marks["run started"] = r["startTime"] - launched_at
                    steps = [s["startTime"] for s in r["stepStats"] if s["startTime"]]
                    if steps and "first step" not in marks:
                        marks["first step"] = min(steps) - launched_at
                    if r["endTime"]:
                        marks["run ended"] = r["endTime"] - launched_at
                status = graphql(url, BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
                if status["status"] in FINAL and "run ended" in marks:
                    marks["backfill done"] = time.time() - launched_at
                    marks["status"] = float(status["status"] in ("COMPLETED_SUCCESS", "COMPLETED"))
                    return marks
                time.sleep(0.25)
            raise RuntimeError(f"backfill not done after 900 s: {marks}")
        finally:
            dev.send_signal(signal.SIGTERM)
            try:
                dev.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(dev.pid, signal.SIGKILL)
            subprocess.run([str(RECON), "stop"], env=env, capture_output=True, check=False)


def landed_yaml(against: str | None) -> str:
    if against:
        return (Path(against) / "recon_assets" / "dagster.yaml").read_text()
    return subprocess.run(
        ["git", "show", "HEAD:recon_assets/dagster.yaml"], cwd=ROOT, capture_output=True,
        text=True, check=True,
    ).stdout  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--against", help="a checkout whose dagster.yaml is the 'landed' variant")
    args = ap.parse_args()
    print(machine())
    from zoneinfo import ZoneInfo

    today = datetime.now(ZoneInfo(EASTERN)).date()
    days = [(today - timedelta(days=i)).isoformat() for i in (3, 2, 1)]
    start = (today - timedelta(days=5)).isoformat()
    variants = {
        "landed": landed_yaml(args.against),
        "this": (ROOT / "recon_assets" / "dagster.yaml").read_text(),
    }
    if variants["landed"] == variants["this"]:
        variants.pop("landed")
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for i in range(args.runs):
        for name, text in variants.items():
            marks = one_launch(text, days, start)
            results[name].append(marks)
            shown = ", ".join(f"{k} {v:.1f} s" for k, v in marks.items() if k != "status")
            print(f"  run {i + 1}, {name}: {shown}" + ("" if marks["status"] else " (FAILED)"))
    keys = ["run created", "run started", "first step", "run ended", "backfill done"]
    print(f"\nA 3-day UI backfill ({days[0]}..{days[-1]}), seconds from the launch, "
          f"medians of {args.runs} runs (min..max):\n")  # fmt: skip
    print("| dagster.yaml | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for name, runs in results.items():
        cells = []
        for k in keys:
            xs = [r[k] for r in runs if k in r]
            cells.append(f"{statistics.median(xs):.1f} ({min(xs):.1f}..{max(xs):.1f})"
                         if xs else "-")  # fmt: skip
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
