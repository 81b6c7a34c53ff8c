"""Retry-After is read, not trusted: fractions and dates understood, garbage ignored, long waits capped."""

import datetime as dt
import email.utils
import logging
import time

import pytest

from bc_pipeline.clients import throttle
from bc_pipeline.clients.errors import IpaasError
from bc_pipeline.clients.transport import parse_retry_after
from bc_pipeline_tests.clients.support import finishes_within

LISTING = "/transactions/v2/Transactions"


def _answer_429(world, path: str, retry_after: str) -> None:
    world.ipaas("POST", "faults", json={"status": 429, "count": 1, "path_prefix": path, "retry_after": retry_after})


def _paused_until(client) -> float:
    return float((client.throttle.directory / f"{client.throttle.key}.pause").read_text())


def _in_three_seconds() -> str:
    return email.utils.formatdate(time.time() + 3.5, usegmt=True)  # whole seconds: 2.5 to 3.5 s from now


NOW = dt.datetime(2015, 10, 21, 7, 28, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("3", 3.0), (" 1.5 ", 1.5), ("0", 0.0),
        ("Wed, 21 Oct 2015 07:29:30 GMT", 90.0), ("Wednesday, 21-Oct-15 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", None),  # in the past
        ("-5", None), ("1e3", None), ("nan", None), ("inf", None), ("soon", None), ("", None), (None, None),
    ],
)
def test_a_retry_after_header_is_read_as_seconds_or_not_at_all(value, seconds):
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize(
    "retry_after, least, most, words",
    [
        ("1.5", 1.4, 2.5, "Retry-After asked 1.5 s"),
        (_in_three_seconds, 2.0, 4.0, "Retry-After asked "),
        ("soon", 0.0, 1.0, "Retry-After 'soon' not understood: exponential backoff"),
        ("-5", 0.0, 1.0, "Retry-After '-5' not understood: exponential backoff"),
    ],
)
def test_a_retry_after_is_understood_or_ignored_and_the_read_completes(
    world, ipaas, caplog, retry_after, least, most, words
):
    _answer_429(world, LISTING, retry_after() if callable(retry_after) else retry_after)
    with caplog.at_level(logging.WARNING, logger="bc_pipeline.clients.transport"):
        pages = list(ipaas.iter_pages("Transaction"))
    assert pages == [[]]
    assert ipaas.counter.throttled == 1 and ipaas.counter.retries == 1
    assert least <= ipaas.throttle.stats.paused_seconds <= most
    assert f"iPaaS.com answered HTTP 429 to GET {LISTING}: waiting" in caplog.text
    assert words in caplog.text


def test_a_retry_after_of_a_day_on_a_create_holds_every_process_back_for_two_minutes_only(world, ipaas, caplog):
    _answer_429(world, "/transactions/v2/Transaction", "86400")
    order = {"transaction_number": "SO-1", "type": "Order", "status": "Pending"}
    with caplog.at_level(logging.WARNING, logger="bc_pipeline.clients.transport"):
        with pytest.raises(IpaasError) as error:
            finishes_within(30, lambda: ipaas.create("Transaction", order))
    assert error.value.status == 429
    assert 0 < _paused_until(ipaas) - time.time() <= throttle.MAX_RETRY_AFTER_SECONDS == 120
    assert (
        "iPaaS.com answered HTTP 429 to POST /transactions/v2/Transaction: waiting 120.0 s "
        "(Retry-After asked 86400 s, capped at 120 s)"
    ) in caplog.text


def test_a_retry_after_of_a_day_on_a_read_is_waited_out_within_the_cap(world, ipaas, monkeypatch):
    monkeypatch.setattr(throttle, "MAX_RETRY_AFTER_SECONDS", 1.0)
    _answer_429(world, LISTING, "86400")
    pages = finishes_within(30, lambda: list(ipaas.iter_pages("Transaction")))
    assert pages == [[]]
    assert 0.9 <= ipaas.throttle.stats.paused_seconds <= 2.0
