"""The HTTP face of the emulator: Stripe's `/v1/charges` list and retrieve, its errors, its faults.

stdlib `ThreadingHTTPServer` with HTTP/1.1 keep-alive. Each response is assembled as one byte
string and written with one `send`, so there is no Nagle/delayed-ACK stall between headers and
body. A list body is sent as the pre-rendered charge texts of `ChargeGenerator`, one buffer each,
through a single `sendmsg`: no JSON encoding on the success path, and no 250 KB concatenation
(allocations that size go to mmap and fault their pages in on every request, which cost more than
rendering the charges on the VM this was measured on).
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import re
import socket
import struct
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from recon_assets.local.stripe_emulator.balance import BALANCE_TRANSACTIONS_URL, BalanceBook
from recon_assets.local.stripe_emulator.charges import ChargeGenerator
from recon_assets.local.stripe_emulator.config import API_VERSION, EmulatorConfig
from recon_assets.local.stripe_emulator.disputes import DISPUTES_URL
from recon_assets.local.stripe_emulator.events import EVENTS_URL, EventLog
from recon_assets.local.stripe_emulator.faults import (
    Counters,
    EmulatorStats,
    FaultPlan,
    RequestFault,
    TokenBucket,
    malform,
    malformed_kind,
)
from recon_assets.local.stripe_emulator.payouts import PAYOUTS_URL, PayoutBook
from recon_assets.local.stripe_emulator.refunds import REFUNDS_URL, RefundBook
from recon_assets.timewindows import business_day_of, day_window

LIST_URL = "/v1/charges"
_HAS_MORE = b'],"has_more":true,"url":"/v1/charges"}'
_NO_MORE = b'],"has_more":false,"url":"/v1/charges"}'
_IOV_MAX = 512
_LIST_PARAMS = frozenset(
    {"limit", "starting_after", "ending_before", "created"}
    | {f"created[{op}]" for op in ("gt", "gte", "lt", "lte")}
)
_EVENT_PARAMS = _LIST_PARAMS | {"type", "types[]"}
_REFUND_PARAMS = _LIST_PARAMS | {"charge"}
_DISPUTE_PARAMS = _LIST_PARAMS | {"charge"}
_BALANCE_PARAMS = _LIST_PARAMS | {"payout"}
_PAYOUT_PARAMS = (
    _LIST_PARAMS
    | {"status", "arrival_date"}
    | {f"arrival_date[{op}]" for op in ("gt", "gte", "lt", "lte")}
)

_TYPES_ITEM = re.compile(r"^types\[\d*\]$")


class ApiError(Exception):
    """An error response in Stripe's shape."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, object] = {"type": type_, "message": message}
        if code:
            self.body["code"] = code
            self.body["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param:
            self.body["param"] = param

    def payload(self) -> bytes:
        return json.dumps({"error": self.body}, indent=2).encode()


def mask_key(key: str) -> str:
    """Stripe's way of naming a wrong key without leaking it: `sk_test_****abcd`."""
    prefix = ""
    for p in ("sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "pk_live_"):
        if key.startswith(p):
            prefix = p
            break
    rest = key[len(prefix) :]
    shown = rest[-4:] if len(rest) >= 12 else ""
    return prefix + "*" * (len(rest) - len(shown)) + shown


def _send_all(sock: socket.socket, buffers: list[bytes]) -> None:
    """`sendmsg` until every buffer is out (it may stop part-way, like `send`)."""
    views = [memoryview(b) for b in buffers if b]
    i = 0
    while i < len(views):
        sent = sock.sendmsg(views[i : i + _IOV_MAX])
        while sent:
            n = len(views[i])
            if sent >= n:
                sent -= n
                i += 1
            else:
                views[i] = views[i][sent:]
                sent = 0


def _int_param(name: str, raw: str) -> int:
    try:
        if not raw.lstrip("-").isdigit():
            raise ValueError
        return int(raw)
    except ValueError:
        raise ApiError(
            400, "invalid_request_error", f"Invalid integer: {raw}", param=name
        ) from None


def _paging(params: dict[str, str]) -> tuple[int, int | None, int | None, str | None, str | None]:
    """A list call's (limit, created gte, created lt, starting_after, ending_before), checked as
    Stripe checks them."""
    limit = 10
    if "limit" in params:
        limit = _int_param("limit", params["limit"])
        if limit < 1:
            raise ApiError(
                400,
                "invalid_request_error",
                "This value must be greater than or equal to 1.",
                param="limit",
            )
        if limit > 100:
            raise ApiError(
                400,
                "invalid_request_error",
                "This value must be less than or equal to 100.",
                param="limit",
            )
    gte, lt = _range(params, "created")
    after, before = params.get("starting_after"), params.get("ending_before")
    if after is not None and before is not None:
        raise ApiError(
            400,
            "invalid_request_error",
            "You may only specify one of these parameters: ending_before, starting_after.",
            param="ending_before",
        )
    return limit, gte, lt, after, before


def _range(params: dict[str, str], field: str) -> tuple[int | None, int | None]:
    """Stripe's range filter on `field` (`field`, `field[gt]`, `[gte]`, `[lt]`, `[lte]`) as
    half-open bounds [gte, lt), None where unbounded."""
    gte: int | None = None
    lt: int | None = None
    for name, raw in params.items():
        if name == field or name.startswith(field + "["):
            v = _int_param(name, raw)
            op = name[len(field) :]
            if op in ("", "[gt]", "[gte]"):
                lo = {"": v, "[gt]": v + 1, "[gte]": v}[op]
                gte = lo if gte is None else max(gte, lo)
            if op in ("", "[lt]", "[lte]"):
                hi = {"": v + 1, "[lt]": v, "[lte]": v + 1}[op]
                lt = hi if lt is None else min(lt, hi)
    return gte, lt


_T = TypeVar("_T")


def _refuse_unknown(params: Iterable[str], allowed: frozenset[str]) -> None:
    """Stripe refuses a list call's first parameter it does not know."""
    for name in params:
        if name not in allowed:
            raise ApiError(
                400, "invalid_request_error", f"Received unknown parameter: {name}", param=name
            )


def _refuse_params(query: str) -> None:
    """A retrieve takes no parameter: Stripe refuses the first one it gets."""
    for name, _ in parse_qsl(query, keep_blank_values=True):
        raise ApiError(
            400, "invalid_request_error", f"Received unknown parameter: {name}", param=name
        )


def _page_by_id(
    items: list[object],
    index: dict[str, int],
    limit: int,
    after: str | None,
    before: str | None,
    noun: str,
) -> tuple[list[object], bool]:
    """One page of a newest-first listing whose ids sit at `index`, by Stripe's id cursors:
    `starting_after` the page after the cursor, `ending_before` the page just newer than it;
    an id not in the listing is Stripe's 400 `No such <noun>`."""
    cursor = after if after is not None else before
    if cursor is not None and cursor not in index:
        raise ApiError(
            400, "invalid_request_error", f"No such {noun}: '{cursor}'", code="resource_missing",
            param="starting_after" if after is not None else "ending_before",
        )  # fmt: skip
    if before is not None:
        end = index[before]
        return items[max(0, end - limit) : end], end - limit > 0
    begin = 0 if after is None else index[after] + 1
    return items[begin : begin + limit], begin + limit < len(items)


def _list_body(texts: list[str], has_more: bool, url: str) -> list[bytes]:
    chunks = [b'{"object":"list","data":[']
    for text in texts:
        chunks += (text.encode(), b",")
    if texts:
        chunks.pop()
    more = b"true" if has_more else b"false"
    chunks.append(b'],"has_more":' + more + b',"url":"' + url.encode() + b'"}')
    return chunks


class _App:
    """Request handling, independent of the socket plumbing."""

    def __init__(self, cfg: EmulatorConfig) -> None:
        self.cfg = cfg
        self.gen = ChargeGenerator(cfg)
        self.refunds = RefundBook(self.gen)
        self.balance = BalanceBook(self.gen, self.refunds)
        self.payouts = PayoutBook(self.balance)
        self.disputes = self.balance.disputes
        self.events = EventLog(self.gen, self.refunds, self.payouts, self.disputes)
        self.plan = FaultPlan(cfg.seed, cfg.faults)
        self.counters = Counters()
        f = cfg.faults
        self.bucket = (
            TokenBucket(f.rate_limit_per_s, f.rate_limit_burst or max(1.0, f.rate_limit_per_s))
            if f.rate_limit_per_s
            else None
        )
        self._key = cfg.api_key.encode()

    def warm(self, days: Sequence[date]) -> None:
        """Derive the balance transactions, payouts, disputes, refunds and events of `days`
        (US-Eastern) now rather than at their first request. Stripe answers a list at once
        whatever came before; this emulator derives them lazily (a second or more for the first
        page after a start), which a run against a fresh emulator would otherwise count as
        its own. What it serves is the same either way (tested)."""
        now = self.gen.now()
        for d in days:
            w = day_window(d)
            self.balance.in_window(w.start, w.end, now)
            self.payouts.listing((w.start, w.end), None, None, now)
            self.disputes.opened_in(w.start, w.end, now)
            self.refunds.in_window(w.start, w.end, now)
            self.events.listing(w.start, w.end, now, None, [])

    # -- entry point ----------------------------------------------------------------------------

    def handle(self, h: _Handler) -> None:
        seq = self.counters.next_seq()
        faults = self.cfg.faults
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        plan = self.plan.decide(seq)
        if plan.action == "scheduled":
            self.counters.add(scheduled_failures=1)
            self._send_error(h, plan, self._fault_error(plan.status))
            return
        if self.bucket is not None and not self.bucket.take():
            self._send_error(h, plan, self._fault_error(429))
            return
        if plan.action == "reset":
            self.counters.add(resets=1)
            self._reset(h)
            return
        if plan.action == "error_5xx":
            self._send_error(h, plan, self._fault_error(plan.status))
            return
        try:
            chunks, n_charges, n_malformed = self._route(h)
        except ApiError as err:
            self._send_error(h, plan, err)
            return
        except Exception:  # an emulator bug: say so loudly, answer like Stripe's own 500
            traceback.print_exc()
            self._send_error(h, plan, self._fault_error(500))
            return
        if plan.truncate:
            self.counters.add(truncations=1)
            self._send_truncated(h, plan, b"".join(chunks))
            return
        # Counted before the write, so a client that has read its response sees it counted.
        self.counters.add(responses_200=1, charges_served=n_charges, malformed_served=n_malformed)
        self._send(h, plan, 200, chunks)

    # -- routing --------------------------------------------------------------------------------

    def _route(self, h: _Handler) -> tuple[list[bytes], int, int]:
        """(body chunks, charges in it, malformed charges in it), or raises ApiError."""
        self._authenticate(h.headers.get("Authorization"))
        url = urlsplit(h.path)
        path = url.path.rstrip("/") if url.path != "/" else url.path
        if h.command == "GET" and path == LIST_URL:
            return self._list(url.query)
        if h.command == "GET" and path == EVENTS_URL:
            return self._list_events(url.query)
        if h.command == "GET" and path == REFUNDS_URL:
            return self._list_refunds(url.query)
        if h.command == "GET" and path == BALANCE_TRANSACTIONS_URL:
            return self._list_balance_transactions(url.query)
        if (
            h.command == "GET"
            and path.startswith(BALANCE_TRANSACTIONS_URL + "/")
            and path.count("/") == 3
        ):
            return self._by_id(
                "balance transaction", unquote(path[len(BALANCE_TRANSACTIONS_URL) + 1 :]),
                url.query, self.balance.get, lambda t, now: t.render(now),
            )  # fmt: skip
        if h.command == "GET" and path == PAYOUTS_URL:
            return self._list_payouts(url.query)
        if h.command == "GET" and path.startswith(PAYOUTS_URL + "/") and path.count("/") == 3:
            return self._by_id("payout", unquote(path[len(PAYOUTS_URL) + 1 :]), url.query,
                               self.payouts.get, lambda p, now: p.render(now))  # fmt: skip
        if h.command == "GET" and path == DISPUTES_URL:
            return self._list_disputes(url.query)
        if h.command == "GET" and path.startswith(DISPUTES_URL + "/") and path.count("/") == 3:
            return self._by_id("dispute", unquote(path[len(DISPUTES_URL) + 1 :]), url.query,
                               self.disputes.get, lambda d, now: d.render(now))  # fmt: skip
        if h.command == "GET" and path.startswith(REFUNDS_URL + "/") and path.count("/") == 3:
            return self._by_id("refund", unquote(path[len(REFUNDS_URL) + 1 :]), url.query,
                               self.refunds.get, self.refunds.render)  # fmt: skip
        if h.command == "GET" and path.startswith(LIST_URL + "/") and path.count("/") == 3:
            return self._retrieve(unquote(path[len(LIST_URL) + 1 :]), url.query)
        raise ApiError(
            404,
            "invalid_request_error",
            f"Unrecognized request URL ({h.command}: {url.path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
        )

    def _authenticate(self, header: str | None) -> None:
        if not header:
            raise ApiError(
                401,
                "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
                "or we can help at https://support.stripe.com/.",
            )
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        key = ""
        if scheme.lower() == "bearer":
            key = value
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(value, validate=True).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not hmac.compare_digest(key.encode(), self._key):
            shown = mask_key(key) if key else "(empty)"
            raise ApiError(
                401,
                "invalid_request_error",
                f"Invalid API Key provided: {shown}",
            )

    def _list(self, query: str) -> tuple[list[bytes], int, int]:
        params = dict(parse_qsl(query, keep_blank_values=True))
        _refuse_unknown(params, _LIST_PARAMS)
        limit, gte, lt, after, before = _paging(params)
        gen = self.gen
        now = gen.now()
        lo, hi = gen.bounds(gte, lt, now)
        if before is not None:
            p = self._cursor("ending_before", before, now)
            begin = max(lo, p + 1)
            end = max(begin, min(hi, begin + limit))
            has_more = end < hi
        else:
            top = hi if after is None else min(hi, self._cursor("starting_after", after, now))
            end = max(top, lo)
            begin = max(lo, end - limit)
            has_more = begin > lo
        texts = gen.render_span(begin, end, now)
        texts.reverse()
        n_malformed = self._malform(texts)
        chunks = [b'{"object":"list","data":[']
        for text in texts:
            chunks += (text.encode(), b",")
        if texts:
            chunks.pop()
        chunks.append(_HAS_MORE if has_more else _NO_MORE)
        return chunks, len(texts), n_malformed

    def _list_events(self, query: str) -> tuple[list[bytes], int, int]:
        pairs = parse_qsl(query, keep_blank_values=True)
        types = [v for k, v in pairs if _TYPES_ITEM.match(k)]
        params = {k: v for k, v in pairs if not _TYPES_ITEM.match(k)}
        _refuse_unknown(params, _EVENT_PARAMS)
        limit, gte, lt, after, before = _paging(params)
        listing = self.events.listing(gte, lt, self.gen.now(), params.get("type"), types)
        page, has_more = _page_by_id(listing.events, listing.index, limit, after, before, "event")
        texts = [self.events.render(e) for e in page]
        return _list_body(texts, has_more, EVENTS_URL), 0, 0

    def _list_refunds(self, query: str) -> tuple[list[bytes], int, int]:
        """`GET /v1/refunds`: `created` filters, `charge`, Stripe's paging (newest first, by id
        cursors). Stripe's `payment_intent` filter is not emulated (recon does not use it)."""
        params = dict(parse_qsl(query, keep_blank_values=True))
        _refuse_unknown(params, _REFUND_PARAMS)
        limit, gte, lt, after, before = _paging(params)
        now = self.gen.now()
        book = self.refunds
        owner = params.get("charge")
        if owner is not None:
            g = self.gen.position_of(owner, now)
            found = [] if g is None else book.of_charge(g, now)
            lo, hi = gte if gte is not None else 0, lt if lt is not None else now + 1
            refunds = sorted(
                (r for r in found if lo <= r.created < hi),
                key=lambda r: (r.created, book.id_of(r)),
                reverse=True,
            )
        else:
            refunds = book.in_window(gte if gte is not None else 0,
                                     lt if lt is not None else now + 1, now)  # fmt: skip
        index = {book.id_of(r): i for i, r in enumerate(refunds)}
        page, has_more = _page_by_id(refunds, index, limit, after, before, "refund")
        texts = [book.render(r, now) for r in page]
        return _list_body(texts, has_more, REFUNDS_URL), 0, 0

    def _list_disputes(self, query: str) -> tuple[list[bytes], int, int]:
        """`GET /v1/disputes`: `created` filters, `charge`, Stripe's paging (newest first, by id
        cursors). Stripe's `payment_intent` filter is not emulated (recon does not use it)."""
        params = dict(parse_qsl(query, keep_blank_values=True))
        _refuse_unknown(params, _DISPUTE_PARAMS)
        limit, gte, lt, after, before = _paging(params)
        now = self.gen.now()
        lo, hi = gte if gte is not None else 0, lt if lt is not None else now + 1
        owner = params.get("charge")
        if owner is not None:
            g = self.gen.position_of(owner, now)
            d = None if g is None else self.disputes.of_charge(g, now)
            disputes = [d] if d is not None and lo <= d.created < hi else []
        else:
            disputes = self.disputes.opened_in(lo, hi, now)
        index = {d.id: i for i, d in enumerate(disputes)}
        page, has_more = _page_by_id(disputes, index, limit, after, before, "dispute")
        return _list_body([d.render(now) for d in page], has_more, DISPUTES_URL), 0, 0

    def _list_balance_transactions(self, query: str) -> tuple[list[bytes], int, int]:
        """`GET /v1/balance_transactions`: `created` filters, `payout` (the transactions an
        automatic payout swept, and its own) and Stripe's paging (newest first, by id cursors).
        Stripe's `currency`, `type` and `source` filters are not emulated (a request naming one
        is refused, not answered wrongly)."""
        params = dict(parse_qsl(query, keep_blank_values=True))
        _refuse_unknown(params, _BALANCE_PARAMS)
        limit, gte, lt, after, before = _paging(params)
        now = self.gen.now()
        lo, hi = gte if gte is not None else 0, lt if lt is not None else now + 1
        if "payout" in params:
            p = self.payouts.get(params["payout"], now)
            if p is None:
                raise ApiError(
                    400, "invalid_request_error", f"No such payout: '{params['payout']}'",
                    code="resource_missing", param="payout",
                )  # fmt: skip
            swept = self.payouts.swept(p.day, p.currency, now) + p.transactions(now)[:1]
            txns = sorted((t for t in swept if lo <= t.created < hi),
                          key=lambda t: (t.created, t.id), reverse=True)  # fmt: skip
        else:
            txns = self.balance.in_window(lo, hi, now)
        index = {t.id: i for i, t in enumerate(txns)}
        page, has_more = _page_by_id(txns, index, limit, after, before, "balance_transaction")
        texts = [t.render(now) for t in page]
        return _list_body(texts, has_more, BALANCE_TRANSACTIONS_URL), 0, 0

    def _list_payouts(self, query: str) -> tuple[list[bytes], int, int]:
        """`GET /v1/payouts`: `created` and `arrival_date` filters, `status`, Stripe's paging
        (newest first, by id cursors). `destination` is not emulated (one bank account)."""
        params = dict(parse_qsl(query, keep_blank_values=True))
        _refuse_unknown(params, _PAYOUT_PARAMS)
        limit, gte, lt, after, before = _paging(params)
        a_gte, a_lt = _range(params, "arrival_date")
        now = self.gen.now()
        created = None if gte is None and lt is None else (gte or 0, lt or now + 1)
        arrival = None if a_gte is None and a_lt is None else (a_gte or 0, a_lt or 2**62)
        payouts = self.payouts.listing(created, arrival, params.get("status"), now)
        index = {p.id: i for i, p in enumerate(payouts)}
        page, has_more = _page_by_id(payouts, index, limit, after, before, "payout")
        texts = [p.render(now) for p in page]
        return _list_body(texts, has_more, PAYOUTS_URL), 0, 0

    def _by_id(
        self,
        noun: str,
        oid: str,
        query: str,
        get: Callable[[str, int], Any],
        render: Callable[[Any, int], str],
    ) -> tuple[list[bytes], int, int]:
        """`GET /v1/<objects>/{id}` of an object that is not a charge: Stripe's 404 in its shape
        when the account has no such object at the request's `now`."""
        _refuse_params(query)
        now = self.gen.now()
        found = get(oid, now)
        if found is None:
            raise ApiError(
                404, "invalid_request_error", f"No such {noun}: '{oid}'",
                code="resource_missing", param="id",
            )  # fmt: skip
        return [render(found, now).encode()], 0, 0

    def _cursor(self, param: str, charge_id: str, now: int) -> int:
        g = self.gen.position_of(charge_id, now)
        if g is None:
            raise ApiError(
                400,
                "invalid_request_error",
                f"No such charge: '{charge_id}'",
                code="resource_missing",
                param=param,
            )
        return g

    def _retrieve(self, charge_id: str, query: str) -> tuple[list[bytes], int, int]:
        _refuse_params(query)
        now = self.gen.now()
        g = self.gen.position_of(charge_id, now)
        if g is None:
            raise ApiError(
                404,
                "invalid_request_error",
                f"No such charge: '{charge_id}'",
                code="resource_missing",
                param="id",
            )
        texts = self.gen.render_span(g, g + 1, now)
        n_malformed = self._malform(texts)
        return [texts[0].encode()], 1, n_malformed

    def _malform(self, texts: list[str]) -> int:
        faults = self.cfg.faults
        if faults.malformed_rate <= 0:
            return 0
        n = 0
        seed = self.cfg.seed
        for j, text in enumerate(texts):
            kind = malformed_kind(seed, faults, text[7:34])  # '{"id":"' + ch_ + 24 characters
            if kind is not None:
                texts[j] = malform(text, kind)
                n += 1
        return n

    # -- responses --------------------------------------------------------------------------------

    @staticmethod
    def _fault_error(status: int) -> ApiError:
        if status == 429:
            return ApiError(
                429,
                "rate_limit_error",
                "Request rate limit exceeded. Learn more about rate limits here "
                "https://stripe.com/docs/rate-limits.",
                code="rate_limit",
            )
        return ApiError(
            status,
            "api_error",
            "An unknown error occurred while processing your request. Please try again.",
        )

    def _send_error(self, h: _Handler, plan: RequestFault, err: ApiError) -> None:
        status = err.status
        if status == 429:
            self.counters.add(rate_limited=1)
        elif status >= 500:
            self.counters.add(errors_5xx=1)
        elif status == 401:
            self.counters.add(unauthorized=1)
        elif status == 404:
            self.counters.add(not_found=1)
        else:
            self.counters.add(bad_requests=1)
        extra = 'WWW-Authenticate: Basic realm="Stripe"\r\n' if status == 401 else ""
        self._send(h, plan, status, [err.payload()], extra=extra)

    def _head(self, h: _Handler, plan: RequestFault, status: int, length: int, extra: str) -> bytes:
        version = h.headers.get("Stripe-Version") or API_VERSION
        return (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            "Server: nginx\r\n"
            f"Date: {formatdate(usegmt=True)}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {length}\r\n"
            f"Connection: {'close' if h.close_connection else 'keep-alive'}\r\n"
            "Access-Control-Allow-Credentials: true\r\n"
            "Cache-Control: no-cache, no-store\r\n"
            f"Request-Id: {plan.request_id}\r\n"
            f"Stripe-Version: {version}\r\n"
            f"{extra}\r\n"
        ).encode("latin-1")

    def _send(
        self, h: _Handler, plan: RequestFault, status: int, chunks: list[bytes], extra: str = ""
    ) -> None:
        length = sum(map(len, chunks))
        _send_all(h.connection, [self._head(h, plan, status, length, extra), *chunks])

    def _send_truncated(self, h: _Handler, plan: RequestFault, body: bytes) -> None:
        cut = body[: max(1, int(len(body) * plan.cut_fraction))]
        h.close_connection = True
        announced = len(body) if plan.truncate_abort else len(cut)
        h.wfile.write(self._head(h, plan, 200, announced, "") + cut)

    @staticmethod
    def _reset(h: _Handler) -> None:
        """Close with RST and no response: what a dropped connection looks like to a client."""
        h.close_connection = True
        try:
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
        except OSError:
            pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 300  # idle keep-alive connections give their thread back eventually
    server: _Server

    def do_GET(self) -> None:
        self.server.app.handle(self)

    def do_POST(self) -> None:
        self._drain()
        self.server.app.handle(self)

    do_DELETE = do_POST

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a benchmark's access log would cost more than the benchmark."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: _App) -> None:
        self.app = app
        self._live: set[socket.socket] = set()
        self._live_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self._live_lock:
            self._live.add(request)
        super().process_request(request, client_address)  # type: ignore[arg-type]

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._live_lock:
            self._live.discard(request)
        super().shutdown_request(request)

    def close_live_connections(self) -> None:
        """Hang up on keep-alive clients, so a stopped emulator really stops answering."""
        with self._live_lock:
            live = list(self._live)
        for sock in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-response is normal here (and faults cause it on purpose)."""


class StripeEmulator:
    """A local Stripe for the demo, tests and benchmarks: `with StripeEmulator(cfg) as emu: ...`."""

    def __init__(
        self, cfg: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.cfg = cfg or EmulatorConfig()
        self.host = host
        self._requested_port = port
        self._app: _App | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def app(self) -> _App:
        if self._app is None:
            self._app = _App(self.cfg)
        return self._app

    @property
    def generator(self) -> ChargeGenerator:
        """The charges behind the server (same config, same content)."""
        return self.app.gen

    @property
    def fault_plan(self) -> FaultPlan:
        return self.app.plan

    def start(self) -> StripeEmulator:
        if self._thread is not None:
            return self
        self.bind()
        assert self._server is not None
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"stripe-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_live_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def warm(self, days: int) -> StripeEmulator:
        """Derive the last `days` US-Eastern days (through the emulator's today) before serving,
        as `recon emulator` does for the runs it stands in Stripe for (`_App.warm`)."""
        if days > 0:
            today = business_day_of(self.app.gen.now())
            self.app.warm([today - timedelta(days=i) for i in range(days - 1, -1, -1)])
        return self

    def bind(self) -> StripeEmulator:
        """Open the listening socket without serving yet (so `base_url` is known)."""
        if self._server is None:
            self._server = _Server((self.host, self._requested_port), self.app)
        return self

    def serve_forever(self) -> None:
        """Serve on the calling thread (the CLI) until interrupted."""
        self.bind()
        assert self._server is not None
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StripeEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def stats(self) -> EmulatorStats:
        return self.app.counters.snapshot()

    def reset_stats(self) -> None:
        """Zero the counters and restart request numbering, so the fault schedule starts over."""
        self.app.counters.reset()

    def malformed_kind(self, charge_id: str) -> str | None:
        return malformed_kind(self.cfg.seed, self.cfg.faults, charge_id)
