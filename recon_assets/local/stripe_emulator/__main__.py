"""`python -m recon_assets.local.stripe_emulator --port 12111 ...`: serve until Ctrl-C.

Prints the base URL on the first line of stdout (and flushes it), so a script or a benchmark that
starts the emulator as a subprocess can read where it listens.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from recon_assets.local.stripe_emulator.config import (
    DEFAULT_END_DATE,
    ChargeChange,
    EmulatorConfig,
    FaultConfig,
)
from recon_assets.local.stripe_emulator.server import StripeEmulator


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recon_assets.local.stripe_emulator",
        description="A local Stripe charges API with seeded data and reproducible faults.",
    )
    defaults = EmulatorConfig()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=12111, help="0 picks a free port")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--charges-per-day", type=int, default=defaults.charges_per_day)
    p.add_argument("--start-date", type=date.fromisoformat, default=defaults.start_date)
    p.add_argument(
        "--end-date", type=date.fromisoformat, default=DEFAULT_END_DATE, help="exclusive"
    )
    p.add_argument(
        "--api-key", default=None, help="key to accept (default: the project's local key)"
    )
    p.add_argument("--now", type=int, default=None, help="freeze the clock (unix seconds)")
    p.add_argument(
        "--changes",
        type=Path,
        default=None,
        help="a JSON file of hand-made late changes (see ChargeChange); each is also an event",
    )
    f = p.add_argument_group("faults (all off by default, seeded)")
    f.add_argument("--rate-limit-per-s", type=float, default=None)
    f.add_argument("--rate-limit-burst", type=int, default=None)
    f.add_argument("--error-5xx-rate", type=float, default=0.0)
    f.add_argument("--latency-ms", type=float, default=0.0)
    f.add_argument("--reset-rate", type=float, default=0.0)
    f.add_argument("--truncate-rate", type=float, default=0.0)
    f.add_argument("--truncate-mode", choices=["mixed", "short_length", "abort"], default="mixed")
    f.add_argument("--malformed-rate", type=float, default=0.0)
    f.add_argument("--fail-first-n-requests", type=int, default=0)
    f.add_argument("--fail-first-n-status", type=int, default=429)
    return p


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    faults = FaultConfig(
        rate_limit_per_s=args.rate_limit_per_s,
        rate_limit_burst=args.rate_limit_burst,
        error_5xx_rate=args.error_5xx_rate,
        latency_ms=args.latency_ms,
        reset_rate=args.reset_rate,
        truncate_rate=args.truncate_rate,
        truncate_mode=args.truncate_mode,
        malformed_rate=args.malformed_rate,
        fail_first_n_requests=args.fail_first_n_requests,
        fail_first_n_status=args.fail_first_n_status,
    )
    kwargs: dict[str, object] = {}
    if args.api_key:
        kwargs["api_key"] = args.api_key
    if args.changes is not None:
        kwargs["changes"] = tuple(
            ChargeChange.from_json(d) for d in json.loads(args.changes.read_text())
        )
    return EmulatorConfig(
        seed=args.seed,
        charges_per_day=args.charges_per_day,
        start_date=args.start_date,
        end_date=args.end_date,
        now=args.now,
        faults=faults,
        **kwargs,  # type: ignore[arg-type]
    )


def _stop_on_sigterm() -> None:
    """Make SIGTERM stop the server like Ctrl-C, whatever the parent left us.

    An ignored signal and a blocked signal mask survive `exec`: a parent that ignores or blocks
    SIGTERM (a test worker after Dagster's interrupt handling, a process supervisor) would start
    an emulator that `terminate()` cannot stop, and its port stays taken.
    """

    def _interrupt(_signo: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def main(argv: Sequence[str] | None = None) -> int:
    _stop_on_sigterm()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    emu = StripeEmulator(cfg, host=args.host, port=args.port)
    emu.bind()
    print(emu.base_url, flush=True)
    print(
        f"serving {emu.generator.timeline.total} charges "
        f"({cfg.start_date} .. {cfg.end_date}, seed {cfg.seed}); Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        emu.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
