"""Per-day manifests: which staged file is the current version of a day.

A day may have files from several runs on the stage (re-statements, retries, a crashed run's
leftovers never exist because writes are atomic, but old runs' files stay for audit). The loader
must load exactly one run's file per day. The manifest `<dataset>/<day>/_latest.json` is written
only after that day's file is published, so it always names a complete file; a run that fails
before writing it leaves the previous version in force.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date

from recon_assets.stage.store import StageStore
from recon_assets.stage.writer import StagedFile


@dataclass(frozen=True)
class DayManifest:
    dataset: str
    day: date
    run_id: str
    key: str
    uri: str
    rows: int
    bytes: int
    quarantined: int
    written_at: str

    def to_json(self) -> str:
        d = asdict(self)
        d["day"] = self.day.isoformat()
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DayManifest:
        d = json.loads(text)
        d["day"] = date.fromisoformat(d["day"])
        return cls(**d)


def manifest_key(dataset: str, day: date) -> str:
    return f"{dataset}/{day.isoformat()}/_latest.json"


def write_manifest(
    store: StageStore, staged: StagedFile, run_id: str, quarantined: int, written_at: str
) -> DayManifest:
    m = DayManifest(
        dataset=staged.dataset,
        day=staged.day,
        run_id=run_id,
        key=staged.key,
        uri=staged.uri,
        rows=staged.rows,
        bytes=staged.bytes,
        quarantined=quarantined,
        written_at=written_at,
    )
    with store.open_atomic(manifest_key(staged.dataset, staged.day)) as fh:
        fh.write(m.to_json().encode())
    return m


def read_manifest(store: StageStore, dataset: str, day: date) -> DayManifest | None:
    key = manifest_key(dataset, day)
    try:
        return DayManifest.from_json(store.read_bytes(key).decode())
    except FileNotFoundError:
        return None
    except Exception as exc:  # S3's NoSuchKey is a botocore ClientError
        if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
