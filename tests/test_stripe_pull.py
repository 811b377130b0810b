"""The charges pull, end to end over real HTTP: stripe SDK → project emulator → staged Parquet.

Expected charges always come from the emulator's generator (the source of truth for what the
account holds), never from the code under test.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from datetime import UTC, date, datetime

import pyarrow.parquet as pq
import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recon_assets.local.stripe_emulator import (
    DRIFT_KINDS,
    INVALID_KINDS,
    ChargeGenerator,
    FaultConfig,
    StripeEmulator,
)
from recon_assets.stage.manifest import read_manifest
from recon_assets.stage.store import LocalStageStore, StageStore
from recon_assets.stripe.client import (
    RetryPolicy,
    StripeAuthError,
    StripeFetchError,
    decode_charge_page,
    parse_response,
)
from recon_assets.stripe.models import CHARGE_LIST, KNOWN_CHARGE_FIELDS, Charge
from recon_assets.stripe.pull import iter_window, pull_charges
from recon_assets.stripe.sources import CHARGES
from recon_assets.timewindows import BUSINESS_TZ, Window, business_day_of, day_window
from tests.stripe_fixtures import client_for, running_emulator

WINDOWS, WORKERS = 8, 2  # the pull's sub-windows per day and fetch threads (callers always say)

pytestmark = pytest.mark.timeout(120)


def expected_ids(emu: StripeEmulator, window: Window) -> list[str]:
    return [c["id"] for c in ChargeGenerator(emu.cfg).iter_charges(window.start, window.end)]


def staged_table(store: StageStore, day: date):
    m = read_manifest(store, "stripe_charges", day)
    assert m is not None, f"no manifest for {day}"
    return pq.read_table(m.uri), m


def window_with_exactly(emu: StripeEmulator, k: int, day: date) -> Window:
    """A window holding exactly k charges, its edges on distinct `created` seconds."""
    w = day_window(day)
    created = [c["created"] for c in ChargeGenerator(emu.cfg).iter_charges(w.start, w.end)]
    if k == 0:
        for a, b in itertools.pairwise(created):
            if b - a >= 2:
                return Window(a + 1, b)
        raise AssertionError("no gap in the day")
    for i in range(1, len(created) - k):
        if created[i - 1] < created[i] and created[i + k - 1] < created[i + k]:
            return Window(created[i], created[i + k])
    raise AssertionError(f"no window of exactly {k} charges")


@pytest.mark.parametrize("k", [0, 1, 99, 100, 101, 250])
def test_pagination_edges(emulator: StripeEmulator, k: int) -> None:
    window = window_with_exactly(emulator, k, date(2024, 5, 14))
    client = client_for(emulator)
    pages = list(iter_window(client, window))
    got = [item["id"] for p in pages for item in p.items]
    assert sorted(got) == sorted(expected_ids(emulator, window))
    assert len(got) == len(set(got)) == k
    assert len(pages) == max(1, -(-k // 100))  # no empty trailing page, no missing one


def test_ties_across_page_boundaries_are_neither_lost_nor_doubled(
    emulator: StripeEmulator,
) -> None:
    """Charges 100 and 101 (newest first) share one `created` second: the cursor must hold."""
    w = day_window(date(2024, 5, 15))
    created = [c["created"] for c in ChargeGenerator(emulator.cfg).iter_charges(w.start, w.end)]
    end = None
    for b in range(1, len(created) - 100):
        # oldest-first indices b-1 and b tie; b+99 is the last one before `end`
        if created[b - 1] == created[b] and created[b + 99] < created[b + 100]:
            end = created[b + 100]
            break
    assert end is not None, "the generator must produce ties (bursts in one second)"
    window = Window(w.start, end)
    pages = list(iter_window(client_for(emulator), window))
    assert pages[0].items[-1]["created"] == pages[1].items[0]["created"]  # the tie straddles
    got = [i["id"] for p in pages for i in p.items]
    assert len(got) == len(set(got))
    assert sorted(got) == sorted(expected_ids(emulator, window))


def test_window_edges_are_half_open(emulator: StripeEmulator) -> None:
    day = date(2024, 5, 16)
    w = day_window(day)
    inner = list(ChargeGenerator(emulator.cfg).iter_charges(w.start, w.end))
    t = inner[len(inner) // 2]["created"]
    left = [i["id"] for p in iter_window(client_for(emulator), Window(w.start, t)) for i in p.items]
    right = [i["id"] for p in iter_window(client_for(emulator), Window(t, w.end)) for i in p.items]
    assert not set(left) & set(right)
    assert sorted(left + right) == sorted(c["id"] for c in inner)


@pytest.mark.parametrize(("day", "hours"), [(date(2024, 3, 10), 23), (date(2024, 11, 3), 25)])
def test_dst_days_are_pulled_exactly(
    emulator: StripeEmulator, local_stage: LocalStageStore, day: date, hours: int
) -> None:
    w = day_window(day)
    assert w.seconds == hours * 3600
    result = pull_charges(
        client_for(emulator), local_stage, [day], "run-dst", windows_per_day=7, concurrency=WORKERS
    )
    table, manifest = staged_table(local_stage, day)
    assert sorted(table.column("id").to_pylist()) == sorted(expected_ids(emulator, w))
    assert manifest.rows == table.num_rows == result.staged
    created = table.column("created").to_pylist()
    assert all(business_day_of(c) == day for c in created)
    assert {c.astimezone(BUSINESS_TZ).utcoffset() for c in created} == {
        datetime(day.year, day.month, day.day, 0, tzinfo=BUSINESS_TZ).utcoffset(),
        datetime(day.year, day.month, day.day, 23, tzinfo=BUSINESS_TZ).utcoffset(),
    }  # charges on both sides of the transition
    assert set(table.column("_partition_date").to_pylist()) == {day}


def test_staged_columns_keep_minor_units_and_lineage(
    emulator: StripeEmulator, local_stage: LocalStageStore
) -> None:
    day = date(2024, 6, 3)
    pull_charges(
        client_for(emulator),
        local_stage,
        [day],
        "run-cols",
        windows_per_day=WINDOWS,
        concurrency=WORKERS,
    )
    table, manifest = staged_table(local_stage, day)
    by_id = {r["id"]: r for r in table.to_pylist()}
    w = day_window(day)
    for c in ChargeGenerator(emulator.cfg).iter_charges(w.start, w.end):
        row = by_id[c["id"]]
        assert row["amount"] == c["amount"] and row["amount_captured"] == c["amount_captured"]
        assert row["currency"] == c["currency"] and row["status"] == c["status"]
        assert row["created"] == datetime.fromtimestamp(c["created"], UTC)
        assert row["_run_id"] == "run-cols"
    assert {"jpy", "krw"} <= set(table.column("currency").to_pylist())
    meta = pq.ParquetFile(manifest.uri).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"


def test_range_is_split_into_one_file_per_day(
    emulator: StripeEmulator, local_stage: LocalStageStore
) -> None:
    days = [date(2024, 7, 1), date(2024, 7, 2), date(2024, 7, 3)]
    result = pull_charges(
        client_for(emulator), local_stage, days, "run-range", concurrency=3, windows_per_day=WINDOWS
    )
    assert [f.day for f in result.files] == days
    for d in days:
        table, m = staged_table(local_stage, d)
        assert m.run_id == "run-range"
        assert sorted(table.column("id").to_pylist()) == sorted(
            expected_ids(emulator, day_window(d))
        )
        assert "run-range" in m.key and d.isoformat() in m.key


def test_429_storm_is_recovered_and_the_rate_respected(local_stage: LocalStageStore) -> None:
    with running_emulator(faults=FaultConfig(fail_first_n_requests=12)) as emu:
        client = client_for(emu, rate=40.0)
        day = date(2024, 8, 6)
        started = time.monotonic()
        result = pull_charges(
            client, local_stage, [day], "run-429", concurrency=4, windows_per_day=WINDOWS
        )
        elapsed = time.monotonic() - started
        assert result.counters["rate_limited_429"] == 12 == emu.stats.rate_limited
        assert result.staged == len(expected_ids(emu, day_window(day)))
        # every 429 halved the client's rate: it must have slowed down, not hammered
        assert client.limiter.throttled == 12
        n = result.counters["requests"]
        assert elapsed >= (n - client.limiter.burst) / client.limiter.max_rate


def test_server_side_rate_limit_is_respected(local_stage: LocalStageStore) -> None:
    """A client set above the server's limit learns the limit from 429s and still finishes."""
    with running_emulator(faults=FaultConfig(rate_limit_per_s=30, rate_limit_burst=5)) as emu:
        client = client_for(emu, rate=200.0)
        day = date(2024, 8, 7)
        result = pull_charges(
            client, local_stage, [day], "run-rl", concurrency=4, windows_per_day=WINDOWS
        )
        assert result.staged == len(expected_ids(emu, day_window(day)))
        assert result.counters["rate_limited_429"] > 0
        assert client.limiter.rate < 200.0


