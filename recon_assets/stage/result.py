"""The one result type of staging a source: what each day fetched, staged and quarantined.

The Stripe pull and the ledger extract both return it, so the Dagster assets turn either into
the same metadata (`recon_assets.defs.metadata.stage_metadata`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from recon_assets.stage.manifest import DayManifest, KeyedManifest
from recon_assets.stage.writer import StagedFile


@dataclass
class DayCounts:
    fetched: int = 0
    staged: int = 0
    quarantined: int = 0


@dataclass
class StageResult:
    run_id: str
    days: list[date]
    per_day: dict[date, DayCounts]
    files: list[StagedFile]
    quarantine_files: list[StagedFile]
    counters: dict[str, int]
    seconds: float
    drift_fields: Counter[str] = field(default_factory=Counter)
    drift_statuses: Counter[str] = field(default_factory=Counter)
    manifests: list[DayManifest] = field(default_factory=list)
    keyed: KeyedManifest | None = None
    """Rows to be replaced by id (ledger changes), when the source staged any."""
    keyed_rows_by_day: dict[date, int] = field(default_factory=dict)

    @property
    def fetched(self) -> int:
        return sum(c.fetched for c in self.per_day.values())

    @property
    def staged(self) -> int:
        return sum(c.staged for c in self.per_day.values())

    @property
    def quarantined(self) -> int:
        return sum(c.quarantined for c in self.per_day.values())

    @property
    def staged_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def rows_per_s(self) -> float:
        return self.fetched / self.seconds if self.seconds > 0 else 0.0
