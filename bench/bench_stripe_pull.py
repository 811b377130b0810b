"""Throughput and memory of the Stripe charges pull (issue 2 §6), with ratios measured in one run.

The machine is shared and noisy, so absolute rates move between runs; what this prints side by
side in ONE run (medians, interleaved runs) is what to compare. Four measurements:

(a) processing on one core: real emulator pages are captured once to a file, then replayed
    through `pull_charges` itself (same threads, queue, validation, drift and window checks,
    column building, Parquet writer, manifests) by a client whose `list_page` reads a captured
    body and hands it to the client's own `decode_charge_page` (or, to compare, to what the
    client did before). No HTTP.
    The process is pinned to one CPU. Reported with and without the body parse (its thread CPU
    time is measured and subtracted). (a') replays the same bodies the way the client worked
    before it kept bodies from the SDK (`stripe.StripeResponse`'s json parse into OrderedDicts
    plus the SDK's debug formatting of each body, as `raw_request` does), in the same run.
(b) end to end: `pull_charges` through the stripe SDK over HTTP from the emulator running as a
    SEPARATE process (`python -m recon_assets.local.stripe_emulator`, 100 k charges/day), both on
    this machine. The client's rate limiter is set to 10,000 requests/s for the benchmark (it is
    never the limit: 1 M charges are 10 k requests); production keeps Stripe's 25-100/s.
    Run with 4 fetch threads (the old default) and with 2 (the local default since, prod: 8), each
    next to "SDK fetch only": the same windows and threads through the SDK with no processing at
    all, which is the ceiling of (b) for a one-process client.
(c) peak RSS of the client process: every measurement runs in a fresh child process that reports
    its own `ru_maxrss`, for ~100 k (one day) and ~1 M charges (ten days).
(d) the emulator's own serving rate (4 connections of plain http.client, bodies read but not
    parsed; `bench_emulator.page_httpclient`) and its CPU per charge during (b), to show it is not
    what limits (b).

The ~100 k cases run interleaved, so noise hits them alike; the table gives medians, min..max,
client CPU per charge and peak RSS, then the ratios and which targets are met.

    .venv/bin/python bench/bench_stripe_pull.py            # ~6 min: 100 k x3, 1 M x2
    .venv/bin/python bench/bench_stripe_pull.py --quick    # ~1 min: 100 k x1, 2 days x1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from bench_emulator import cpu_model, page_httpclient, proc_cpu_seconds  # noqa: E402
from bench_env import production_env  # noqa: E402

CHARGES_PER_DAY = 100_000
EMU_START, EMU_END = date(2024, 1, 1), date(2024, 1, 12)
FROZEN_NOW = 1_767_225_600  # 2026-01-01: every late change has landed, pages are reproducible
DAY_100K = date(2024, 1, 3)  # 103,436 charges at 100 k/day with the default seed
CLIENT_RATE_PER_S = 10_000.0
WINDOWS_PER_DAY = 8
CONCURRENCY = 4


def days_from(first: date, n: int) -> list[date]:
    return [first + timedelta(i) for i in range(n)]


def records(page: Any) -> int:
    """A page's record count, without parsing a page the client decoded as charges."""
    return len(page.records) if page.records is not None else len(page.items)


# --------------------------------------------------------------------------------------------
# child side: one measurement per fresh process, so ru_maxrss is that measurement's peak
# --------------------------------------------------------------------------------------------