def test_5xx_resets_and_truncated_bodies_are_retried(local_stage: LocalStageStore) -> None:
    faults = FaultConfig(error_5xx_rate=0.15, reset_rate=0.1, truncate_rate=0.1)
    with running_emulator(faults=faults) as emu:
        day = date(2024, 9, 10)
        result = pull_charges(
            client_for(emu),
            local_stage,
            [day],
            "run-5xx",
            windows_per_day=WINDOWS,
            concurrency=WORKERS,
        )
        stats = emu.stats
        c = result.counters
        assert result.staged == len(expected_ids(emu, day_window(day)))
        assert c["server_errors_5xx"] == stats.errors_5xx > 0
        assert stats.resets > 0 and stats.truncations > 0
        assert c["connection_errors"] + c["bad_bodies"] == stats.resets + stats.truncations
        assert c["retries"] == c["requests"] - stats.responses_200
        assert result.quarantined == 0  # a cut body is a network fault, not a bad record


def test_retry_budget_exhausted_fails_clearly_and_stages_nothing(
    local_stage: LocalStageStore,
) -> None:
    with running_emulator(faults=FaultConfig(error_5xx_rate=1.0)) as emu:
        client = client_for(emu, retry=RetryPolicy(max_retries=2, base_s=0.001, cap_s=0.01))
        days = [date(2024, 9, 11), date(2024, 9, 12)]
        with pytest.raises(StripeFetchError, match=r"after 2 retries; last failure: HTTP 5\d\d"):
            pull_charges(
                client, local_stage, days, "run-fail", windows_per_day=WINDOWS, concurrency=WORKERS
            )
    assert local_stage.list_keys("") == []
    assert (
        not any(p.is_file() for p in local_stage.root.rglob("*"))
        if local_stage.root.exists()
        else True
    )


