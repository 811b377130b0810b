"""Hides pandas from the benchmark children that measure recon (`bench_emulator.production_env`)."""

raise ModuleNotFoundError(
    "pandas is hidden from this benchmark child: recon's own install does not have it",
    name="pandas",
)
