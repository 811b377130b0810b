"""Listing charges through the `stripe` SDK, with our own retries and rate limiting.

Built on `stripe.StripeClient` with a pinned API version (so a Stripe-side default change cannot
alter the objects we parse) and `base_addresses` from `STRIPE_API_BASE` (the emulator locally).
The SDK is told to retry nothing: it never retries a plain 429 and honours no Retry-After, so
every retry decision is made here, where the shared rate limiter and the counters live.
`raw_request` is used so StripeObjects (about 1,000 charges/s) never get built.

The body of a successful response is parsed once, here, not by the SDK: `raw_request` still
parses every body into OrderedDicts (`object_pairs_hook`) and formats all of it into a debug log
line whether or not anything logs at debug, which together cost about four times our own
`json.loads` plus strict validation of a 100-charge page (measured in bench_stripe_pull.py).
A charges page is decoded straight from its bytes into validated charges (`decode_charge_page`,
msgspec) when the whole page is clean, which is nearly always; any other body is parsed with
`orjson` where it reads a body exactly as `json.loads` would, `json` otherwise (see `_loads`), so
what a body means does not depend on the parser.
`_BodyHandoffClient`, the SDK's own `RequestsClient` underneath, keeps a 2xx body for the
calling thread and gives the SDK `{}` in its place. Requests, auth, the pinned version and every
non-2xx response (the SDK's typed errors) still go through the SDK unchanged.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
import orjson
import requests
import stripe

from recon_assets.config import STRIPE_DOCUMENTED_RATE_PER_S
from recon_assets.stripe.models import CLEAN_CHARGE_PAGE
from recon_assets.stripe.ratelimit import RateLimiter
from recon_assets.stripe.sources import CHARGES, StripeSource
from recon_assets.timewindows import Window

STRIPE_API_VERSION = "2026-10-28.endive"
_ID = re.compile(r"^[A-Za-z0-9_]{1,255}$")
PAGE_LIMIT = 100
_T = TypeVar("_T")


class StripeFetchError(RuntimeError):
    """The pull cannot go on: retry budget spent, or a request Stripe will never accept."""


class StripeAuthError(StripeFetchError):
    """The API key was refused. The message never contains the key."""


@dataclass
class FetchCounters:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    connection_errors: int = 0
    bad_bodies: int = 0
    not_found: int = 0
    bytes_received: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for k, v in deltas.items():
                setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited_429": self.rate_limited,
            "server_errors_5xx": self.server_errors,
            "connection_errors": self.connection_errors,
            "bad_bodies": self.bad_bodies,
            "not_found_404": self.not_found,
            "bytes_received": self.bytes_received,
        }


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 8
    base_s: float = 0.5
    cap_s: float = 20.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with full jitter (attempt counts from 1)."""
        return rng.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Response:
    """A successful response: its bytes and those bytes parsed once (plain dicts and lists)."""

    content: bytes
    data: dict[str, Any]