def test_failure_after_some_days_leaves_previous_version_in_force(
    local_stage: LocalStageStore,
) -> None:
    days = [date(2024, 9, 13), date(2024, 9, 14)]
    with running_emulator() as emu:
        pull_charges(
            client_for(emu),
            local_stage,
            days,
            "run-good",
            windows_per_day=WINDOWS,
            concurrency=WORKERS,
        )
    before = {d: read_manifest(local_stage, "stripe_charges", d) for d in days}
    with running_emulator(faults=FaultConfig(error_5xx_rate=1.0)) as emu:
        client = client_for(emu, retry=RetryPolicy(max_retries=1, base_s=0.001, cap_s=0.01))
        with pytest.raises(StripeFetchError):
            pull_charges(
                client, local_stage, days, "run-bad", windows_per_day=WINDOWS, concurrency=WORKERS
            )
    assert {d: read_manifest(local_stage, "stripe_charges", d) for d in days} == before
    assert not [k for k in local_stage.list_keys("") if "run-bad" in k]


def test_malformed_charges_are_quarantined_and_counts_conserved(
    local_stage: LocalStageStore,
) -> None:
    with running_emulator(faults=FaultConfig(malformed_rate=0.05)) as emu:
        days = [date(2024, 10, 1), date(2024, 10, 2)]
        result = pull_charges(
            client_for(emu),
            local_stage,
            days,
            "run-bad-records",
            windows_per_day=WINDOWS,
            concurrency=WORKERS,
        )
        for d in days:
            ids = expected_ids(emu, day_window(d))
            kinds = {i: emu.malformed_kind(i) for i in ids}
            invalid = {i for i, k in kinds.items() if k in INVALID_KINDS}
            drift = {i for i, k in kinds.items() if k in DRIFT_KINDS}
            assert invalid and drift
            counts = result.per_day[d]
            assert counts.fetched == len(ids) == counts.staged + counts.quarantined
            assert counts.quarantined == len(invalid)
            table, m = staged_table(local_stage, d)
            assert set(table.column("id").to_pylist()) == set(ids) - invalid
            assert m.quarantined == len(invalid)
            q = pq.read_table(
                local_stage.uri(
                    f"quarantine/stripe_charges/{d}/stripe_charges__{d}__run-bad-records.parquet"
                )
            ).to_pylist()
            assert {r["record_id"] for r in q} == invalid
            for r in q:
                assert r["_run_id"] == "run-bad-records"
                assert "amount" in r["error"] or "currency" in r["error"]
                assert r["record_id"] in r["raw_payload"]
        unknown_status = sum(
            1
            for d in days
            for i in expected_ids(emu, day_window(d))
            if emu.malformed_kind(i) == "unknown_status"
        )
        assert result.drift_statuses == {"requires_review": unknown_status}
        assert result.drift_fields["risk_insights"] > 0
        assert set(result.drift_fields) == {"risk_insights"}


