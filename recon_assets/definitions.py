"""The code location: one `Definitions` for the environment named by `RECON_ENV`.

Nothing happens at import: `defs` is a lazy `@dg.definitions` function that Dagster calls when it
loads the location, and only then are environment variables read. `build_definitions(settings)`
is the pure part, used by tests with settings of their own.
"""

from __future__ import annotations

import dagster as dg
from dagster_aws.s3 import S3Resource

from recon_assets.config import ReconSettings
from recon_assets.defs.partitions import daily_partitions
from recon_assets.defs.resources import StageResource, StripeResource
from recon_assets.defs.stripe_assets import build_stripe_charges_asset


def build_resources(settings: ReconSettings) -> dict[str, object]:
    if settings.is_local:
        stripe = StripeResource(
            api_key=settings.stripe_api_key or "",
            api_base=settings.stripe_api_base,
            emulate=settings.stripe_api_base is None,
            emulator_seed=settings.emulator_seed,
            emulator_charges_per_day=settings.emulator_charges_per_day,
            emulator_start_date=settings.start_date.isoformat(),
            rate_per_s=settings.stripe_rate_per_s,
            max_retries=settings.stripe_max_retries,
            windows_per_day=settings.stripe_windows_per_day,
            concurrency=settings.stripe_concurrency,
        )
    else:
        stripe = StripeResource(
            api_key=dg.EnvVar("STRIPE_API_KEY"),
            api_base=settings.stripe_api_base,
            rate_per_s=settings.stripe_rate_per_s,
            max_retries=settings.stripe_max_retries,
            windows_per_day=settings.stripe_windows_per_day,
            concurrency=settings.stripe_concurrency,
        )
    s3 = S3Resource() if settings.stage_uri.startswith("s3://") else None
    return {"stripe": stripe, "stage": StageResource(uri=settings.stage_uri, s3=s3)}


def build_definitions(settings: ReconSettings) -> dg.Definitions:
    partitions = daily_partitions(settings.start_date)
    assets = [build_stripe_charges_asset(partitions)]
    return dg.Definitions(assets=assets, resources=build_resources(settings))


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(ReconSettings.from_env())