class _BodyHandoffClient(stripe.RequestsClient):
    """`stripe.RequestsClient` that hands a 2xx body to the caller instead of to the SDK.

    The SDK sees `{}` for a success (it has nothing to decode or log), and the real bytes wait in
    a thread-local slot until `take_body` in the same thread, right after `raw_request` returns:
    the SDK calls its HTTP client synchronously in the caller's thread. Other statuses pass
    through, so the SDK still raises `RateLimitError`, `AuthenticationError` and the rest.
    """

    _PLACEHOLDER = b"{}"

    def __init__(self, *, api_base: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._bodies = threading.local()
        # the proxies the environment gives for the one host this client talks to, read once
        self._env_proxies = requests.utils.get_environ_proxies(api_base)

    def _new_session(self) -> requests.Session:
        """A session that does not consult the environment on every request.

        With `trust_env` on, requests looks for a netrc file, re-reads the proxy variables and
        re-evaluates NO_PROXY for each request (about 8 % of the pull's GIL time, py-spy), and
        a netrc entry for the API host would replace the Stripe key with its Basic auth. The
        proxies are the environment's, read once for the API host, so a proxy still applies.
        """
        session = requests.Session()
        session.trust_env = False
        session.proxies.update(self._env_proxies)
        return session

    def request(
        self, method: str, url: str, headers: Any, post_data: Any = None
    ) -> tuple[bytes, int, Any]:
        self._bodies.body = None  # a failed request must never leave an older body behind
        # the SDK keeps one session per thread in `_thread_local.session`; ours, made first
        if getattr(self._thread_local, "session", None) is None:
            self._thread_local.session = self._new_session()
        content, status, rheaders = super().request(method, url, headers, post_data)
        if 200 <= status < 300:
            self._bodies.body = content
            return self._PLACEHOLDER, status, rheaders
        return content, status, rheaders

    def take_body(self) -> bytes:
        body: bytes | None = getattr(self._bodies, "body", None)
        if body is None:
            raise stripe.APIError("no response body was received", http_status=200)
        self._bodies.body = None
        return body


_DIGIT_MAP = bytes(0x30 if 0x30 <= b <= 0x39 else 0x78 for b in range(256))
_LONG_NUMBER = b"0" * 19


def _loads(content: bytes, body: str) -> Any:
    """`json.loads(body)`'s result, from orjson where it gives the same (about 1.5x faster on
    a page, the check included).

    orjson refuses a few bodies json reads (a lone surrogate escape, NaN, a number beyond a
    double's range): those get json. It also reads an integer beyond 64 bits as a float where
    json keeps it exact, so a body with any run of 19 digits (ids and timestamps have fewer)
    gets json too; finding one is a `translate` and a substring search, not a regex.
    """
    if _LONG_NUMBER not in content.translate(_DIGIT_MAP):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


def parse_response(content: bytes) -> Response:
    """A 2xx body as text and parsed JSON; anything else is a bad body (retried by `_get`).

    A module function so the throughput benchmark replays captured bodies through exactly this
    code, without HTTP.
    """
    try:
        body = content.decode("utf-8")
        data = _loads(content, body)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        raise stripe.APIError("response body is not JSON (truncated?)", http_status=200) from None
    if not isinstance(data, dict):
        raise stripe.APIError("response is not an object", http_status=200)
    return Response(content, data)


class Page:
    """One page of a list endpoint: its bytes, its cursor, and its records.

    `records` is set when the page decoded strictly as clean records (the source's
    `clean_page`), the usual case: the pull then never needs `items`, which is parsed from
    `content` only if asked for (only the quarantine path asks). Otherwise `items` holds the
    parsed records.
    """

    __slots__ = ("_items", "content", "has_more", "last_id", "records")

    def __init__(
        self,
        content: bytes,
        has_more: bool,
        last_id: str | None,
        *,
        items: list[Any] | None = None,
        records: list[Any] | None = None,
    ) -> None:
        if (items is None) == (records is None):
            raise ValueError("a Page holds either parsed items or decoded records")
        self.content, self.has_more, self.last_id = content, has_more, last_id
        self.records: list[Any] | None = records
        self._items = items

    @property
    def items(self) -> list[Any]:
        """The records as parsed JSON (plain dicts and lists), parsed on first use."""
        if self._items is None:
            self._items = parse_response(self.content).data["data"]
        return self._items


def page_from_response(resp: Response) -> Page:
    """A list response as a `Page`, reusing the objects already parsed from the body."""
    data = resp.data
    if not isinstance(data.get("data"), list):  # parse_response made sure data is a dict
        raise stripe.APIError("response is not a list object", http_status=200)
    items = data["data"]
    last = items[-1].get("id") if items and isinstance(items[-1], dict) else None
    return Page(resp.content, bool(data.get("has_more")), last, items=items)


def decode_charge_page(content: bytes) -> Page:
    """A `GET /v1/charges` body as a `Page` (`decode_page` with the charges' decoder)."""
    return decode_page(content, CLEAN_CHARGE_PAGE)


def decode_page(content: bytes, clean_page: msgspec.json.Decoder[Any]) -> Page:
    """A list body as a `Page`: decoded straight into validated records when the whole page
    is clean, else parsed as JSON like any list (a bad body raises, and is retried).

    The strict decode reads the bytes once into compact records (no dict per charge, nothing
    parsed that reconciliation does not read): about four times cheaper than parsing to dicts,
    then validating them, then building columns.
    """
    try:
        if not content.isascii():  # the decoder skips unread fields without checking UTF-8
            content.decode("utf-8")
        page = clean_page.decode(content)
    except (msgspec.MsgspecError, UnicodeDecodeError):  # anything suspect: the JSON path judges
        return page_from_response(parse_response(content))
    last = page.data[-1].id if page.data else None
    return Page(content, page.has_more, last, records=page.data)


class ChargesClient:
    """Fetches pages of `GET /v1/charges` for one created-window at a time. Thread-safe."""

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        rate_limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 30.0,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = _BodyHandoffClient(
            api_base=(api_base or stripe.DEFAULT_API_BASE).rstrip("/"), timeout=timeout_s
        )
        kwargs: dict[str, Any] = {
            "stripe_version": STRIPE_API_VERSION,
            "max_network_retries": 0,
            "http_client": self._http,
        }
        if api_base:
            kwargs["base_addresses"] = {"api": api_base.rstrip("/")}
        self._sdk = stripe.StripeClient(api_key, **kwargs)
        self.limiter = rate_limiter or RateLimiter(STRIPE_DOCUMENTED_RATE_PER_S)
        self.retry = retry or RetryPolicy()
        self.counters = FetchCounters()
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._sleep = sleep

    def __repr__(self) -> str:  # never show the key
        return f"ChargesClient(rate={self.limiter.max_rate}/s, retries={self.retry.max_retries})"

    def _jitter(self, attempt: int) -> float:
        with self._rng_lock:
            return self.retry.backoff(attempt, self._rng)

    def list_page(
        self,
        window: Window,
        starting_after: str | None = None,
        source: StripeSource = CHARGES,
        filters: Mapping[str, str] | None = None,
    ) -> Page:
        """One page, newest first, of `source` records (charges by default) with
        `window.start <= created < window.end` (or the source's own window field), and Stripe's
        list `filters` (`payout=po_...`) when given."""
        field = source.window_field
        params: dict[str, Any] = {
            "limit": PAGE_LIMIT,
            field: {"gte": window.start, "lt": window.end},
            **(filters or {}),
        }
        what = f"GET {source.path} for {field} in [{window.start}, {window.end})"
        decoder = source.clean_page
        return self._list(source.path, params, starting_after, what,
                          lambda c: decode_page(c, decoder))  # fmt: skip

    def list_events(
        self, types: Sequence[str], created_gte: int, starting_after: str | None = None
    ) -> Page:
        """One page, newest first, of `GET /v1/events` of `types` created at or after
        `created_gte`; its items are the parsed events."""
        params: dict[str, Any] = {
            "limit": PAGE_LIMIT,
            "types": list(types),
            "created": {"gte": created_gte},
        }
        what = f"GET /v1/events created at or after {created_gte}"
        return self._list("/v1/events", params, starting_after, what)

    def _list(
        self,
        path: str,
        params: dict[str, Any],
        starting_after: str | None,
        what: str,
        decode: Callable[[bytes], Page] | None = None,
    ) -> Page:
        """One page of a list endpoint; a body that is not a list object is a bad body and is
        retried like any other."""
        if starting_after:
            params["starting_after"] = starting_after
        page = self._get(
            path, params, what, decode or (lambda c: page_from_response(parse_response(c)))
        )
        assert page is not None
        return page

    def retrieve(self, charge_id: str, source: StripeSource = CHARGES) -> Any | None:
        """`GET {source.path}/{id}` (a charge by default): the object as parsed JSON, or None
        when Stripe says 404.

        Same limiter, retries and counters as the list; the id must be a plain Stripe id
        (letters, digits, `_`), so it can never change the path.
        """
        if not _ID.match(charge_id):
            raise ValueError("not a Stripe object id")
        path = f"{source.path}/{charge_id}"
        resp = self._get(path, {}, f"GET {path}", parse_response)
        return None if resp is None else resp.data

    def _get(
        self, path: str, params: dict[str, Any], what: str, decode: Callable[[bytes], _T]
    ) -> _T | None:
        """One GET with the shared limiter and our retries; `decode` runs inside the retry, so a
        body that is not what was asked for counts as a bad body and is retried."""
        attempt = 0
        while True:
            self.limiter.acquire()
            self.counters.add(requests=1)
            try:
                self._sdk.raw_request("get", path, **params)
                content = self._http.take_body()
                decoded = decode(content)
                self.counters.add(bytes_received=len(content))
                return decoded
            except stripe.AuthenticationError:
                raise StripeAuthError(
                    "Stripe refused the API key (HTTP 401): check STRIPE_API_KEY and that it is "
                    "a restricted key with read access to charges, refunds and events"
                ) from None
            except stripe.PermissionError:
                raise StripeAuthError(
                    f"the API key lacks permission for GET {path} (HTTP 403): grant it "
                    "'Charges: read', 'Refunds: read' and 'Events: read'"
                ) from None
            except stripe.RateLimitError:
                self.counters.add(rate_limited=1)
                wait = self._jitter(attempt + 1) + self.retry.base_s
                self.limiter.on_rate_limited(wait)
                reason = "HTTP 429 rate limited"
            except stripe.APIConnectionError as exc:
                self.counters.add(connection_errors=1)
                reason = f"connection error: {type(exc).__name__}"
                wait = self._jitter(attempt + 1)
            except stripe.APIError as exc:
                status = exc.http_status or 0
                if status >= 500:
                    self.counters.add(server_errors=1)
                    reason = f"HTTP {status} from Stripe"
                else:  # a 2xx whose body is not whole JSON: truncated or garbled in transit
                    self.counters.add(bad_bodies=1)
                    reason = "unreadable response body (truncated?)"
                wait = self._jitter(attempt + 1)
            except stripe.InvalidRequestError as exc:
                if exc.http_status == 404 and not params:
                    self.counters.add(not_found=1)
                    return None
                raise StripeFetchError(
                    f"Stripe rejected the request (HTTP {exc.http_status}, param "
                    f"{exc.param!r}): {exc.user_message}"
                ) from None
            attempt += 1
            if attempt > self.retry.max_retries:
                raise StripeFetchError(
                    f"gave up on {what} after {self.retry.max_retries} retries; "
                    f"last failure: {reason}"
                )
            self.counters.add(retries=1)
            self._sleep(wait)


@dataclass(frozen=True)
class ClientSpec:
    """What builds a `ChargesClient` in another process (a client holds sessions and locks)."""

    api_key: str = field(repr=False)  # crosses to the child through a pipe, never printed
    api_base: str | None
    rate_per_s: float
    max_retries: int

    def build(self, rate_share: int = 1) -> ChargesClient:
        """A client with `1/rate_share` of the rate, for one of `rate_share` processes."""
        return ChargesClient(
            self.api_key,
            api_base=self.api_base,
            rate_limiter=RateLimiter(self.rate_per_s / rate_share),
            retry=RetryPolicy(max_retries=self.max_retries),
        )
