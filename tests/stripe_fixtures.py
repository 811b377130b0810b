"""Fixtures for the Stripe side: the project's emulator over real HTTP, clients and stages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest

from recon_assets.local.stripe_emulator import EmulatorConfig, FaultConfig, StripeEmulator
from recon_assets.stage.store import LocalStageStore
from recon_assets.stripe.client import ChargesClient, RetryPolicy
from recon_assets.stripe.ratelimit import RateLimiter

FROZEN_NOW = 1_767_225_600  # 2026-01-01: every seeded late change has happened
FAST_RETRY = RetryPolicy(max_retries=8, base_s=0.005, cap_s=0.05)


def emulator_config(**kwargs: object) -> EmulatorConfig:
    base: dict[str, object] = {
        "seed": 7,
        "charges_per_day": 1500,
        "start_date": date(2024, 1, 1),
        "end_date": date(2025, 1, 1),
        "now": FROZEN_NOW,
    }
    base.update(kwargs)
    return EmulatorConfig(**base)  # type: ignore[arg-type]


@contextmanager
def running_emulator(**kwargs: object) -> Iterator[StripeEmulator]:
    with StripeEmulator(emulator_config(**kwargs), host="127.0.0.1", port=0) as emu:
        yield emu


def client_for(
    emu: StripeEmulator,
    *,
    rate: float = 2000.0,
    retry: RetryPolicy = FAST_RETRY,
    api_key: str | None = None,
) -> ChargesClient:
    return ChargesClient(
        api_key or emu.cfg.api_key,
        api_base=emu.base_url,
        rate_limiter=RateLimiter(rate),
        retry=retry,
        seed=1,
    )


@pytest.fixture
def emulator() -> Iterator[StripeEmulator]:
    with running_emulator() as emu:
        yield emu


@pytest.fixture
def faulty_emulator() -> Callable[..., object]:
    """`faulty_emulator(**FaultConfig kwargs)` as a context manager."""

    def make(**faults: object) -> object:
        return running_emulator(faults=FaultConfig(**faults))  # type: ignore[arg-type]

    return make


@pytest.fixture
def local_stage(tmp_path: Path) -> LocalStageStore:
    return LocalStageStore(tmp_path / "stage")
