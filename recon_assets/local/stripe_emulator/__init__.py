"""A local, stateful stand-in for Stripe's charges API, for the demo, the tests and the benchmarks.

stripe-mock is stateless and ignores filters and paging, which are exactly what our client must get
right, so the project carries its own emulator: seeded, lazily generated charges with Stripe's
shape, Stripe's paging and errors, and reproducible faults. It knows nothing of Dagster.

    cfg = EmulatorConfig(seed=42, charges_per_day=15000, start_date=date(2024, 1, 1),
                         end_date=date(2024, 3, 1), now=None, faults=FaultConfig())
    with StripeEmulator(cfg, host="127.0.0.1", port=0) as emu:
        client = stripe.StripeClient(cfg.api_key, base_addresses={"api": emu.base_url})
        ...
        emu.stats.rate_limited, emu.malformed_kind(charge_id)
    ChargeGenerator(cfg).iter_charges(gte, lt)   # what the server serves, oldest first, no faults
    ChargeGenerator(cfg).count(gte, lt), ChargeGenerator(cfg).get(charge_id)

    python -m recon_assets.local.stripe_emulator --port 12111 --seed 42 --charges-per-day 15000 \
        --start-date 2024-01-01 --end-date 2024-03-01 [--error-5xx-rate 0.05 ...]

Served: `GET /v1/charges` (created[gt|gte|lt|lte] or exact created, limit 1..100, starting_after /
ending_before, newest first by (created, id)), `GET /v1/charges/{id}` and `GET /v1/events`
(type with `*` wildcards, types[], created, limit, starting_after / ending_before, newest first,
the last 30 days only; see `events`), Bearer or Basic auth. Days are US-Eastern; charges created
after the emulator's `now` do not exist yet; seeded late changes (pending resolving, late and
partial captures, refunds, disputes) land 1..72 h after `created`, hand-made `ChargeChange`s
(`--changes FILE`) whenever they say. Fault determinism: see `FaultConfig`.
"""

from recon_assets.local.stripe_emulator.charges import ChargeGenerator
from recon_assets.local.stripe_emulator.config import EmulatorConfig, FaultConfig
from recon_assets.local.stripe_emulator.faults import (
    DRIFT_KINDS,
    INVALID_KINDS,
    MALFORMED_KINDS,
    EmulatorStats,
    FaultPlan,
    RequestFault,
)
from recon_assets.local.stripe_emulator.server import StripeEmulator, mask_key

__all__ = [
    "DRIFT_KINDS",
    "INVALID_KINDS",
    "MALFORMED_KINDS",
    "ChargeGenerator",
    "EmulatorConfig",
    "EmulatorStats",
    "FaultConfig",
    "FaultPlan",
    "RequestFault",
    "StripeEmulator",
    "mask_key",
]
