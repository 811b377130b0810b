"""A pull over several processes: the same staged days, counts and guarantees as one, for the
charges and for any source that would pull in processes (balance and payout transactions).

Real processes (spawned), real HTTP to the project's emulator, a real stage folder; what one
process stages is the reference, and the emulator's generator says what the account holds.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recon_assets.local.stripe_emulator import ChargeGenerator, FaultConfig
from recon_assets.local.stripe_emulator.balance import BalanceBook
from recon_assets.local.stripe_emulator.payouts import PayoutBook
from recon_assets.local.stripe_emulator.refunds import RefundBook
from recon_assets.stage.manifest import read_manifest
from recon_assets.stage.store import LocalStageStore, S3StageStore
from recon_assets.stripe.client import ClientSpec
from recon_assets.stripe.pull import pull, pull_charges
from recon_assets.stripe.pull_shards import (
    MIN_DAYS_PER_PROCESS,
    deal_days,
    process_count,
    pull_in_processes,
)
from recon_assets.stripe.sources import (
    BALANCE_TRANSACTIONS,
    CHARGES,
    PAYOUT_TRANSACTIONS,
    REFUNDS,
    SOURCES,
    StripeSource,
)
from recon_assets.timewindows import Window, day_window, utc_date_of, utc_date_window
from tests.stripe_fixtures import FROZEN_NOW, client_for, running_emulator

WINDOWS, WORKERS = 4, 2
FIRST = date(2024, 3, 6)  # the range crosses the spring DST change (2024-03-10)

pytestmark = pytest.mark.timeout(180)


def spec_for(emu: object) -> ClientSpec:
    return ClientSpec(emu.cfg.api_key, emu.base_url, 2000.0, 8)  # type: ignore[attr-defined]


def staged(store: LocalStageStore, day: date) -> list[tuple[str, int]]:
    m = read_manifest(store, "stripe_charges", day)
    assert m is not None, f"no manifest for {day}"
    t = pq.read_table(m.uri, columns=["id", "amount"])
    return sorted(zip(t.column("id").to_pylist(), t.column("amount").to_pylist(), strict=True))


@given(
    st.lists(st.dates(date(2020, 1, 1), date(2030, 1, 1)), min_size=1, max_size=60),
    st.integers(1, 8),
)
def test_days_are_dealt_whole_disjoint_and_evenly(days: list[date], n: int) -> None:
    shares = deal_days(days, n)
    dealt = [d for s in shares for d in s]
    assert sorted(dealt) == sorted(set(days))  # every day once, none twice
    assert all(shares) and len(shares) == min(n, len(set(days)))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_process_count_keeps_short_ranges_and_s3_in_one_process(tmp_path) -> None:
    local = LocalStageStore(tmp_path)
    assert process_count(2, 4, local) == 1  # the nightly: yesterday and 3 restated days
    assert process_count(2, MIN_DAYS_PER_PROCESS * 2, local) == 2
    assert process_count(4, MIN_DAYS_PER_PROCESS * 3, local) == 3
    assert process_count(1, 500, local) == 1
    assert process_count(2, 500, S3StageStore(object(), "bucket")) == 1


def test_only_the_charges_get_processes(tmp_path) -> None:
    """Charges gain from a second process (the client's CPU bounds their pull); balance and
    payout transactions were measured slower in two (docs/benchmarks.md), and refunds, disputes
    and payouts are a few a day: those stay in one."""
    local, days = LocalStageStore(tmp_path), MIN_DAYS_PER_PROCESS * 4
    many = {s.dataset for s in SOURCES.values() if process_count(2, days, local, s) == 2}
    assert many == {CHARGES.dataset}
    assert process_count(2, days, local, dataclasses.replace(REFUNDS, processes_pay=True)) == 2


def test_processes_stage_what_one_process_stages(tmp_path) -> None:
    """Same days, same charges and counts, quarantine included, as one `pull_charges`."""
    days = [FIRST + timedelta(i) for i in range(2 * MIN_DAYS_PER_PROCESS)]
    one, many = LocalStageStore(tmp_path / "one"), LocalStageStore(tmp_path / "many")
    with running_emulator(faults=FaultConfig(malformed_rate=0.02), charges_per_day=300) as emu:
        ref = pull_charges(
            client_for(emu), one, days, "run-one", windows_per_day=WINDOWS, concurrency=WORKERS
        )
        got = pull_in_processes(
            CHARGES, spec_for(emu), many, days, "run-many",
            processes=2, windows_per_day=WINDOWS, concurrency=WORKERS,
        )  # fmt: skip
        generated = {
            d: {
                c["id"]
                for c in ChargeGenerator(emu.cfg).iter_charges(
                    day_window(d).start, day_window(d).end
                )
            }
            for d in days
        }
    assert got.days == days
    assert got.quarantined > 0  # the malformed records took the quarantine path
    for d in days:
        assert vars(got.per_day[d]) == vars(ref.per_day[d])
        assert got.per_day[d].fetched == len(generated[d])
        assert staged(many, d) == staged(one, d)
        m = read_manifest(many, "stripe_charges", d)
        assert m is not None and m.run_id == "run-many"
        assert m.quarantined == ref.per_day[d].quarantined
    assert [f.day for f in got.files] == days
    assert sorted(f.day for f in got.quarantine_files) == sorted(
        f.day for f in ref.quarantine_files
    )
    assert got.drift_fields == ref.drift_fields and got.drift_statuses == ref.drift_statuses
    assert got.counters["requests"] == ref.counters["requests"]


@pytest.mark.parametrize("blocked_at", [0, -1])
def test_one_failing_process_leaves_no_file_and_every_day_as_it_was(
    tmp_path, blocked_at: int
) -> None:
    """A day the stage cannot take fails its process; the other's days keep nothing of the run
    and every manifest still names the earlier version. Blocking the first day, the other
    process is usually still pulling (it is stopped and aborts its writers); blocking the last,
    it has usually finished (its files are removed): either way nothing of the run stays."""
    days = [FIRST + timedelta(i) for i in range(2 * MIN_DAYS_PER_PROCESS)]
    store = LocalStageStore(tmp_path / "stage")
    with running_emulator(charges_per_day=1500) as emu:
        pull_charges(
            client_for(emu), store, days, "run-good", windows_per_day=WINDOWS, concurrency=WORKERS
        )
        before = {d: read_manifest(store, "stripe_charges", d) for d in days}
        blocked = days[
            blocked_at
        ]  # a file where the day's folder must go: that day cannot be written
        folder = store.path(f"stripe_charges/{blocked.isoformat()}")
        aside = folder.with_name("aside")
        folder.rename(aside)
        folder.write_text("not a folder")
        with pytest.raises(OSError) as raised:
            pull_in_processes(
                CHARGES, spec_for(emu), store, days, "run-bad",
                processes=2, windows_per_day=WINDOWS, concurrency=WORKERS,
            )  # fmt: skip
    assert any("in the pull process" in n for n in getattr(raised.value, "__notes__", []))
    folder.unlink()
    aside.rename(folder)
    assert {d: read_manifest(store, "stripe_charges", d) for d in days} == before
    assert not [k for k in store.list_keys("") if "run-bad" in k]
    assert not [p for p in store.root.rglob("*.tmp")]


def staged_rows(store: LocalStageStore, source: StripeSource, day: date) -> list[tuple]:
    m = read_manifest(store, source.dataset, day)
    assert m is not None, f"no manifest for {source.dataset} {day}"
    names = ["id", "net"] + ([str(source.parent_filter)] if source.parent_filter else [])
    t = pq.read_table(m.uri, columns=names)
    return sorted(zip(*(t.column(n).to_pylist() for n in names), strict=True))


def paid_payouts_by_day(emu: object, days: list[date]) -> dict[date, list[tuple[str, Window]]]:
    """What `parents_by_day` reads from the loaded payouts, taken from the emulator's book."""
    gen = ChargeGenerator(emu.cfg)  # type: ignore[attr-defined]
    book = PayoutBook(BalanceBook(gen, RefundBook(gen)))
    span = (utc_date_window(days[0]).start, utc_date_window(days[-1]).end)
    out: dict[date, list[tuple[str, Window]]] = {}
    for p in book.listing(None, span, None, FROZEN_NOW):
        if p.status(FROZEN_NOW) == "paid":
            out.setdefault(utc_date_of(p.arrival_date), []).append((p.id, Window(0, p.created + 1)))
    return out


@pytest.mark.parametrize(
    "registered", [BALANCE_TRANSACTIONS, PAYOUT_TRANSACTIONS], ids=lambda s: s.dataset
)
def test_any_source_in_processes_stages_what_one_process_stages(
    tmp_path, registered: StripeSource
) -> None:
    """The pull in processes is the one pull for every source that would pay for it: balance
    transactions by day, and each paid payout's transactions by parent (each process gets the
    parents of its own days), give the same rows and counts per day as one `pull`."""
    source = dataclasses.replace(registered, processes_pay=True)
    days = [FIRST + timedelta(i) for i in range(2 * MIN_DAYS_PER_PROCESS)]
    one, many = LocalStageStore(tmp_path / "one"), LocalStageStore(tmp_path / "many")
    with running_emulator(charges_per_day=300) as emu:
        parents = paid_payouts_by_day(emu, days) if source.parent_filter else None
        ref = pull(
            source, client_for(emu), one, days, "run-one",
            windows_per_day=WINDOWS, concurrency=WORKERS, parents=parents,
        )  # fmt: skip
        got = pull_in_processes(
            source, spec_for(emu), many, days, "run-many", processes=2,
            windows_per_day=WINDOWS, concurrency=WORKERS, parents=parents,
        )  # fmt: skip
    assert got.days == days and got.fetched == ref.fetched > 0 and got.quarantined == 0
    if parents is not None:
        assert sum(map(len, parents.values())) > 5  # payouts on most days, from both shares
    for d in days:
        assert vars(got.per_day[d]) == vars(ref.per_day[d])
        assert staged_rows(many, source, d) == staged_rows(one, source, d)
    assert got.counters["requests"] == ref.counters["requests"]


def test_a_spec_the_processes_cannot_find_is_refused(tmp_path) -> None:
    """The processes look the spec up by its dataset: one not registered, or registered with
    other facts (another slicing), would be pulled as the registered one, so it is refused."""
    days = [FIRST + timedelta(i) for i in range(2 * MIN_DAYS_PER_PROCESS)]
    spec = ClientSpec("sk_test_unused", "http://127.0.0.1:9", 1.0, 1)
    for source in (
        dataclasses.replace(REFUNDS, dataset="stripe_other", processes_pay=True),
        dataclasses.replace(REFUNDS, windows_per_day=7, processes_pay=True),
    ):
        with pytest.raises(ValueError, match="not a registered source"):
            pull_in_processes(
                source, spec, LocalStageStore(tmp_path), days, "run-x",
                processes=2, windows_per_day=WINDOWS, concurrency=WORKERS,
            )  # fmt: skip
    assert not list(tmp_path.iterdir())  # nothing pulled, nothing written
