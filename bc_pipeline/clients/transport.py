"""HTTP for every client: a requests session with urllib3 retries, the shared throttle, and counted traffic."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from bc_pipeline.clients.errors import TransportError
from bc_pipeline.clients.throttle import Throttle

log = logging.getLogger(__name__)

# Dagster Open Platform's choice: fail a dead connection fast, give a slow answer time.
CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 120
RETRY_STATUSES = (429, 500, 502, 503, 504)
# A write whose answer was lost may have been applied: only statuses that mean "not processed" retry it.
WRITE_SAFE_STATUSES = (429, 503)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass
class TrafficCounter:
    """Requests, bytes and retries a client made, for asset metadata and the run summary."""

    requests: int = 0
    bytes_received: int = 0
    retries: int = 0
    throttled: int = 0  # 429 answers received
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, response: requests.Response) -> None:
        with self._lock:
            self.requests += 1
            self.bytes_received += len(response.content or b"")
            if response.status_code == 429:
                self.throttled += 1

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
    """The status retry policy: exponential backoff with jitter, Retry-After honoured."""
    return Retry(
        total=attempts,
        connect=attempts,
        read=attempts,
        status=attempts,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=0.5,
        backoff_max=60,
        backoff_jitter=1.0,
        respect_retry_after_header=True,
        allowed_methods=None,
        raise_on_status=False,
    )


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
        **kwargs: Any,
    ) -> requests.Response:
        """The service's answer, after retries; error statuses are returned for the caller to type."""
        method = method.upper()
        retry = retry_policy(self.attempts)
        refreshed_token = False
        extra_headers = kwargs.pop("headers", None) or {}
        while True:
            try:
                with self.throttle.request():
                    response = self.session.request(
                        method,
                        url,
                        headers={**headers_factory(), **extra_headers},
                        timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
                        stream=stream,
                        **kwargs,
                    )
                    if not stream:
                        _ = response.content  # read inside the slot: the service is busy until the body is sent
            except requests.exceptions.SSLError as exc:
                raise TransportError(self.service, method, url, exc) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                next_retry = self._next(retry, method, url, error=exc) if method in IDEMPOTENT_METHODS else None
                if next_retry is None:
                    raise TransportError(self.service, method, url, exc) from None
                retry = next_retry
                self._backoff(retry, None)
                continue
            self.counter.count(response)

            if response.status_code == 401 and on_unauthorized is not None and not refreshed_token:
                refreshed_token = True
                if on_unauthorized():
                    log.info("%s answered 401; renewed the access token and retrying once", self.service)
                    continue
            if response.status_code in RETRY_STATUSES and self._retryable(method, response.status_code):
                next_retry = self._next(retry, method, url, response=response)
                if next_retry is not None:
                    retry = next_retry
                    self._backoff(retry, response)
                    continue
            return response

    # -- retry helpers -----------------------------------------------------------------------

    @staticmethod
    def _retryable(method: str, status: int) -> bool:
        return method in IDEMPOTENT_METHODS or status in WRITE_SAFE_STATUSES

    def _next(self, retry: Retry, method: str, url: str, *, response=None, error=None) -> Optional[Retry]:
        try:
            return retry.increment(method, url, response=response.raw if response is not None else None, error=error)
        except Exception:  # urllib3 raises MaxRetryError (or the error itself) when exhausted
            return None

    def _backoff(self, retry: Retry, response: Optional[requests.Response]) -> None:
        self.counter.retried()
        retry_after = retry.get_retry_after(response.raw) if response is not None else None
        delay = retry_after if retry_after is not None else retry.get_backoff_time()
        if response is not None and response.status_code in (429, 503):
            # The limit is the service's, not this process's: every process sharing it backs off.
            self.throttle.pause(delay)
        else:
            time.sleep(delay)
        log.warning(
            "%s: retrying after %.1fs (%s)",
            self.service,
            delay,
            f"HTTP {response.status_code}" if response is not None else "connection error",
        )
