"""HTTP for every client: a requests session with urllib3 retries, the shared throttle, and counted traffic."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.retry import Retry

from bc_pipeline.clients.errors import TransportError
from bc_pipeline.clients.throttle import Throttle, capped

log = logging.getLogger(__name__)

# Dagster Open Platform's choice: fail a dead connection fast, give a slow answer time.
CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 120
RETRY_STATUSES = (429, 500, 502, 503, 504)
# Statuses that mean "slow down": every process sharing the throttle waits, even when nothing is re-sent.
PAUSE_STATUSES = (429, 503)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Failures that leave no answer (a read timeout is a Timeout, a body cut short a ChunkedEncodingError).
CONNECTION_FAILURES = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
_DELTA_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")


@dataclass
class TrafficCounter:
    """Requests, bytes and retries a client made, for asset metadata and the run summary."""

    requests: int = 0
    bytes_received: int = 0
    retries: int = 0
    throttled: int = 0  # 429 answers received
    kinds: dict[str, int] = field(default_factory=dict)  # requests by what they were for: lookups, creates, …
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, response: requests.Response, kind: Optional[str] = None) -> None:
        with self._lock:
            self.requests += 1
            self.bytes_received += len(response.content or b"")
            if response.status_code == 429:
                self.throttled += 1
            if kind is not None:
                self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def kinds_since(self, before: dict[str, int]) -> dict[str, int]:
        """Requests by kind sent since `before` (an earlier copy of `kinds`)."""
        with self._lock:
            return {k: n - before.get(k, 0) for k, n in self.kinds.items() if n - before.get(k, 0)}

    def retried(self) -> None:
        with self._lock:
            self.retries += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": self.requests,
                "bytes": self.bytes_received,
                "retries": self.retries,
                "throttled_429": self.throttled,
            }


def new_session(verify: str | bool, pool_size: int = 10, user_agent: str = "bc_pipeline") -> requests.Session:
    """A session whose adapter retries only what never reached the service (connect errors)."""
    session = requests.Session()
    session.verify = verify
    adapter = HTTPAdapter(
        pool_connections=pool_size,
        pool_maxsize=pool_size,
        # Statuses are retried above the adapter, through the throttle; here only failed connects.
        max_retries=Retry(total=3, connect=3, read=0, status=0, other=0, backoff_factor=0.5, backoff_jitter=0.5,
                          respect_retry_after_header=False, raise_on_status=False),
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


def retry_policy(attempts: int) -> Retry:
    """The retry budget and exponential backoff with jitter (Retry-After is parsed here, not by urllib3)."""
    return Retry(
        total=attempts,
        connect=attempts,
        read=attempts,
        status=attempts,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=0.5,
        backoff_max=60,
        backoff_jitter=1.0,
        respect_retry_after_header=False,
        allowed_methods=None,
        raise_on_status=False,
    )


def parse_retry_after(value: Optional[str], now: Optional[dt.datetime] = None) -> Optional[float]:
    """Seconds from a Retry-After header (delta-seconds, fractions too, or an HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110: HTTP-dates are GMT
        when = when.replace(tzinfo=dt.timezone.utc)
    seconds = (when - (now or dt.datetime.now(dt.timezone.utc))).total_seconds()
    return seconds if seconds >= 0 else None


def _maybe_sent(exc: BaseException) -> bool:
    """Whether a failed request may have reached the service: False only when connecting failed."""
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
        return False
    cause = exc.args[0] if exc.args else None
    cause = getattr(cause, "reason", cause)  # requests wraps urllib3's MaxRetryError, which holds the last error
    return not isinstance(cause, (NewConnectionError, ConnectTimeoutError))


def _path(url: str) -> str:
    """The URL's path only: a query may carry tokens or customer data."""
    return urlsplit(url).path or "/"


class ThrottledTransport:
    """Sends one logical request: waits for the throttle, retries what is safe, and counts traffic."""

    def __init__(
        self,
        service: str,
        session: requests.Session,
        throttle: Throttle,
        *,
        attempts: int = 6,
        counter: Optional[TrafficCounter] = None,
    ):
        self.service = service
        self.session = session
        self.throttle = throttle
        self.attempts = attempts
        self.counter = counter or TrafficCounter()

    def send(
        self,
        method: str,
        url: str,
        *,
        headers_factory: Callable[[], dict[str, str]],
        on_unauthorized: Optional[Callable[[], bool]] = None,
        stream: bool = False,
        idempotent: Optional[bool] = None,
        kind: Optional[str] = None,
        **kwargs: Any,
    ) -> requests.Response:
        """The service's answer, after retries; error statuses are returned for the caller to type.

        `idempotent` (None: by method) says whether a request that may have reached the service can be
        sent again; one that cannot is never re-sent after a status answer or a broken connection.
        """
        method = method.upper()
        resend = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        retry = retry_policy(self.attempts)
        refreshed_token = False
        extra_headers = kwargs.pop("headers", None) or {}
        while True:
            try:
                response = self._request(method, url, {**headers_factory(), **extra_headers}, stream, kwargs)
            except CONNECTION_FAILURES as exc:
                retry = self._after_failure(retry, method, url, exc, resend)
                continue
            self.counter.count(response, kind)

            # A 401 is refused before any work is done: re-sending it with a new token is safe for every request.
            if response.status_code == 401 and on_unauthorized is not None and not refreshed_token:
                refreshed_token = True
                if on_unauthorized():
                    log.info("%s answered 401; renewed the access token and retrying once", self.service)
                    continue
            if response.status_code not in RETRY_STATUSES:
                return response
            next_retry = self._next(retry, method, url, response=response) if resend else None
            if next_retry is None:
                if response.status_code in PAUSE_STATUSES:
                    why = "retries used up" if resend else "not re-sent: the service may have done the work"
                    self._back_off(retry, response, method, url, then=f" before the next request ({why})")
                return response
            retry = next_retry
            self.counter.retried()
            self._back_off(retry, response, method, url, then=", then retrying")

    def _request(self, method: str, url: str, headers: dict[str, str], stream: bool, kwargs: dict) -> requests.Response:
        with self.throttle.request():
            response = self.session.request(
                method, url, headers=headers, timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS), stream=stream,
                **kwargs,
            )
            if not stream:
                _ = response.content  # read inside the slot: the service is busy until the body is sent
        return response

    # -- retry helpers -----------------------------------------------------------------------

    def _after_failure(self, retry: Retry, method: str, url: str, exc: BaseException, resend: bool) -> Retry:
        """The retry state to go on with after a failed connection, or TransportError when not retried."""
        sent = _maybe_sent(exc)
        # Failed connects were retried by the session's adapter already; a TLS failure will not heal.
        retryable = resend and not isinstance(exc, requests.exceptions.SSLError)
        next_retry = self._next(retry, method, url, error=exc) if retryable else None
        if next_retry is None:
            raise TransportError(self.service, method, url, exc, maybe_sent=sent) from None
        self.counter.retried()
        delay = capped(next_retry.get_backoff_time())
        log.warning(
            "%s did not answer %s %s (%s): waiting %.1f s (exponential backoff), then retrying",
            self.service, method, _path(url), type(exc).__name__, delay,
        )
        time.sleep(delay)
        return next_retry

    def _next(self, retry: Retry, method: str, url: str, *, response=None, error=None) -> Optional[Retry]:
        try:
            return retry.increment(method, url, response=response.raw if response is not None else None, error=error)
        except Exception:  # urllib3 raises MaxRetryError (or the error itself) when exhausted
            return None

    def _back_off(self, retry: Retry, response: requests.Response, method: str, url: str, *, then: str) -> None:
        """Wait as the answer asks, within the cap; 429/503 make every process sharing the throttle wait."""
        delay, why = _delay(retry, response)
        if response.status_code in PAUSE_STATUSES:
            # The limit is the service's, not this process's: every process sharing it backs off.
            delay = self.throttle.pause(delay)
        else:
            time.sleep(delay)
        log.warning(
            "%s answered HTTP %s to %s %s: waiting %.1f s (%s)%s",
            self.service, response.status_code, method, _path(url), delay, why, then,
        )


def _delay(retry: Retry, response: requests.Response) -> tuple[float, str]:
    """Seconds to wait after an answer, within the cap, and why, in words."""
    header = response.headers.get("Retry-After")
    asked = parse_retry_after(header)
    if asked is None:
        why = "no Retry-After" if header is None else f"Retry-After {header[:40]!r} not understood"
        return capped(retry.get_backoff_time()), f"{why}: exponential backoff"
    delay = capped(asked)
    if delay < asked:
        return delay, f"Retry-After asked {asked:g} s, capped at {delay:g} s"
    return delay, f"Retry-After asked {asked:g} s"
