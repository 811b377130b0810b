"""`python -m recon_assets.local.stripe_emulator --port 12111 ...` (or `recon emulator`, which
serves the pipeline's own local account): serve until Ctrl-C or SIGTERM.

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

from recon_assets.config import LOCAL_STRIPE_API_KEY
from recon_assets.local.stripe_emulator.config import (
    DEFAULT_END_DATE,
    WARM_DAYS,
    ChargeChange,
    EmulatorConfig,
    FaultConfig,
)
from recon_assets.local.stripe_emulator.server import StripeEmulator

MODULE_PROG = "python -m recon_assets.local.stripe_emulator"


def build_parser(
    prog: str = MODULE_PROG, defaults: EmulatorConfig | None = None, account: str = ""
) -> argparse.ArgumentParser:
    """The emulator's options; `defaults` is the account served when none is given (`recon
    emulator` passes the pipeline's local account, `account` says which in the help)."""
    defaults = defaults or EmulatorConfig(end_date=DEFAULT_END_DATE)
    p = argparse.ArgumentParser(
        prog=prog,
        description=(
            "A local Stripe API (charges, refunds, balance transactions, payouts, disputes, "
            "events) over HTTP, with a seeded account and reproducible faults. "
            + (account or "Default account: the options' defaults below.")
            + f" Requests authenticate with the key {LOCAL_STRIPE_API_KEY} (a test-mode "
            "placeholder, not a secret) unless --api-key names another, e.g. "
            f"curl -u {LOCAL_STRIPE_API_KEY}: 'http://127.0.0.1:12111/v1/charges?limit=3'."
        ),
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=12111, help="0 picks a free port")
    p.add_argument("--seed", type=int, default=defaults.seed, help="default: %(default)s")
    p.add_argument("--charges-per-day", type=int, default=defaults.charges_per_day,
                   help="default: %(default)s")  # fmt: skip
    p.add_argument("--start-date", type=date.fromisoformat, default=defaults.start_date,
                   help="first day of the account (default: %(default)s)")  # fmt: skip
    p.add_argument("--end-date", type=date.fromisoformat, default=defaults.end_date,
                   help="exclusive (default: %(default)s)")  # fmt: skip
    p.add_argument("--api-key", default=None, help="key to accept (default: " + (
        LOCAL_STRIPE_API_KEY if defaults.api_key == LOCAL_STRIPE_API_KEY else "STRIPE_API_KEY's"
    ) + ")")  # fmt: skip
    p.add_argument("--now", type=int, default=defaults.now,
                   help="freeze the clock, unix seconds (default: %(default)s = the wall clock)")  # fmt: skip
    p.add_argument(
        "--changes",
        type=Path,
        default=None,
        help="a JSON file of hand-made late changes (see ChargeChange); each is also an event",
    )
    p.add_argument(
        "--warm-days", type=int, default=WARM_DAYS,
        help="derive the balance transactions, payouts, disputes, refunds and events of the "
        "last N days before listening, as Stripe answers at once (default: %(default)s; 0: at "
        "their first request, a second or more)",
    )  # fmt: skip
    p.set_defaults(default_changes=defaults.changes, default_api_key=defaults.api_key)
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
    kwargs: dict[str, object] = {"api_key": args.api_key or args.default_api_key}
    if args.changes is not None:
        kwargs["changes"] = tuple(
            ChargeChange.from_json(d) for d in json.loads(args.changes.read_text())
        )
    elif args.default_changes:
        kwargs["changes"] = args.default_changes
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


def main(
    argv: Sequence[str] | None = None,
    prog: str = MODULE_PROG,
    defaults: EmulatorConfig | None = None,
    account: str = "",
) -> int:
    _stop_on_sigterm()
    parser = build_parser(prog, defaults, account)
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    emu = StripeEmulator(cfg, host=args.host, port=args.port)
    emu.warm(args.warm_days).bind()  # its address is said once it answers at Stripe's pace
    print(emu.base_url, flush=True)
    print(
        f"serving {emu.generator.timeline.total} charges "
        f"({cfg.start_date} .. {cfg.end_date}, seed {cfg.seed}) to the key "
        + (cfg.api_key if cfg.api_key == LOCAL_STRIPE_API_KEY else "given by --api-key")
        + "; Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        emu.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