def _rusage() -> dict[str, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": ru.ru_utime + ru.ru_stime, "maxrss_mb": ru.ru_maxrss / 1024}


def _timed_pull(
    client: Any, days: Sequence[date], run_id: str, concurrency: int
) -> tuple[Any, dict[str, float]]:
    """One `pull_charges` into a throwaway local stage: wall, CPU and peak RSS around it."""
    from recon_assets.stage.store import LocalStageStore
    from recon_assets.stripe.pull import pull_charges

    with tempfile.TemporaryDirectory(prefix="bench-stage-") as tmp:
        before = _rusage()
        t0 = time.perf_counter()
        result = pull_charges(
            client,
            LocalStageStore(Path(tmp)),
            days,
            run_id,
            windows_per_day=WINDOWS_PER_DAY,
            concurrency=concurrency,
        )
        wall = time.perf_counter() - t0
        after = _rusage()
    assert result.fetched == result.staged and result.quarantined == 0
    return result, {
        "charges": result.fetched,
        "wall_s": wall,
        "cpu_s": after["cpu_s"] - before["cpu_s"],
        "maxrss_mb": after["maxrss_mb"],
        "rss_before_mb": before["maxrss_mb"],
        "staged_mb": result.staged_bytes / 1e6,
    }


def _client(base_url: str) -> Any:
    from recon_assets.config import LOCAL_STRIPE_API_KEY
    from recon_assets.stripe.client import ChargesClient
    from recon_assets.stripe.ratelimit import RateLimiter

    return ChargesClient(
        LOCAL_STRIPE_API_KEY,
        api_base=base_url,
        rate_limiter=RateLimiter(CLIENT_RATE_PER_S),
        seed=1,
    )


def child_capture(base_url: str, days: Sequence[date], out: Path) -> dict[str, Any]:
    """Fetch every page `pull_charges` would fetch and store the bodies, keyed by request."""
    from recon_assets.stripe.pull import iter_window
    from recon_assets.timewindows import day_window, split_window

    client = _client(base_url)
    index: dict[str, list[int]] = {}
    n = 0
    with open(out / "bodies.bin", "wb") as fh:
        for d in days:
            for w in split_window(day_window(d), WINDOWS_PER_DAY):
                cursor = ""
                for page in iter_window(client, w):
                    index[f"{w.start}:{w.end}:{cursor}"] = [fh.tell(), len(page.content)]
                    fh.write(page.content)
                    n += records(page)
                    cursor = page.last_id or ""
    (out / "index.json").write_text(json.dumps(index))
    return {"charges": n, "pages": len(index)}


def child_replay(capture: Path, days: Sequence[date], parse: str) -> dict[str, Any]:
    """(a): `pull_charges` fed captured bodies, pinned to one CPU.

    `parse` is "ours" (the client's `decode_charge_page`: a clean page decoded straight into
    validated charges), "orjson" (the client before that: `parse_response`, orjson where it reads
    a body as json would, then strict validation of the dicts in the pull), "json" (one plain
    `json.loads`, before orjson) or "sdk" (what `raw_request` did with a 200 body before the
    client kept bodies from the SDK: decode, `json.loads` into OrderedDicts, and `log_debug`
    formatting the whole body), so they are compared in one run. "ours" does the validation
    inside its parse, the others after it: compare them on "incl. body parse".
    """
    import stripe
    from stripe._util import log_debug

    from recon_assets.stripe.client import (
        ChargesClient,
        Page,
        Response,
        decode_charge_page,
        page_from_response,
        parse_response,
    )
    from recon_assets.stripe.ratelimit import RateLimiter
    from recon_assets.timewindows import Window

    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    index = {k: tuple(v) for k, v in json.loads((capture / "index.json").read_text()).items()}
    fd = os.open(capture / "bodies.bin", os.O_RDONLY)
    parse_cpu = [0.0]
    lock = threading.Lock()

    class ReplayClient(ChargesClient):
        """`list_page` from captured bodies: the body parse, then the client's code."""

        def list_page(self, window: Window, starting_after: str | None = None) -> Page:
            self.limiter.acquire()
            self.counters.add(requests=1)
            off, size = index[f"{window.start}:{window.end}:{starting_after or ''}"]
            raw = os.pread(fd, size, off)
            t0 = time.thread_time()
            if parse == "sdk":
                text = raw.decode("utf-8")
                log_debug("API response body", body=text)
                page = page_from_response(Response(raw, stripe.StripeResponse(text, 200, {}).data))
            elif parse == "json":
                page = page_from_response(Response(raw, json.loads(raw.decode("utf-8"))))
            elif parse == "orjson":
                page = page_from_response(parse_response(raw))
            else:
                page = decode_charge_page(raw)
            dt = time.thread_time() - t0
            with lock:
                parse_cpu[0] += dt
            self.counters.add(bytes_received=len(raw))
            return page

    client = ReplayClient("sk_test_replay", rate_limiter=RateLimiter(1e9), seed=1)  # no pacing
    _, measured = _timed_pull(client, days, "bench-replay", CONCURRENCY)
    os.close(fd)
    return {**measured, "parse_cpu_s": parse_cpu[0]}


def child_e2e(base_url: str, days: Sequence[date], concurrency: int) -> dict[str, Any]:
    """(b)/(c): the real pull over HTTP from the emulator process."""

    result, measured = _timed_pull(_client(base_url), days, "bench-e2e", concurrency)
    return {
        **measured,
        "requests": result.counters["requests"],
        "retries": result.counters["retries"],
    }


def child_fetch(base_url: str, days: Sequence[date], concurrency: int) -> dict[str, Any]:
    """The SDK alone: the same windows and threads as the pull, pages fetched and dropped.

    The ceiling of (b) for this process design: HTTP through the SDK and requests, and the
    client's one parse of each body, with none of the pull's processing.
    """
    from concurrent.futures import ThreadPoolExecutor

    from recon_assets.stripe.pull import iter_window
    from recon_assets.timewindows import day_window, split_window

    client = _client(base_url)
    jobs = [w for d in days for w in split_window(day_window(d), WINDOWS_PER_DAY)]
    got = [0] * len(jobs)

    def run(i: int) -> None:
        for page in iter_window(client, jobs[i]):
            got[i] += records(page)

    before = _rusage()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as ex:
        list(ex.map(run, range(len(jobs))))
    wall = time.perf_counter() - t0
    after = _rusage()
    return {
        "charges": sum(got),
        "wall_s": wall,
        "cpu_s": after["cpu_s"] - before["cpu_s"],
        "maxrss_mb": after["maxrss_mb"],
    }


def child_main(spec: dict[str, Any]) -> None:
    days = [date.fromisoformat(d) for d in spec["days"]]
    if spec["mode"] == "capture":
        out = child_capture(spec["base_url"], days, Path(spec["dir"]))
    elif spec["mode"] == "replay":
        out = child_replay(Path(spec["dir"]), days, spec.get("parse", "ours"))
    elif spec["mode"] == "fetch":
        out = child_fetch(spec["base_url"], days, spec.get("concurrency", CONCURRENCY))
    else:
        out = child_e2e(spec["base_url"], days, spec.get("concurrency", CONCURRENCY))
    print(json.dumps(out))


# --------------------------------------------------------------------------------------------
# parent side: the emulator process, the schedule of runs, the table
# --------------------------------------------------------------------------------------------


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    env = production_env({**os.environ, "PYTHONPATH": str(ROOT)})
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child {spec['mode']} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class Emulator:
    """The emulator as its own process (its own GIL), as in the demo; always stopped.

    Frozen at FROZEN_NOW over [EMU_START, EMU_END); `extra` adds command-line options (a server
    rate limit, say)."""

    def __init__(self, charges_per_day: int = CHARGES_PER_DAY, extra: Sequence[str] = ()) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "recon_assets.local.stripe_emulator", "--port", "0"]
        cmd += ["--warm-days", "0"]  # charges only: nothing to derive before serving
        cmd += ["--charges-per-day", str(charges_per_day), "--now", str(FROZEN_NOW)]
        cmd += ["--start-date", EMU_START.isoformat(), "--end-date", EMU_END.isoformat(), *extra]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.stop()
            raise RuntimeError("emulator did not start")

    def cpu_s(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def emulator_serving(emu: Emulator, charges: int, conns: int = 4) -> dict[str, float]:
    """(d): charges/s the emulator serves to plain HTTP clients, and per emulator CPU-second."""
    from recon_assets.timewindows import day_window

    lo, hi = day_window(EMU_START).start, day_window(EMU_END - timedelta(1)).start
    step = (hi - lo) // conns
    wins = [(lo + i * step, lo + (i + 1) * step) for i in range(conns)]
    got = [0] * conns

    def work(i: int) -> None:
        got[i] = page_httpclient(emu.base_url, wins[i], charges // conns)

    cpu0, t0 = emu.cpu_s(), time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - t0, emu.cpu_s() - cpu0
    return {"charges": sum(got), "rate": sum(got) / wall, "per_cpu": sum(got) / max(cpu, 1e-9)}


@dataclass
class Row:
    name: str
    runs: list[dict[str, Any]]
    rate_of: Callable[[dict[str, Any]], float] = lambda r: r["charges"] / r["wall_s"]
    note: str = ""
    cpu_of: Callable[[dict[str, Any]], float] = lambda r: r["cpu_s"]
    show_rss: bool = True
    show_cpu: bool = True

    @property
    def rates(self) -> list[float]:
        return [self.rate_of(r) for r in self.runs]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def rss(self) -> float:
        return statistics.median(r["maxrss_mb"] for r in self.runs)

    def cells(self) -> list[str]:
        rates = self.rates
        cpu = (
            statistics.median(self.cpu_of(r) / r["charges"] * 1e6 for r in self.runs)
            if self.show_cpu
            else 0.0
        )
        return [
            self.name,
            f"{self.runs[0]['charges']:,}",
            str(len(rates)),
            f"{self.median:,.0f}",
            f"{min(rates):,.0f}..{max(rates):,.0f}",
            f"{cpu:.0f}" if self.show_cpu else "-",
            f"{self.rss:.0f}" if self.show_rss else "-",  # the client process's ru_maxrss
            self.note,
        ]


def load_note() -> str:
    la = Path("/proc/loadavg").read_text().split()[:3]
    return "load average " + " ".join(la)


def total_ram_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def print_table(rows: list[Row]) -> None:
    head = ["measurement", "charges", "runs", "median/s", "min..max /s", "CPU us/ch", "RSS MB"]
    head.append("notes")
    cells = [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head) - 1)]

    def line(c: list[str]) -> str:
        parts = [c[0].ljust(widths[0])] + [
            x.rjust(w) for x, w in zip(c[1:-1], widths[1:], strict=True)
        ]
        return "| " + " | ".join([*parts, c[-1]]) + " |"

    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|---|")
    for c in cells:
        print(line(c))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="~1 minute: one run each, 2 days big")
    ap.add_argument("--runs", type=int, default=None, help="runs of the ~100 k cases (3)")
    ap.add_argument("--big-runs", type=int, default=None, help="runs of the big case (2)")
    ap.add_argument("--big-days", type=int, default=None, help="days in the big case (10 = ~1 M)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_main(json.loads(args.child))
        return

    runs = args.runs or (1 if args.quick else 3)
    big_runs = args.big_runs if args.big_runs is not None else (1 if args.quick else 2)
    big_days = args.big_days or (2 if args.quick else 10)
    small = [DAY_100K.isoformat()]
    big = [d.isoformat() for d in days_from(EMU_START, big_days)]
    load_start = load_note()
    started = time.perf_counter()

    res: dict[str, list[dict[str, Any]]] = {}
    emu_per_cpu: list[float] = []
    emu = Emulator()
    try:
        url = emu.base_url
        with tempfile.TemporaryDirectory(prefix="bench-capture-") as cap:
            captured = run_child({"mode": "capture", "base_url": url, "days": small, "dir": cap})
            cases: list[tuple[str, dict[str, Any]]] = [
                ("replay", {"mode": "replay", "days": small, "dir": cap}),
                ("replay_orjson", {"mode": "replay", "days": small, "dir": cap, "parse": "orjson"}),
                ("replay_sdk", {"mode": "replay", "days": small, "dir": cap, "parse": "sdk"}),
                ("replay_json", {"mode": "replay", "days": small, "dir": cap, "parse": "json"}),
                ("fetch4", {"mode": "fetch", "base_url": url, "days": small, "concurrency": 4}),
                ("e2e4", {"mode": "e2e", "base_url": url, "days": small, "concurrency": 4}),
                ("fetch2", {"mode": "fetch", "base_url": url, "days": small, "concurrency": 2}),
                ("e2e2", {"mode": "e2e", "base_url": url, "days": small, "concurrency": 2}),
            ]
            for _ in range(runs):  # interleaved, so the machine's noise hits every case alike
                for key, spec in cases:
                    c0 = emu.cpu_s()
                    r = run_child(spec)
                    if key == "e2e4":
                        emu_per_cpu.append(r["charges"] / max(emu.cpu_s() - c0, 1e-9))
                    res.setdefault(key, []).append(r)
        for _ in range(big_runs):
            spec = {"mode": "e2e", "base_url": url, "days": big, "concurrency": CONCURRENCY}
            res.setdefault("big", []).append(run_child(spec))
        serving = [emulator_serving(emu, 100_000) for _ in range(max(1, runs - 1))]
    finally:
        emu.stop()

    def parse_alone(name: str, key: str, what: str) -> Row:
        """Charges per CPU-second of the body parse alone, in the replay `key`."""
        return Row(
            name,
            res[key],
            lambda r: r["charges"] / max(r["parse_cpu_s"], 1e-9),
            f"per CPU-s: {what}",
            show_rss=False,
            show_cpu=False,
        )

    row = {
        "a_incl": Row(
            "(a) processing, 1 core, incl. body parse", res["replay"], note="wall, pinned"
        ),
        "a_excl": Row(
            "(a) processing, 1 core, excl. body parse",
            res["replay"],
            lambda r: r["charges"] / max(r["cpu_s"] - r["parse_cpu_s"], 1e-9),
            "per CPU-s: window check, columns, Parquet",
            cpu_of=lambda r: r["cpu_s"] - r["parse_cpu_s"],
        ),
        "parse": parse_alone(
            "    body decode alone (ours)", "replay", "strict decode into charges, validated"
        ),
        "orjson": Row(
            "(a0) as (a), orjson parse + validation (before)",
            res["replay_orjson"],
            note="wall, pinned",
        ),
        "parse_orjson": parse_alone(
            "    orjson body parse alone (before)",
            "replay_orjson",
            "decode + orjson, no validation",
        ),
        "sdk": Row(
            "(a') as (a), the SDK parsing bodies (before)",
            res["replay_sdk"],
            note="wall, pinned",
        ),
        "json": Row(
            "(a'') as (a), one plain json.loads per body",
            res["replay_json"],
            note="wall, pinned",
        ),
        "parse_json": parse_alone(
            "    json.loads body parse alone", "replay_json", "decode + json.loads"
        ),
        "parse_sdk": parse_alone(
            "    SDK body parse alone (before)",
            "replay_sdk",
            "decode + json.loads(OrderedDict) + debug logfmt",
        ),
        "f4": Row(
            "SDK fetch only, 4 threads (no processing)", res["fetch4"], note="ceiling of (b)"
        ),
        "e4": Row("(b) end to end, 4 threads", res["e2e4"], note="emulator separate process"),
        "f2": Row(
            "SDK fetch only, 2 threads (no processing)", res["fetch2"], note="ceiling of (b)"
        ),
        "e2": Row(
            "(b) end to end, 2 threads (local default)",
            res["e2e2"],
            note="RECON_STRIPE_CONCURRENCY=2",
        ),
    }
    if "big" in res:
        row["big"] = Row(f"(b)/(c) end to end, {big_days} days, 4 threads", res["big"])
    serving_rows = [{"charges": s["charges"], "wall_s": s["charges"] / s["rate"]} for s in serving]
    row["serving"] = Row(
        "(d) emulator serving, 4 conns, no parse",
        serving_rows,
        note=f"{statistics.median(s['per_cpu'] for s in serving):,.0f} per emulator CPU-s",
        show_rss=False,
        show_cpu=False,
    )

    import pyarrow
    import pydantic
    import stripe

    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, {total_ram_gb():.1f} GB RAM; "
        f"{platform.platform()}"
    )
    print(
        f"python {platform.python_version()}, stripe {stripe.VERSION}, pydantic {pydantic.VERSION},"
        f" pyarrow {pyarrow.__version__}"
    )
    print(
        f"emulator: separate process, {CHARGES_PER_DAY:,} charges/day; client rate limiter "
        f"{CLIENT_RATE_PER_S:,.0f} req/s (bench only); {WINDOWS_PER_DAY} windows/day; "
        f"{captured['pages']} captured pages replayed for (a)"
    )
    print(f"{load_start} at start, {load_note()} at end; each case in a fresh process")
    print()
    print_table(list(row.values()))
    print()
    m = {k: r.median for k, r in row.items()}
    a_incl, a_excl, e4, e2 = m["a_incl"], m["a_excl"], m["e4"], m["e2"]
    small_rss = statistics.median(r["maxrss_mb"] for r in res["e2e4"])
    print("ratios (same run):")
    print(
        f"  end to end / SDK fetch only: 4 threads {e4 / m['f4']:.2f}, 2 threads {e2 / m['f2']:.2f}"
    )
    print(f"  end to end (4 threads) / processing incl. body parse on 1 core: {e4 / a_incl:.2f}")
    print(
        f"  processing, strict decode / orjson + validation (after / before): "
        f"{a_incl / m['orjson']:.2f}"
    )
    print(
        f"  processing, our decode / the SDK's parse: {a_incl / m['sdk']:.2f}; body parse alone "
        f"{m['parse'] / m['parse_sdk']:.2f}"
    )
    print(
        f"  processing, orjson parse / plain json.loads: {m['orjson'] / m['json']:.2f}; body "
        f"parse alone {m['parse_orjson'] / m['parse_json']:.2f}"
    )
    print(f"  2 threads / 4 threads end to end: {e2 / e4:.2f}")
    print(f"  emulator charges per its CPU-s during (b): {statistics.median(emu_per_cpu):,.0f}")
    big_rss = small_rss
    if "big" in res:
        big_rss = row["big"].rss
        print(
            f"  peak RSS {res['big'][0]['charges']:,} / {res['e2e4'][0]['charges']:,} charges: "
            f"{big_rss:.0f} / {small_rss:.0f} MB = {big_rss / small_rss:.2f} (after imports "
            f"{statistics.median(r['rss_before_mb'] for r in res['e2e4']):.0f} MB); "
            f"rate {m['big'] / e4:.2f}"
        )
    print()
    targets = [
        ("(a) processing >= 20,000/s on one core (excl. body parse)", a_excl >= 20_000),
        ("(a) the same incl. the body parse", a_incl >= 20_000),
        ("(b) end to end >= 15,000/s, 4 threads", e4 >= 15_000),
        ("(b) end to end >= 15,000/s, 2 threads", e2 >= 15_000),
        (
            "(c) peak RSS < 250 MB and flat (big/100k < 1.15)",
            big_rss < 250 and big_rss / small_rss < 1.15,
        ),
    ]
    for name, ok in targets:
        print(f"  {'MET   ' if ok else 'MISSED'} {name}")
    print(f"\nbench wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
