"""Dagster resources: thin configuration holders that build the Dagster-free parts.

Values come from `ReconSettings` (environment variables) when the definitions are built, or
from `dg.EnvVar` for secrets in production, so a secret is resolved inside the run and never
appears in the UI's resource config.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field

from recon_assets.stage.store import StageStore, stage_store_from_uri
from recon_assets.stripe.client import ChargesClient, RetryPolicy
from recon_assets.stripe.ratelimit import RateLimiter


class StripeResource(dg.ConfigurableResource):
    """Stripe's API, or (local mode with no `STRIPE_API_BASE`) an in-process emulator."""

    api_key: str = Field(description="Restricted read-only key; from STRIPE_API_KEY.")
    api_base: str | None = Field(default=None, description="STRIPE_API_BASE; None = Stripe.")
    rate_per_s: float = 25.0
    max_retries: int = 8
    windows_per_day: int = 8
    concurrency: int = 4
    emulate: bool = Field(
        default=False, description="Start the project's Stripe emulator for the run."
    )
    emulator_seed: int = 42
    emulator_charges_per_day: int = 2000
    emulator_start_date: str = "2024-01-01"

    @contextmanager
    def charges_client(self) -> Iterator[ChargesClient]:
        limiter = RateLimiter(self.rate_per_s)
        retry = RetryPolicy(max_retries=self.max_retries)
        if not self.emulate:
            yield ChargesClient(
                self.api_key, api_base=self.api_base, rate_limiter=limiter, retry=retry
            )
            return
        from recon_assets.local.stripe_emulator import EmulatorConfig, StripeEmulator

        cfg = EmulatorConfig(
            seed=self.emulator_seed,
            charges_per_day=self.emulator_charges_per_day,
            start_date=date.fromisoformat(self.emulator_start_date),
            end_date=date.today() + timedelta(days=2),
            api_key=self.api_key,
        )
        with StripeEmulator(cfg, host="127.0.0.1", port=0) as emu:
            yield ChargesClient(
                self.api_key, api_base=emu.base_url, rate_limiter=limiter, retry=retry
            )


class StageResource(dg.ConfigurableResource):
    """The stage: a local folder, or `s3://bucket/prefix` through dagster-aws's S3Resource."""

    uri: str
    s3: S3Resource | None = None

    def store(self) -> StageStore:
        client = self.s3.get_client() if self.uri.startswith("s3://") and self.s3 else None
        return stage_store_from_uri(self.uri, client)