def test_wrong_api_key_fails_fast_without_the_key(
    emulator: StripeEmulator, local_stage: LocalStageStore
) -> None:
    secret = "sk_test_THIS_IS_A_SECRET_KEY_4242"
    client = client_for(emulator, api_key=secret)
    emulator.reset_stats()
    with pytest.raises(StripeAuthError) as info:
        pull_charges(
            client,
            local_stage,
            [date(2024, 5, 1)],
            "run-key",
            windows_per_day=WINDOWS,
            concurrency=WORKERS,
        )
    # fails fast: a 401 is never retried, so at most one request per window in flight
    assert 1 <= emulator.stats.requests <= WINDOWS
    text = str(info.value) + repr(info.value) + str(info.value.__cause__) + str(client)
    assert secret not in text and "SECRET_KEY" not in text
    assert "STRIPE_API_KEY" in str(info.value)
    assert client.counters.retries == 0  # an auth failure is never retried
    assert local_stage.list_keys("") == []


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    offset=st.integers(min_value=0, max_value=86_000),
    length=st.integers(min_value=0, max_value=6 * 3600),
    parts=st.integers(min_value=1, max_value=9),
)
def test_split_windows_fetch_exactly_the_window(
    emulator: StripeEmulator, offset: int, length: int, parts: int
) -> None:
    from recon_assets.timewindows import split_window

    start = day_window(date(2024, 4, 2)).start + offset
    w = Window(start, start + length)
    client = client_for(emulator)
    got = [
        i["id"] for sub in split_window(w, parts) for p in iter_window(client, sub) for i in p.items
    ]
    assert len(got) == len(set(got))
    assert sorted(got) == sorted(expected_ids(emulator, w))


def test_s3_stage_on_moto(emulator: StripeEmulator, s3_client: object, s3_bucket: str) -> None:
    """The production stage: streamed multipart/PUT uploads to S3 (a moto server over HTTP)."""
    from recon_assets.stage.store import S3StageStore

    store = S3StageStore(s3_client, s3_bucket, "recon/stage")
    days = [date(2024, 12, 1), date(2024, 12, 2)]
    result = pull_charges(
        client_for(emulator), store, days, "run-s3", windows_per_day=WINDOWS, concurrency=WORKERS
    )
    keys = store.list_keys("stripe_charges")
    assert keys == sorted(
        [f"stripe_charges/{d}/stripe_charges__{d}__run-s3.parquet" for d in days]
        + [f"stripe_charges/{d}/_latest.json" for d in days]
    )
    for f in result.files:
        assert f.uri == f"s3://{s3_bucket}/recon/stage/{f.key}"
        import io

        table = pq.read_table(io.BytesIO(store.read_bytes(f.key)))
        assert sorted(table.column("id").to_pylist()) == sorted(
            expected_ids(emulator, day_window(f.day))
        )
        assert read_manifest(store, "stripe_charges", f.day).rows == table.num_rows


