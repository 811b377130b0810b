"""Shared fixtures: each part keeps its fixtures in its own module, loaded here as plugins."""

pytest_plugins = [
    "tests.stripe_fixtures",
    "tests.ledger_fixtures",
    "tests.warehouse_fixtures",
    "tests.pipeline_fixtures",
]
