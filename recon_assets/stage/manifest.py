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
from datetime import date, datetime
from typing import TYPE_CHECKING

from recon_assets.stage.store import StageStore

if TYPE_CHECKING:  # the loads read manifests without the Parquet writer (and pyarrow.parquet)
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


def day_manifest(staged: StagedFile, run_id: str, quarantined: int, written_at: str) -> DayManifest:
    """The manifest that would make `staged` the current version of its day (not written)."""
    return DayManifest(
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


def publish_manifest(store: StageStore, m: DayManifest) -> DayManifest:
    """Make `m`'s file the current version of its day: only once its blocking checks passed."""
    with store.open_atomic(manifest_key(m.dataset, m.day)) as fh:
        fh.write(m.to_json().encode())
    return m


def write_manifest(
    store: StageStore, staged: StagedFile, run_id: str, quarantined: int, written_at: str
) -> DayManifest:
    return publish_manifest(store, day_manifest(staged, run_id, quarantined, written_at))


@dataclass(frozen=True)
class CheckFailure:
    """A day whose latest staging failed a blocking check: its file was never published, and a
    load of the day is refused (naming the check) until a later staging passes."""

    dataset: str
    day: date
    check: str
    run_id: str
    detail: str
    written_at: str

    def to_json(self) -> str:
        d = asdict(self)
        d["day"] = self.day.isoformat()
        return json.dumps(d, sort_keys=True)


def check_failure_key(dataset: str, day: date) -> str:
    return f"{dataset}/{day.isoformat()}/_check_failed.json"


def record_check_failure(store: StageStore, failure: CheckFailure) -> None:
    with store.open_atomic(check_failure_key(failure.dataset, failure.day)) as fh:
        fh.write(failure.to_json().encode())


def read_check_failure(store: StageStore, dataset: str, day: date) -> CheckFailure | None:
    text = _read_text_or_none(store, check_failure_key(dataset, day))
    if text is None:
        return None
    d = json.loads(text)
    d["day"] = date.fromisoformat(d["day"])
    return CheckFailure(**d)


@dataclass(frozen=True)
class KeyedFile:
    day: date
    key: str
    rows: int


@dataclass(frozen=True)
class EventsRead:
    """One read of Stripe's charge events: `[read_from, read_until)` in unix seconds, Stripe's
    clock. Recorded by the load of the charges it re-pulled, in the same transaction, so the
    stored cursor (the latest `read_until`) moves only with the charges it stands for."""

    read_from: int
    read_until: int
    events: int
    charges: int


@dataclass(frozen=True)
class LookupScan:
    """What one look-up run read for ids to look up: the rows loaded after `read_from` and at
    or before `scanned_through` (instants of `raw.load_log`, the loaders' clock). Recorded by
    the run's last load, so only a run whose every step ended well moves it."""

    read_from: datetime
    scanned_through: datetime

    def to_dict(self) -> dict[str, str]:
        return {
            "read_from": self.read_from.isoformat(),
            "scanned_through": self.scanned_through.isoformat(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, str]) -> LookupScan:
        return cls(
            datetime.fromisoformat(d["read_from"]), datetime.fromisoformat(d["scanned_through"])
        )


@dataclass(frozen=True)
class KeyedManifest:
    """Files whose rows replace rows of the same id, not whole days.

    Written by a Stripe look-up by id (`kind="lookup"`, with each id's outcome), by the charges
    Stripe's events named (`kind="events"`, with the read they came from) or by the ledger's
    changed-entries extract (`kind="changes"`). Named by run id, so the loader of the
    same run finds exactly its own files; `lookups` is `(charge_id, result, detail)`.
    """

    dataset: str
    run_id: str
    kind: str
    files: tuple[KeyedFile, ...]
    lookups: tuple[tuple[str, str, str | None], ...] = ()
    written_at: str = ""
    events_read: EventsRead | None = None
    lookup_scan: LookupScan | None = None
    """On the last load of a look-up run: the rows it read for ids to look up (recorded in
    `raw.stripe_lookup_scans`)."""

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def to_json(self) -> str:
        return json.dumps(
            {
                "dataset": self.dataset,
                "run_id": self.run_id,
                "kind": self.kind,
                "files": [
                    {"day": f.day.isoformat(), "key": f.key, "rows": f.rows} for f in self.files
                ],
                "lookups": [list(x) for x in self.lookups],
                "written_at": self.written_at,
                "events_read": asdict(self.events_read) if self.events_read else None,
                "lookup_scan": self.lookup_scan.to_dict() if self.lookup_scan else None,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> KeyedManifest:
        d = json.loads(text)
        return cls(
            dataset=d["dataset"],
            run_id=d["run_id"],
            kind=d["kind"],
            files=tuple(
                KeyedFile(date.fromisoformat(f["day"]), f["key"], int(f["rows"]))
                for f in d["files"]
            ),
            lookups=tuple((a, b, c) for a, b, c in d.get("lookups", [])),
            written_at=d.get("written_at", ""),
            events_read=EventsRead(**d["events_read"]) if d.get("events_read") else None,
            lookup_scan=LookupScan.from_dict(d["lookup_scan"]) if d.get("lookup_scan") else None,
        )


def keyed_manifest_key(dataset: str, kind: str, run_id: str) -> str:
    return f"{dataset}/_{kind}/{run_id}.json"


def write_keyed_manifest(store: StageStore, m: KeyedManifest) -> str:
    key = keyed_manifest_key(m.dataset, m.kind, m.run_id)
    with store.open_atomic(key) as fh:
        fh.write(m.to_json().encode())
    return key


def read_keyed_manifest(
    store: StageStore, dataset: str, kind: str, run_id: str
) -> KeyedManifest | None:
    text = _read_text_or_none(store, keyed_manifest_key(dataset, kind, run_id))
    return None if text is None else KeyedManifest.from_json(text)


def read_manifest(store: StageStore, dataset: str, day: date) -> DayManifest | None:
    text = _read_text_or_none(store, manifest_key(dataset, day))
    return None if text is None else DayManifest.from_json(text)


def _read_text_or_none(store: StageStore, key: str) -> str | None:
    """A manifest's text, or None when the stage has no such key (locally or on S3)."""
    try:
        return store.read_bytes(key).decode()
    except FileNotFoundError:
        return None
    except Exception as exc:  # S3's NoSuchKey is a botocore ClientError
        if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
