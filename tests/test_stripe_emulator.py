"""The Stripe emulator, checked through real HTTP: with the stripe SDK where the project's client
will use it, with plain http.client where the raw bytes, headers or broken responses matter."""

from __future__ import annotations

import base64
import http.client
import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recon_assets.config import LOCAL_STRIPE_API_KEY
from recon_assets.local.stripe_emulator import (
    DRIFT_KINDS,
    MALFORMED_KINDS,
    ChargeGenerator,
    EmulatorConfig,
    FaultConfig,
    StripeEmulator,
    mask_key,
)
from recon_assets.local.stripe_emulator.timeline import HOUR_WEIGHT, day_count, dst_transitions
from recon_assets.timewindows import BUSINESS_TZ, day_window

KEY = LOCAL_STRIPE_API_KEY
FROZEN_NOW = 1_735_689_600  # 2025-01-01: every 2024 charge exists and its late changes have landed
SPRING = date(2024, 3, 10)  # 23-hour day
FALL = date(2024, 11, 3)  # 25-hour day
CHARGE_FIELDS = {
    "id", "object", "amount", "amount_captured", "amount_refunded", "application",
    "application_fee", "application_fee_amount", "balance_transaction", "billing_details",
    "calculated_statement_descriptor", "captured", "created", "currency", "customer",
    "description", "disputed", "failure_balance_transaction", "failure_code", "failure_message",
    "fraud_details", "livemode", "metadata", "on_behalf_of", "outcome", "paid", "payment_intent",
    "payment_method", "payment_method_details", "radar_options", "receipt_email",
    "receipt_number", "receipt_url", "refunded", "review", "shipping", "source_transfer",
    "statement_descriptor", "statement_descriptor_suffix", "status", "transfer_data",
    "transfer_group",
}  # fmt: skip

pytestmark = pytest.mark.timeout(60)


def small_cfg(**kw: object) -> EmulatorConfig:
    base: dict[str, object] = {
        "seed": 7,
        "charges_per_day": 400,
        "start_date": date(2024, 3, 8),
        "end_date": date(2024, 3, 12),
        "now": FROZEN_NOW,
    }
    base.update(kw)
    return EmulatorConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def emu() -> Iterator[StripeEmulator]:
    with StripeEmulator(small_cfg()) as e:
        yield e


@pytest.fixture(scope="module")
def gen(emu: StripeEmulator) -> ChargeGenerator:
    return emu.generator