def test_s3_failed_pull_leaves_no_object(s3_client: object, s3_bucket: str) -> None:
    from recon_assets.stage.store import S3StageStore

    store = S3StageStore(s3_client, s3_bucket, "p")
    with running_emulator(faults=FaultConfig(error_5xx_rate=1.0)) as emu:
        client = client_for(emu, retry=RetryPolicy(max_retries=1, base_s=0.001, cap_s=0.01))
        with pytest.raises(StripeFetchError):
            pull_charges(
                client,
                store,
                [date(2024, 12, 3)],
                "run-s3-bad",
                windows_per_day=WINDOWS,
                concurrency=WORKERS,
            )
    assert store.list_keys("") == []
    uploads = s3_client.list_multipart_uploads(Bucket=s3_bucket)  # type: ignore[attr-defined]
    assert not uploads.get("Uploads")


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(min_value=0, max_value=10_000),
    rate=st.sampled_from([0.0, 0.01, 0.2, 0.6, 1.0]),
    day=st.dates(min_value=date(2024, 1, 2), max_value=date(2024, 12, 30)),
)
def test_any_mix_of_malformed_records_is_conserved(
    tmp_path_factory: pytest.TempPathFactory, seed: int, rate: float, day: date
) -> None:
    """Whatever the seed, day and share of bad records: every fetched charge is staged or
    quarantined, exactly the invalid ones are quarantined, and drift never quarantines."""
    store = LocalStageStore(tmp_path_factory.mktemp("stage"))
    with running_emulator(
        seed=seed, charges_per_day=300, faults=FaultConfig(malformed_rate=rate)
    ) as emu:
        result = pull_charges(
            client_for(emu),
            store,
            [day],
            f"run-{seed}",
            windows_per_day=WINDOWS,
            concurrency=WORKERS,
        )
        ids = expected_ids(emu, day_window(day))
        invalid = {i for i in ids if emu.malformed_kind(i) in INVALID_KINDS}
    counts = result.per_day[day]
    assert counts.fetched == len(ids) == counts.staged + counts.quarantined
    assert counts.quarantined == len(invalid)
    table, m = staged_table(store, day)
    assert set(table.column("id").to_pylist()) == set(ids) - invalid
    assert m.rows == counts.staged and m.quarantined == counts.quarantined


