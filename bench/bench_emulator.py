"""How fast the Stripe emulator serves charges, so we know it is never a benchmark's bottleneck.

The project's client must reach 15 k charges/s end to end on 2 cores with the emulator on the same
machine, so the emulator must serve well over 30 k/s on one core. This starts the emulator as its
own process (its own GIL, as in the demo), pages through ~200 k charges over plain HTTP with
`starting_after` cursors, reading bodies but not parsing them, and reports the median of 3 runs,
the emulator's CPU time (charges per emulator-CPU-second is the one-core capacity) and its peak RSS.

    .venv/bin/python bench/bench_emulator.py [--charges 200000] [--runs 3]
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import requests

from recon_assets.config import LOCAL_STRIPE_API_KEY
from recon_assets.timewindows import day_window

ROOT = Path(__file__).resolve().parents[1]
START, END = date(2024, 1, 1), date(2024, 2, 1)
HEADERS = {"Authorization": f"Bearer {LOCAL_STRIPE_API_KEY}"}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux), which is what 'on one core' costs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def last_id(body: bytes) -> str:
    i = body.rfind(b'{"id":"ch_')
    return body[i + 7 : i + 34].decode()


def page_httpclient(base_url: str, window: tuple[int, int], n: int) -> int:
    """Page newest-first through `window` until n charges; returns charges received."""
    u = urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    got, after = 0, ""
    base = f"/v1/charges?limit=100&created[gte]={window[0]}&created[lt]={window[1]}"
    while got < n:
        conn.request("GET", base + (f"&starting_after={after}" if after else ""), headers=HEADERS)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {body[:200]!r}")
        got += body.count(b'{"id":"ch_')
        if not body.endswith(b'"has_more":true,"url":"/v1/charges"}'):
            break
        after = last_id(body)
    conn.close()
    return got


def page_requests(base_url: str, window: tuple[int, int], n: int) -> int:
    s = requests.Session()
    got, params = 0, {"limit": 100, "created[gte]": window[0], "created[lt]": window[1]}
    while got < n:
        r = s.get(base_url + "/v1/charges", params=params, headers=HEADERS, timeout=30)
        r.raise_for_status()
        body = r.content
        got += body.count(b'{"id":"ch_')
        if not body.endswith(b'"has_more":true,"url":"/v1/charges"}'):
            break
        params["starting_after"] = last_id(body)
    s.close()
    return got


def windows(parts: int) -> list[tuple[int, int]]:
    """`parts` disjoint windows of the served month (one per concurrent client)."""
    lo, hi = day_window(START).start, day_window(END).start
    step = (hi - lo) // parts
    return [(lo + i * step, lo + (i + 1) * step) for i in range(parts)]


def run_case(
    base_url: str, pid: int, fn: Callable[[str, tuple[int, int], int], int], conns: int, n: int
) -> tuple[float, float]:
    """(charges/s wall, charges per emulator CPU second) for n charges over `conns` connections."""
    results = [0] * conns
    wins = windows(conns)

    def work(i: int) -> None:
        results[i] = fn(base_url, wins[i], n // conns)

    cpu0, t0 = proc_cpu_seconds(pid), time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - t0, proc_cpu_seconds(pid) - cpu0
    total = sum(results)
    return total / wall, total / max(cpu, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--charges", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--charges-per-day", type=int, default=15_000)
    args = ap.parse_args()

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "recon_assets.local.stripe_emulator", "--port", "0"]
    cmd += ["--warm-days", "0"]  # charges only: nothing to derive before serving
    cmd += ["--charges-per-day", str(args.charges_per_day)]
    cmd += ["--start-date", START.isoformat(), "--end-date", END.isoformat()]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        cases = [
            ("http.client, 1 connection", page_httpclient, 1),
            ("requests.Session, 1 connection", page_requests, 1),
            ("http.client, 4 connections", page_httpclient, 4),
        ]
        rows = []
        for name, fn, conns in cases:
            runs = [run_case(base_url, proc.pid, fn, conns, args.charges) for _ in range(args.runs)]
            rows.append(
                (
                    name,
                    statistics.median(r[0] for r in runs),
                    statistics.median(r[1] for r in runs),
                    min(r[0] for r in runs),
                    max(r[0] for r in runs),
                )
            )
        peak = proc_peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    import stripe  # only for the version line

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; {platform.platform()}")
    print(
        f"python {platform.python_version()}, requests {requests.__version__}, "
        f"stripe {stripe.VERSION}; emulator {args.charges_per_day}/day, "
        f"{args.charges} charges per run, median of {args.runs}"
    )
    print()
    print(f"| {'client':<32} | {'charges/s':>10} | {'per emulator CPU-s':>18} | {'min..max':>17} |")
    print(f"|{'-' * 34}|{'-' * 12}|{'-' * 20}|{'-' * 19}|")
    for name, rate, per_cpu, lo, hi in rows:
        print(f"| {name:<32} | {rate:>10,.0f} | {per_cpu:>18,.0f} | {lo:>7,.0f}..{hi:<7,.0f} |")
    print()
    print(f"emulator peak RSS: {peak:.0f} MB")


if __name__ == "__main__":
    main()