def call(
    base_url: str,
    path: str,
    params: dict[str, object] | None = None,
    key: str | None = KEY,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One GET on a fresh connection; returns status, headers and the raw body."""
    u = urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    h = {} if key is None else {"Authorization": f"Bearer {key}"}
    h.update(headers or {})
    try:
        conn.request("GET", path + ("?" + urlencode(params) if params else ""), headers=h)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


class Pager:
    """Keep-alive paging through the list endpoint, as a client would."""

    def __init__(self, base_url: str) -> None:
        u = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        self.requests = 0

    def page(self, params: dict[str, object]) -> dict:
        self.conn.request(
            "GET", "/v1/charges?" + urlencode(params), headers={"Authorization": f"Bearer {KEY}"}
        )
        r = self.conn.getresponse()
        body = r.read()
        self.requests += 1
        assert r.status == 200, body
        return json.loads(body)

    def all_desc(self, filters: dict[str, object], limit: int) -> list[dict]:
        out: list[dict] = []
        params = {**filters, "limit": limit}
        while True:
            page = self.page(params)
            out += page["data"]
            if not page["has_more"]:
                return out
            params["starting_after"] = page["data"][-1]["id"]

    def all_backwards(self, filters: dict[str, object], limit: int, after_id: str) -> list[dict]:
        """Everything newer than `after_id` via ending_before, oldest page first; newest first."""
        pages: list[list[dict]] = []
        cursor = after_id
        while True:
            page = self.page({**filters, "limit": limit, "ending_before": cursor})
            if page["data"]:
                pages.append(page["data"])
                cursor = page["data"][0]["id"]
            if not page["has_more"]:
                break
        return [c for p in reversed(pages) for c in p]

    def close(self) -> None:
        self.conn.close()


def error_of(body: bytes) -> dict:
    return json.loads(body)["error"]


def expected_desc(gen: ChargeGenerator, gte: int, lt: int) -> list[dict]:
    return list(reversed(list(gen.iter_charges(gte, lt))))


# -- the list endpoint ----------------------------------------------------------------------------


def test_list_shape_headers_and_default_limit(emu: StripeEmulator) -> None:
    status, headers, body = call(
        emu.base_url, "/v1/charges", headers={"Stripe-Version": "2024-06-20"}
    )
    assert status == 200
    page = json.loads(body)
    assert set(page) == {"object", "data", "has_more", "url"}
    assert page["object"] == "list" and page["url"] == "/v1/charges" and page["has_more"] is True
    assert len(page["data"]) == 10
    assert headers["Content-Type"] == "application/json"
    assert re.fullmatch(r"req_[0-9A-Za-z]{14}", headers["Request-Id"])
    assert headers["Stripe-Version"] == "2024-06-20"
    created = [(c["created"], c["id"]) for c in page["data"]]
    assert created == sorted(created, reverse=True)


def test_created_filters_are_half_open_and_operators_agree(
    emu: StripeEmulator, gen: ChargeGenerator
) -> None:
    w = day_window(date(2024, 3, 9))
    pager = Pager(emu.base_url)
    got = pager.all_desc({"created[gte]": w.start, "created[lt]": w.end}, 100)
    assert got == expected_desc(gen, w.start, w.end)
    assert len(got) == gen.count(w.start, w.end) == day_count(7, 400, date(2024, 3, 9))
    assert all(w.start <= c["created"] < w.end for c in got)
    # The first second of the next day belongs to the next day only.
    assert got[-1]["created"] == w.start and got[0]["created"] == w.end - 1
    nxt = pager.page({"created[gte]": w.end, "created[lt]": w.end + 1, "limit": 100})["data"]
    assert nxt and all(c["created"] == w.end for c in nxt)
    # gt/lte and an exact `created` say the same thing as gte/lt.
    same = pager.all_desc({"created[gt]": w.start - 1, "created[lte]": w.end - 1}, 100)
    assert [c["id"] for c in same] == [c["id"] for c in got]
    exact = pager.all_desc({"created": w.start}, 100)
    assert exact == [c for c in got if c["created"] == w.start]
    # An empty or inverted window is an empty list, not an error.
    assert pager.page({"created[gte]": w.end, "created[lt]": w.start})["data"] == []
    pager.close()


def test_paging_with_starting_after_and_ending_before(
    emu: StripeEmulator, gen: ChargeGenerator
) -> None:
    w0, w1 = day_window(date(2024, 3, 8)).start, day_window(date(2024, 3, 10)).end
    filters = {"created[gte]": w0, "created[lt]": w1}
    expected = expected_desc(gen, w0, w1)
    pager = Pager(emu.base_url)
    forward = pager.all_desc(filters, 37)
    assert [c["id"] for c in forward] == [c["id"] for c in expected]
    oldest = forward[-1]["id"]
    backward = pager.all_backwards(filters, 41, oldest)
    assert [c["id"] for c in backward] == [c["id"] for c in expected[:-1]]
    # ending_before pages hold the `limit` charges right above the cursor, newest first.
    page = pager.page({**filters, "limit": 5, "ending_before": expected[20]["id"]})
    assert [c["id"] for c in page["data"]] == [c["id"] for c in expected[15:20]]
    assert page["has_more"] is True
    pager.close()


def test_bad_parameters_are_400_naming_the_parameter(emu: StripeEmulator) -> None:
    cases = [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"created[gte]": "abc"}, "created[gte]"),
        ({"created[lt]": "1.5"}, "created[lt]"),
        ({"starting_after": "ch_" + "3" + "0" * 23}, "starting_after"),
        ({"ending_before": "nope"}, "ending_before"),
        ({"created[between]": 1}, "created[between]"),
        ({"customer_email": "x"}, "customer_email"),
    ]
    for params, param in cases:
        status, _, body = call(emu.base_url, "/v1/charges", params)
        err = error_of(body)
        assert status == 400, params
        assert err["type"] == "invalid_request_error" and err["param"] == param, err
    _, _, body = call(emu.base_url, "/v1/charges", {"limit": 1})
    some_id = json.loads(body)["data"][0]["id"]
    status, _, body = call(
        emu.base_url, "/v1/charges", {"starting_after": some_id, "ending_before": some_id}
    )
    assert status == 400 and error_of(body)["param"] == "ending_before"
    assert call(emu.base_url, "/v1/charges", {"limit": 100})[0] == 200
    assert call(emu.base_url, "/v1/charges", {"limit": 1})[0] == 200


def test_auth_401_masks_the_key_and_accepts_bearer_or_basic(emu: StripeEmulator) -> None:
    wrong = "sk_test_51HxYzSecretSecretSecretabcd"
    status, headers, body = call(emu.base_url, "/v1/charges", key=wrong)
    err = error_of(body)
    assert status == 401 and err["type"] == "invalid_request_error"
    assert err["message"] == "Invalid API Key provided: sk_test_" + "*" * (len(wrong) - 12) + "abcd"
    assert wrong not in body.decode() and "SecretSecret" not in body.decode()
    assert "Request-Id" in headers
    status, _, body = call(emu.base_url, "/v1/charges", key=None)
    assert status == 401 and "did not provide an API key" in error_of(body)["message"]
    short = call(emu.base_url, "/v1/charges", key="hunter2")[2].decode()
    assert "hunter2" not in short and "unter" not in short
    basic = base64.b64encode(f"{KEY}:".encode()).decode()
    status, _, _ = call(
        emu.base_url, "/v1/charges", key=None, headers={"Authorization": f"Basic {basic}"}
    )
    assert status == 200
    client = stripe.StripeClient(wrong, base_addresses={"api": emu.base_url}, max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError) as exc:
        client.v1.charges.list()
    assert wrong not in str(exc.value)


def test_mask_key() -> None:
    assert mask_key("sk_live_0123456789abcdefWXYZ") == "sk_live_" + "*" * 16 + "WXYZ"
    assert mask_key("rk_test_short") == "rk_test_*****"
    assert mask_key("whatever") == "********"


def test_retrieve_and_404(emu: StripeEmulator, gen: ChargeGenerator) -> None:
    w = day_window(date(2024, 3, 11))
    first = next(gen.iter_charges(w.start, w.end))
    status, _, body = call(emu.base_url, f"/v1/charges/{first['id']}")
    assert status == 200 and json.loads(body) == first == gen.get(first["id"])
    # Right shape, wrong check characters (as if from another seed): unknown.
    forged = first["id"][:-1] + ("A" if first["id"][-1] != "A" else "B")
    other_seed = next(ChargeGenerator(small_cfg(seed=8)).iter_charges(w.start, w.end))["id"]
    for unknown in (forged, other_seed, "ch_doesnotexist", "ch_3zzz" + "0" * 20):
        status, _, body = call(emu.base_url, f"/v1/charges/{unknown}")
        err = error_of(body)
        assert status == 404, unknown
        assert err == {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": f"No such charge: '{unknown}'",
            "param": "id",
            "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
        }
    client = stripe.StripeClient(KEY, base_addresses={"api": emu.base_url}, max_network_retries=0)
    assert client.v1.charges.retrieve(first["id"]).amount == first["amount"]
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.charges.retrieve(forged)
    assert exc.value.http_status == 404 and exc.value.code == "resource_missing"
    assert call(emu.base_url, "/v1/customers")[0] == 404


# -- the SDK ----------------------------------------------------------------------------------------


def test_sdk_auto_paging_returns_every_charge_once_across_tied_pages() -> None:
    cfg = EmulatorConfig(
        seed=42, charges_per_day=15000, start_date=date(2024, 1, 3), end_date=date(2024, 1, 4),
        now=FROZEN_NOW,
    )  # fmt: skip
    with StripeEmulator(cfg) as e:
        gen = e.generator
        ts = gen.timeline.timestamps(0)
        burst_t, size = Counter(ts).most_common(1)[0]
        assert size > 100  # one second holds more than a page
        lo, hi = burst_t - 120, burst_t + 120
        expected = [c["id"] for c in expected_desc(gen, lo, hi)]
        client = stripe.StripeClient(KEY, base_addresses={"api": e.base_url}, max_network_retries=0)
        listed = client.v1.charges.list(params={"created": {"gte": lo, "lt": hi}, "limit": 100})
        got = [c.id for c in listed.auto_paging_iter()]
        assert got == expected and len(set(got)) == len(got) > 200
        raw = client.raw_request("get", "/v1/charges", limit=100, created={"gte": lo, "lt": hi})
        assert [c["id"] for c in json.loads(raw.body)["data"]] == expected[:100]
        # The whole day through plain HTTP: every one of ~15 k charges exactly once.
        w = day_window(date(2024, 1, 3))
        pager = Pager(e.base_url)
        day = pager.all_desc({"created[gte]": w.start, "created[lt]": w.end}, 100)
        pager.close()
        assert len(day) == len({c["id"] for c in day}) == gen.count(w.start, w.end)
        assert e.stats.charges_served == len(got) + 100 + len(day)


# -- data: determinism, ids, shape, time ----------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    params = {"limit": 100, "created[gte]": day_window(date(2024, 3, 9)).start}
    bodies = []
    for seed in (7, 7, 8):
        with StripeEmulator(small_cfg(seed=seed)) as e:
            status, _, body = call(e.base_url, "/v1/charges", params)
            assert status == 200
            bodies.append(body)
    assert bodies[0] == bodies[1]
    assert bodies[0] != bodies[2]


def test_ids_encode_day_and_index_and_sort_like_positions(gen: ChargeGenerator) -> None:
    tl = gen.timeline
    previous = ""
    for day in tl.days:
        w = day_window(day)
        for i, c in enumerate(gen.iter_charges(w.start, w.end)):
            assert re.fullmatch(r"ch_[0-9A-Za-z]{24}", c["id"])
            assert ChargeGenerator.decode_id(c["id"]) == (day, i)
            assert c["id"] > previous
            previous = c["id"]
    assert ChargeGenerator.decode_id("ch_bad") is None


def test_dst_days_have_charges_at_their_edges_and_transitions() -> None:
    for day, hours in ((SPRING, 23), (FALL, 25)):
        cfg = EmulatorConfig(
            seed=3, charges_per_day=2000, start_date=day - timedelta(1), end_date=day + timedelta(2),
            now=FROZEN_NOW,
        )  # fmt: skip
        w = day_window(day)
        assert w.seconds == hours * 3600
        (t,) = dst_transitions(w.start, w.end)
        with StripeEmulator(cfg) as e:
            for second in (w.start, w.end - 1, t - 1, t):
                status, _, body = call(e.base_url, "/v1/charges", {"created": second, "limit": 100})
                assert status == 200 and json.loads(body)["data"], (day, second)
            # Charges in the local 01:00-03:00 hours around the change, both sides.
            near = e.generator.count(t - 3600, t + 3600)
            assert near > 50
            # Adjacent day windows partition the range: nothing lost or doubled at midnight.
            whole = day_window(day - timedelta(1)).start, day_window(day + timedelta(1)).end
            parts = sum(
                e.generator.count(day_window(d).start, day_window(d).end)
                for d in (day - timedelta(1), day, day + timedelta(1))
            )
            assert e.generator.count(*whole) == parts


def test_charges_look_like_stripe_charges(gen: ChargeGenerator) -> None:
    w0, w1 = gen.timeline.first_second, gen.timeline.end_second
    charges = list(gen.iter_charges(w0, w1))
    assert len(charges) == gen.count(w0, w1) > 1000
    statuses: Counter[str] = Counter()
    for c in charges:
        assert CHARGE_FIELDS <= set(c) <= CHARGE_FIELDS | {"presentment_details"}
        assert c["object"] == "charge" and c["livemode"] is False
        assert set(c["payment_method_details"]["card"]) >= {
            "brand",
            "last4",
            "exp_month",
            "funding",
        }
        assert set(c["outcome"]) >= {"network_status", "risk_level", "type", "seller_message"}
        assert set(c["billing_details"]) == {"address", "email", "name", "phone", "tax_id"}
        if c["currency"] in ("jpy", "krw"):
            assert 500 <= c["amount"] <= 2_000_000
        else:
            assert 50 <= c["amount"] <= 500_000
        if c["status"] == "failed":
            assert not c["captured"] and c["amount_captured"] == 0 and not c["paid"]
            assert c["failure_code"] and c["failure_message"]
            kind = "failed"
        elif c["status"] == "pending":
            assert c["failure_code"] is None and not c["paid"]
            kind = "pending"
        elif not c["captured"]:
            assert c["amount_captured"] == 0 and c["paid"] and c["amount_refunded"] == 0
            kind = "uncaptured"
        else:
            assert 0 < c["amount_captured"] <= c["amount"] and c["paid"]
            kind = "partial" if c["amount_captured"] < c["amount"] else "captured"
        assert c["refunded"] == (0 < c["amount_refunded"] == c["amount_captured"])
        assert c["amount_refunded"] <= c["amount_captured"]
        statuses[kind] += 1
        statuses[
            "refund_full" if c["refunded"] else "refund_partial" if c["amount_refunded"] else ""
        ] += 1
        statuses["disputed"] += c["disputed"]
        statuses[c["currency"]] += 1
    for key in ("failed", "pending", "uncaptured", "partial", "captured", "refund_full",
                "refund_partial", "disputed", "usd", "eur", "gbp", "cad", "jpy", "krw"):  # fmt: skip
        assert statuses[key] > 0, key
    size = sum(len(json.dumps(c, separators=(",", ":"))) for c in charges) / len(charges)
    assert 1700 < size < 3000


def test_late_changes_follow_the_clock() -> None:
    day = date(2024, 3, 9)
    w = day_window(day)
    at_close = ChargeGenerator(small_cfg(now=w.end))
    later = ChargeGenerator(small_cfg(now=w.end + 73 * 3600))
    before = {c["id"]: c for c in at_close.iter_charges(w.start, w.end)}
    after = {c["id"]: c for c in later.iter_charges(w.start, w.end)}
    assert before.keys() == after.keys()
    changed = [i for i in before if before[i] != after[i]]
    assert changed, "re-pulling later gives newer versions"
    for i in changed:
        b, a = before[i], after[i]
        assert b["created"] == a["created"] and b["amount"] == a["amount"]
        assert (
            (b["status"] == "pending" and a["status"] in ("succeeded", "failed"))
            or (not b["captured"] and a["captured"] and a["amount_captured"] > 0)  # late capture
            or a["amount_refunded"] > b["amount_refunded"]
            or (a["disputed"] and not b["disputed"])
        )
    assert any(not before[i]["captured"] and after[i]["captured"] for i in changed)
    still_pending = [i for i in after if after[i]["status"] == "pending"]
    assert still_pending, "a small share stays pending forever"
    # Charges created after `now` do not exist yet, not even by id.
    mid = ChargeGenerator(small_cfg(now=w.start + 12 * 3600))
    assert 0 < mid.count(w.start, w.end) < at_close.count(w.start, w.end)
    last = max(before.values(), key=lambda c: (c["created"], c["id"]))
    assert mid.get(last["id"]) is None and at_close.get(last["id"]) == last


def test_volume_shape_weekends_and_nights() -> None:
    cfg = EmulatorConfig(seed=1, charges_per_day=15000, start_date=date(2024, 1, 1))
    days = [date(2024, 1, 1) + timedelta(i) for i in range(28)]
    counts = {d: day_count(cfg.seed, cfg.charges_per_day, d) for d in days}
    weekday = [n for d, n in counts.items() if d.weekday() < 5]
    weekend = [n for d, n in counts.items() if d.weekday() >= 5]
    assert max(weekend) < min(weekday)
    assert 0.9 * 15000 < sum(counts.values()) / 28 < 1.1 * 15000
    assert len(set(counts.values())) > 20  # jittered, not one number per weekday
    gen = ChargeGenerator(cfg)
    hours = Counter(
        datetime.fromtimestamp(t, UTC).astimezone(BUSINESS_TZ).hour
        for t in gen.timeline.timestamps(2)
    )
    trough = min(range(24), key=HOUR_WEIGHT.__getitem__)
    peak = max(range(24), key=HOUR_WEIGHT.__getitem__)
    assert hours[trough] * 4 < hours[peak]


def test_count_is_cheap_and_iteration_is_lazy() -> None:
    gen = ChargeGenerator(EmulatorConfig(now=FROZEN_NOW + 365 * 86400 * 2))
    tl = gen.timeline
    total = gen.count(tl.first_second, tl.end_second)  # 547 day formulas, not 7 M charges
    mid = gen.count(tl.first_second + 1000, tl.end_second - 1000)
    assert total == tl.total > 7_000_000 and mid < total
    it = gen.iter_charges(tl.first_second, tl.end_second)
    first = [next(it) for _ in range(3)]
    assert [c["created"] for c in first] == sorted(c["created"] for c in first)
    assert len(tl._cache) <= 2


# -- paging, as a property ----------------------------------------------------------------------


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_paging_any_window_any_limit_is_exactly_the_generator(
    emu: StripeEmulator, gen: ChargeGenerator, data: st.DataObject
) -> None:
    first, end = gen.timeline.first_second, gen.timeline.end_second
    gte = data.draw(st.integers(first - 5000, end), label="gte")
    lt = data.draw(st.integers(gte, min(end + 5000, gte + 86400)), label="lt")
    limit = data.draw(st.integers(1, 100), label="limit")
    if (gen.count(gte, lt) + 1) / limit > 300:  # keep each example to a few hundred requests
        limit = 100
    filters = {"created[gte]": gte, "created[lt]": lt}
    expected = [c["id"] for c in expected_desc(gen, gte, lt)]
    pager = Pager(emu.base_url)
    got = [c["id"] for c in pager.all_desc(filters, limit)]
    assert got == expected
    if len(expected) > 1:
        back = pager.all_backwards(filters, limit, expected[-1])
        assert [c["id"] for c in back] == expected[:-1]
    pager.close()


# -- faults -------------------------------------------------------------------------------------


def test_fail_first_n_requests_is_a_429_storm() -> None:
    with StripeEmulator(small_cfg(faults=FaultConfig(fail_first_n_requests=5))) as e:
        statuses = []
        for _ in range(8):
            status, headers, body = call(e.base_url, "/v1/charges")
            statuses.append(status)
            if status == 429:
                assert error_of(body)["type"] == "rate_limit_error"
                assert error_of(body)["code"] == "rate_limit"
                assert "Request rate limit exceeded" in error_of(body)["message"]
                assert "Stripe-Should-Retry" not in headers
        assert statuses == [429] * 5 + [200] * 3
        assert e.stats.rate_limited == 5 and e.stats.scheduled_failures == 5
        e.reset_stats()
        client = stripe.StripeClient(KEY, base_addresses={"api": e.base_url}, max_network_retries=3)
        with pytest.raises(stripe.RateLimitError):  # the SDK never retries a plain 429
            client.v1.charges.list()
        assert e.stats.requests == 1


def test_token_bucket_rate_limit() -> None:
    faults = FaultConfig(rate_limit_per_s=5, rate_limit_burst=5)
    with StripeEmulator(small_cfg(faults=faults)) as e:
        started = time.monotonic()
        statuses = Counter(call(e.base_url, "/v1/charges", {"limit": 1})[0] for _ in range(40))
        took = time.monotonic() - started
        # what the bucket allows in the time the calls took, however slow the machine: the
        # burst, then 5 a second (one more for a token refilled as the last call came)
        assert 5 <= statuses[200] <= 5 + 5 * took + 1, (statuses, took)
        assert statuses[429] == 40 - statuses[200] == e.stats.rate_limited
        time.sleep(0.5)  # tokens come back
        assert call(e.base_url, "/v1/charges", {"limit": 1})[0] == 200


def test_5xx_follow_the_seeded_schedule() -> None:
    faults = FaultConfig(error_5xx_rate=0.3)
    with StripeEmulator(small_cfg(faults=faults)) as e:
        expected = [e.fault_plan.decide(seq) for seq in range(40)]
        got = [call(e.base_url, "/v1/charges", {"limit": 1}) for _ in range(40)]
        for plan, (status, _, body) in zip(expected, got, strict=True):
            if plan.action == "error_5xx":
                assert status == plan.status in (500, 503)
                assert error_of(body)["type"] == "api_error"
            else:
                assert status == 200
        n = sum(p.action == "error_5xx" for p in expected)
        assert 0 < n < 40 and e.stats.errors_5xx == n


def test_resets_close_without_a_response() -> None:
    faults = FaultConfig(reset_rate=0.4)
    with StripeEmulator(small_cfg(faults=faults)) as e:
        expected = sum(e.fault_plan.decide(seq).action == "reset" for seq in range(30))
        resets = 0
        for _ in range(30):
            try:
                call(e.base_url, "/v1/charges", {"limit": 1})
            except (ConnectionError, http.client.RemoteDisconnected):
                resets += 1
        assert 0 < resets == expected == e.stats.resets


@pytest.mark.parametrize("mode", ["short_length", "abort"])
def test_truncated_bodies(mode: str) -> None:
    faults = FaultConfig(truncate_rate=0.5, truncate_mode=mode)  # type: ignore[arg-type]
    with StripeEmulator(small_cfg(faults=faults)) as e:
        expected = sum(e.fault_plan.decide(seq).truncate for seq in range(20))
        broken = 0
        for _ in range(20):
            try:
                status, _, body = call(e.base_url, "/v1/charges", {"limit": 20})
            except http.client.IncompleteRead:
                assert mode == "abort"
                broken += 1
                continue
            assert status == 200
            try:
                json.loads(body)
            except json.JSONDecodeError:
                assert mode == "short_length"
                broken += 1
        assert 0 < broken == expected == e.stats.truncations
        client = stripe.StripeClient(KEY, base_addresses={"api": e.base_url}, max_network_retries=0)
        with pytest.raises((stripe.APIError, stripe.APIConnectionError)):
            for _ in range(20):
                client.v1.charges.list(params={"limit": 20})


def test_latency() -> None:
    with StripeEmulator(small_cfg(faults=FaultConfig(latency_ms=150))) as e:
        t0 = time.perf_counter()
        assert call(e.base_url, "/v1/charges", {"limit": 1})[0] == 200
        assert time.perf_counter() - t0 >= 0.15


def test_malformed_charges_are_seeded_by_id_and_counted() -> None:
    faults = FaultConfig(malformed_rate=0.2)
    with StripeEmulator(small_cfg(faults=faults)) as e:
        w = day_window(date(2024, 3, 9))
        pager = Pager(e.base_url)
        served = pager.all_desc({"created[gte]": w.start, "created[lt]": w.end}, 100)
        again = pager.all_desc({"created[gte]": w.start, "created[lt]": w.end}, 100)
        pager.close()
        assert served == again  # same charge, same damage, on every pull
        clean = {c["id"]: c for c in e.generator.iter_charges(w.start, w.end)}
        kinds: Counter[str] = Counter()
        for c in served:
            kind = e.malformed_kind(c["id"])
            ok = clean[c["id"]]
            if kind is None:
                assert c == ok
                continue
            kinds[kind] += 1
            if kind == "missing_amount":
                assert "amount" not in c
            elif kind == "missing_currency":
                assert "currency" not in c
            elif kind == "amount_string":
                assert isinstance(c["amount"], str) and float(c["amount"]) * 100 == pytest.approx(
                    ok["amount"]
                )
            elif kind == "amount_object":
                assert isinstance(c["amount"], dict)
            elif kind == "unknown_status":
                assert c["status"] == "requires_review"
            else:
                assert kind == "unknown_field" and "risk_insights" in c
        assert set(kinds) == set(MALFORMED_KINDS)
        assert set(DRIFT_KINDS) < set(MALFORMED_KINDS)
        assert 0.1 < sum(kinds.values()) / len(served) < 0.3
        assert e.stats.malformed_served == 2 * sum(kinds.values())


# -- the command line -----------------------------------------------------------------------------


def test_cli_prints_the_base_url_and_serves() -> None:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "recon_assets.local.stripe_emulator", "--port", "0",
         "--seed", "5", "--charges-per-day", "100", "--start-date", "2024-01-01",
         "--end-date", "2024-01-03", "--fail-first-n-requests", "1"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url)
        assert call(base_url, "/v1/charges")[0] == 429
        status, _, body = call(base_url, "/v1/charges", {"limit": 100})
        assert status == 200 and len(json.loads(body)["data"]) == 100
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_recon_emulator_serves_the_pipelines_local_account(tmp_path: Path) -> None:
    """`recon emulator` (not the module's own defaults): the account the local runs read, to the
    key its help and its first lines name; SIGTERM stops it."""
    from recon_assets.config import ReconSettings
    from recon_assets.local.bootstrap import settings_emulator_config

    env = {"PATH": "/usr/bin:/bin", "RECON_HOME": str(tmp_path / "recon"),
           "RECON_EMULATOR_NOW": str(FROZEN_NOW), "RECON_START_DATE": "2024-12-28",
           "RECON_EMULATOR_CHARGES_PER_DAY": "30", "RECON_EMULATOR_SEED": "9"}  # fmt: skip
    recon = Path(sys.executable).with_name("recon")
    shown = subprocess.run([str(recon), "emulator", "--help"], env=env, capture_output=True,
                           text=True, timeout=60, check=True)  # fmt: skip
    assert shown.stdout.startswith("usage: recon emulator"), shown.stdout[:200]
    assert KEY in shown.stdout and "default: 30" in shown.stdout
    proc = subprocess.Popen([str(recon), "emulator", "--port", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stderr is not None
        base_url = proc.stdout.readline().strip()
        assert KEY in proc.stderr.readline()
        served = Pager(base_url).all_desc({}, 100)
        local = StripeEmulator(
            settings_emulator_config(ReconSettings.from_env(env)), port=0
        ).start()
        try:
            expected = Pager(local.base_url).all_desc({}, 100)
        finally:
            local.stop()
        assert served == expected and len(served) >= 4 * 30 * 0.5
        assert min(c["created"] for c in served) >= int(
            datetime(2024, 12, 28, tzinfo=BUSINESS_TZ).timestamp()
        )
        proc.terminate()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stop_hangs_up_on_keep_alive_clients() -> None:
    e = StripeEmulator(small_cfg()).start()
    client = stripe.StripeClient(KEY, base_addresses={"api": e.base_url}, max_network_retries=0)
    assert len(client.v1.charges.list().data) == 10
    e.stop()
    with pytest.raises(stripe.APIConnectionError):
        client.v1.charges.list()
    e.stop()  # idempotent


def _ignore_and_block_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def test_cli_stops_on_sigterm_even_when_its_parent_ignores_and_blocks_it() -> None:
    """Both survive exec; the CLI resets them, so `terminate()` always stops it (a CI run
    once waited on an emulator that would not stop)."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "recon_assets.local.stripe_emulator", "--port", "0",
         "--charges-per-day", "10", "--start-date", "2024-01-01", "--end-date", "2024-01-02"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        preexec_fn=_ignore_and_block_sigterm,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert call(base_url, "/v1/charges")[0] == 200
        proc.terminate()
        assert proc.wait(timeout=60) == 0  # stopped by its handler, like Ctrl-C
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


WARM_CFG = {"seed": 11, "charges_per_day": 60, "start_date": date(2024, 12, 18),
            "end_date": date(2025, 1, 3), "now": FROZEN_NOW}  # fmt: skip
"""An account whose last days before its frozen now hold charges, refunds, disputes, payouts
and events: what `recon emulator` derives before it serves."""


@pytest.fixture(scope="module")
def warmed() -> StripeEmulator:
    return StripeEmulator(EmulatorConfig(**WARM_CFG)).warm(7)  # type: ignore[arg-type]


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=st.integers(min_value=0, max_value=8 * 86400),
    width=st.integers(min_value=1, max_value=3 * 86400),
)
def test_a_warmed_emulator_serves_what_a_cold_one_does(
    warmed: StripeEmulator, start: int, width: int
) -> None:
    """Deriving the last days before serving (`recon emulator --warm-days`) changes when the
    work is done, never what is served: every listing of any window (across the warmed days'
    edges, inside them and before them) is byte for byte a fresh emulator's."""
    cold = StripeEmulator(EmulatorConfig(**WARM_CFG)).app  # type: ignore[arg-type]
    lo = FROZEN_NOW - 9 * 86400 + start
    query = f"limit=100&created%5Bgte%5D={lo}&created%5Blt%5D={lo + width}"
    for listing in ("balance_transactions", "payouts", "disputes", "refunds", "events"):
        got = b"".join(getattr(warmed.app, f"_list_{listing}")(query)[0])
        want = b"".join(getattr(cold, f"_list_{listing}")(query)[0])
        assert got == want, listing
    assert warmed.app.balance.in_window(FROZEN_NOW - 3 * 86400, FROZEN_NOW, FROZEN_NOW)
