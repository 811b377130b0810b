"""A local, stateful stand-in for Stripe's charges API, for the demo, the tests and the benchmarks.

stripe-mock is stateless and ignores filters and paging, which are exactly what our client must get
right, so the project carries its own emulator: seeded, lazily generated charges with Stripe's
shape, Stripe's paging and errors, and reproducible faults. It knows nothing of Dagster.
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