def test_page_bodies_are_parsed_by_the_client_and_never_logged_by_the_sdk(
    emulator: StripeEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The client takes each 2xx body from the SDK's HTTP client and parses it once itself.

    With the `stripe` logger at DEBUG (someone debugging a night), the SDK used to format and log
    every page body: charge data, customers and emails, in the logs. Now the SDK only ever sees
    `{}` for a success, so no charge id reaches its log, while the pages are exact.
    """
    day = date(2024, 9, 4)
    window = day_window(day)
    with caplog.at_level("DEBUG", logger="stripe"):
        got = [c["id"] for page in iter_window(client_for(emulator), window) for c in page.items]
    assert sorted(got) == sorted(expected_ids(emulator, window))
    sdk_lines = [r.getMessage() for r in caplog.records if r.name.startswith("stripe")]
    assert any("API response body" in line for line in sdk_lines)  # the SDK did log, at DEBUG
    assert not any(cid in line for line in sdk_lines for cid in got[:5])


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)  # beyond 64 bits: orjson refuses these
    | st.floats(allow_nan=True, allow_infinity=True)  # NaN/Infinity: json reads them
    | st.text()  # lone surrogates included: orjson refuses their escapes
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _same_json(a: object, b: object) -> bool:
    """Equal as JSON values, NaN equal to NaN, ints and floats told apart."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_json(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=300, deadline=None)
@given(
    obj=st.dictionaries(st.text(), _json_values, max_size=6),
    ensure_ascii=st.booleans(),
    dup=st.booleans(),
)
def test_parse_response_reads_every_body_as_python_json_does(
    obj: dict, ensure_ascii: bool, dup: bool
) -> None:
    """The client's fast parser must not change what a body means: the same values, key order
    and types as `json.loads` for any body json reads (escapes, lone surrogates, NaN, integers
    beyond 64 bits, repeated keys), and a bad body for any it does not."""
    text = json.dumps(obj, ensure_ascii=ensure_ascii)
    if dup:  # a repeated key (json keeps the last value), around the generated members
        inner = text[1:-1]
        text = '{"k": 1' + (", " + inner if inner else "") + ', "k": [2]}'
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate unescaped: not a body HTTP can carry as UTF-8
        raw = text.encode("utf-8", "surrogatepass")
    try:
        want = json.loads(raw.decode("utf-8"))
    except ValueError:
        with pytest.raises(stripe.APIError, match="not JSON"):
            parse_response(raw)
        return
    got = parse_response(raw)
    assert _same_json(got.data, want)
    assert got.content == raw


@pytest.mark.parametrize("cut", [1, 10, 57])
def test_parse_response_calls_a_cut_body_bad(cut: int) -> None:
    body = json.dumps({"object": "list", "data": [{"id": "ch_1", "amount": 5}], "has_more": False})
    with pytest.raises(stripe.APIError, match="not JSON"):
        parse_response(body.encode()[:-cut])
    with pytest.raises(stripe.APIError, match="not an object"):
        parse_response(b"[1, 2]")


def test_a_netrc_entry_for_the_api_host_does_not_replace_the_stripe_key(
    emulator: StripeEmulator, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests, trusting the environment, would send a matching netrc entry's Basic auth in
    place of the SDK's `Authorization: Bearer` header; the client's sessions never read netrc."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-the-stripe-key\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    window = day_window(date(2024, 9, 5))
    got = [c["id"] for page in iter_window(client_for(emulator), window) for c in page.items]
    assert sorted(got) == sorted(expected_ids(emulator, window))


@pytest.mark.parametrize("bypass", [False, True])
def test_the_environments_proxy_still_applies(
    emulator: StripeEmulator, monkeypatch: pytest.MonkeyPatch, bypass: bool
) -> None:
    """The proxy variables are read once per client, not per request, and still honoured: a
    proxy that refuses connections fails the fetch, unless NO_PROXY names the API host."""
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # discard port: nothing listens
    if bypass:
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client = client_for(emulator)
    window = day_window(date(2024, 9, 6))
    if bypass:
        assert sum(len(p.items) for p in iter_window(client, window)) == len(
            expected_ids(emulator, window)
        )
    else:
        with pytest.raises(StripeFetchError, match="after"):
            list(iter_window(client, window))
        assert client.counters.connection_errors > 0


_BASE_CHARGE: dict = {
    "id": "ch_3PqXb2LkdIwHu7ix0a1b2c3d",
    "object": "charge",
    "amount": 1999,
    "amount_captured": 1999,
    "amount_refunded": 0,
    "balance_transaction": "txn_3PqXb2LkdIwHu7ix",
    "billing_details": {"address": {"city": "Miami", "line2": None}, "email": "a@example.com"},
    "captured": True,
    "created": 1_704_171_599,
    "currency": "usd",
    "customer": "cus_Q1w2e3r4",
    "description": None,
    "disputed": False,
    "failure_code": None,
    "failure_message": None,
    "livemode": False,
    "metadata": {"order_id": "ord_1", "channel": "web"},
    "outcome": {"risk_score": 15, "type": "authorized"},
    "paid": True,
    "payment_intent": "pi_3PqXb2Lk",
    "payment_method_details": {"card": {"brand": "visa", "exp_year": 2030, "wallet": None}},
    "refunded": False,
    "status": "succeeded",
}
_MODELLED = sorted(Charge.model_fields)
_UNMODELLED_KNOWN = sorted(KNOWN_CHARGE_FIELDS - set(Charge.model_fields))


_opt_text = st.none() | st.text(max_size=8)
_big_int = st.integers(min_value=-(2**70), max_value=2**70)
_FIELD_VALUES = {  # each modelled field's valid values in any script and size, and their edges
    "id": st.text(max_size=12),
    "created": st.integers(min_value=0, max_value=2**40),
    "status": st.sampled_from(["succeeded", "pending", "failed"]) | st.text(max_size=8),
    "captured": st.booleans(),
    "currency": st.sampled_from(["usd", "EUR", "JPY", "KwD"]) | st.text(min_size=2, max_size=4),
    "amount": _big_int,
    "amount_captured": _big_int,
    "amount_refunded": st.none() | _big_int,
    "livemode": st.none() | st.booleans(),
    "paid": st.none() | st.booleans(),
    "refunded": st.none() | st.booleans(),
    "disputed": st.none() | st.booleans(),
    "balance_transaction": _opt_text,
    "customer": _opt_text,
    "payment_intent": _opt_text,
    "failure_code": _opt_text,
    "failure_message": _opt_text,
    "description": _opt_text,
    "outcome": st.none()
    | st.fixed_dictionaries({}, optional={"type": _opt_text, "risk_score": st.integers()}),
    "metadata": st.none() | st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3),
}
assert set(_FIELD_VALUES) == set(Charge.model_fields), "a modelled field has no generator"


@st.composite
def _charge_dicts(draw: st.DrawFn) -> dict:
    """A charge whose modelled fields hold values of their own type (text of any script and
    length around the bounds, integers beyond 64 bits), documented but unmodelled fields any
    JSON, and now and then a field dropped, given any JSON, or an undocumented field added."""
    c = dict(_BASE_CHARGE)
    for name in draw(st.lists(st.sampled_from(_MODELLED), max_size=8, unique=True)):
        c[name] = draw(_FIELD_VALUES[name])
    for name in draw(st.lists(st.sampled_from(_UNMODELLED_KNOWN), max_size=2)):
        c[name] = draw(_json_values)
    if draw(st.integers(0, 5)) == 0:
        name = draw(st.sampled_from(_MODELLED))
        if draw(st.booleans()):
            c.pop(name, None)
        else:
            c[name] = draw(_json_values)
    if draw(st.integers(0, 9)) == 0:
        c[draw(st.text(min_size=1, max_size=8))] = draw(_json_values)  # maybe drift
    return c


@settings(max_examples=400, deadline=None)
@given(
    items=st.lists(_charge_dicts(), max_size=4),
    page_object=st.sampled_from(["list"] * 7 + ["search_result"]),
    has_more=st.sampled_from([True, False] * 3 + [1, None]),
    ensure_ascii=st.booleans(),
    indent=st.sampled_from([None, 2]),
    damage=st.sampled_from([None] * 6 + ["cut", "byte"]),
    where=st.integers(min_value=0),
    byte=st.integers(min_value=0, max_value=255),
)
def test_the_strict_page_decoder_accepts_exactly_the_clean_pages_and_reads_them_the_same(
    items: list[dict],
    page_object: str,
    has_more: object,
    ensure_ascii: bool,
    indent: int | None,
    damage: str | None,
    where: int,
    byte: int,
) -> None:
    """The pull's fast path (`decode_charge_page`, msgspec straight from bytes) against what the
    pull did before it (json parse, strict validation of every record, no undocumented field):
    it takes a page only when that path would, never one json cannot read, gives the same
    columns and cursor, and declines no clean page except for the documented corners (a lone
    surrogate escape; NaN or Infinity, which only Python's json reads)."""
    text = json.dumps(
        {"object": page_object, "data": items, "has_more": has_more},
        ensure_ascii=ensure_ascii,
        indent=indent,
    )
    raw = text.encode("utf-8", "surrogatepass")
    if damage == "cut":
        raw = raw[: where % len(raw)]
    elif damage == "byte":
        i = where % len(raw)
        raw = raw[:i] + bytes([byte]) + raw[i + 1 :]
    try:
        data = json.loads(raw.decode("utf-8"))
        readable = isinstance(data, dict) and isinstance(data.get("data"), list)
    except ValueError:
        readable = False
    if not readable:
        with pytest.raises(stripe.APIError):
            decode_charge_page(raw)
        return
    page = decode_charge_page(raw)
    records = data["data"]
    assert page.has_more == bool(data.get("has_more"))
    assert page.last_id == (
        records[-1].get("id") if records and isinstance(records[-1], dict) else None
    )
    no_drift = all(isinstance(r, dict) and KNOWN_CHARGE_FIELDS.issuperset(r) for r in records)
    try:
        rows = CHARGE_LIST.validate_python(records)
    except ValueError:  # pydantic's ValidationError
        rows = None
    if page.records is not None:
        assert rows is not None and no_drift
        cols = CHARGES.columns(page.records)
        assert cols == CHARGES.dict_columns(rows)
        # the columns that are not copied as they are, written out from the JSON records
        assert cols["currency"] == [r["currency"].lower() for r in records]
        assert cols["created"] == [r["created"] * 1_000_000 for r in records]
        assert cols["outcome_type"] == [(r.get("outcome") or {}).get("type") for r in records]
        assert cols["metadata"] == [
            json.dumps(r["metadata"], sort_keys=True) if r.get("metadata") else None
            for r in records
        ]
        return

    def standard(const: str) -> None:
        raise ValueError(const)

    try:
        json.loads(raw.decode("utf-8"), parse_constant=standard)
        corner = re.search(rb"\\u[dD][89a-fA-F]", raw) is not None
    except ValueError:
        corner = True  # NaN or Infinity somewhere in the body
    clean = rows is not None and no_drift and data.get("object") == "list"
    assert corner or not (clean and isinstance(data.get("has_more"), bool)), "a clean page declined"
    assert page.items == records or corner  # the JSON path's records, as json reads them
