"""The served receiver (a real process on a loopback socket) withstands slow and vanishing clients."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest
from starlette.responses import PlainTextResponse

from bc_pipeline.state import inbox
from bc_pipeline.state.database import engine_for
from bc_pipeline.webhooks.server import InFlightLimit

KEY = "k"
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
SLACK = 5.0
SERVE = (
    "import sys\n"
    "from bc_pipeline.settings import load_settings\n"
    "from bc_pipeline.webhooks import serve\n"
    f"serve(load_settings(), port=int(sys.argv[1]), header_timeout={HEADER_TIMEOUT}, body_timeout={BODY_TIMEOUT})\n"
)
PARTIAL_HEADERS = b"POST /webhooks/ipaas HTTP/1.1\r\nHost: receiver\r\nAuthorization: Bearer k\r\n"


class Live(NamedTuple):
    port: int
    state_url: str
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the receiver did not start:\n{log.read_text()}")


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[Live]:
    home = tmp_path_factory.mktemp("receiver")
    port, state_url, log = _free_port(), f"sqlite:///{home}/state.sqlite", home / "receiver.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "IPAAS_"))}
    env.update(IPAAS_WEBHOOK_API_KEY=KEY, BC_PIPELINE_HOME=str(home), BC_PIPELINE_STATE_URL=state_url)
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, cwd=home)
    try:
        _wait_until_up(port, process, log)
        yield Live(port, state_url, log)
    finally:
        process.kill()  # nothing to shut down gracefully: the inbox commits before each answer
        process.wait()


def _rows(live: Live) -> list[inbox.SyncRequest]:
    return inbox.status(engine_for(live.state_url), limit=None)


def _open(live: Live, data: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", live.port), timeout=10)
    s.sendall(data)
    return s


def _request(live: Live, method: str, path: str, body: object = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    try:
        raw = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"} if raw else {}
        connection.request(method, path, body=raw, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _closed_by_server(sockets: list[socket.socket], within: float) -> int:
    """How many of the sockets the server closed (end of stream) within `within` seconds."""
    deadline = time.monotonic() + within
    waiting = set(sockets)
    with selectors.DefaultSelector() as selector:
        for s in sockets:
            selector.register(s, selectors.EVENT_READ)
        while waiting:
            left = deadline - time.monotonic()
            if left < 0:
                break
            for key, _ in selector.select(timeout=left):
                if not _received(key.fileobj):
                    waiting.discard(key.fileobj)
                    selector.unregister(key.fileobj)
    return len(sockets) - len(waiting)


def _received(s) -> bytes:
    try:
        return s.recv(65536)
    except ConnectionError:
        return b""


def _answer(s: socket.socket, within: float) -> bytes:
    """Everything the server sends until it closes the connection (at most `within` seconds)."""
    s.settimeout(within)
    data = b""
    while chunk := _received(s):
        data += chunk
    return data


def _close_all(sockets: list[socket.socket]) -> None:
    for s in sockets:
        s.close()


def test_slow_headers_neither_block_other_clients_nor_stay_open(live):
    slow = [_open(live, PARTIAL_HEADERS) for _ in range(230)]
    try:
        time.sleep(0.3)  # the server has accepted them and read their partial headers
        assert _request(live, "GET", "/healthz") == (200, b'{"status":"ok"}')
        status, answer = _request(live, "POST", "/webhooks/ipaas",
                                  {"notifications": [{"scope": "customer/created", "external_id": "SLOW-1"}]})
        assert status == 202, answer
        assert [r.external_id for r in _rows(live)] == ["SLOW-1"]
        assert _closed_by_server(slow, within=0) == 0, "served while every slow socket was still open"
        started = time.monotonic()
        assert _closed_by_server(slow, within=HEADER_TIMEOUT + SLACK) == 230
        assert time.monotonic() - started <= HEADER_TIMEOUT + SLACK
    finally:
        _close_all(slow)


def test_a_kept_alive_connection_that_stalls_in_its_next_headers_is_closed(live):
    s = _open(live, b"GET /healthz HTTP/1.1\r\nHost: receiver\r\n\r\n")
    try:
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            first += s.recv(65536) or pytest.fail(f"closed after {first!r}")
        assert first.startswith(b"HTTP/1.1 200")
        s.sendall(PARTIAL_HEADERS)  # the next request, in a packet of its own
        assert _answer(s, within=HEADER_TIMEOUT + SLACK) == b""
    finally:
        s.close()


def test_a_body_that_does_not_arrive_is_408_and_nothing_is_recorded(live):
    before = len(_rows(live))
    s = _open(live, PARTIAL_HEADERS + b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
                                      b'{"notifications": [{"scope": "customer/created", "external_id": "SLOW-2"}')
    try:
        started = time.monotonic()
        answer = _answer(s, within=BODY_TIMEOUT + SLACK)  # ends only when the server closes the connection
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - started <= BODY_TIMEOUT + SLACK
    finally:
        s.close()
    assert len(_rows(live)) == before


def test_a_client_hanging_up_mid_body_is_one_log_line_and_nothing_is_recorded(live):
    before = len(_rows(live))
    s = _open(live, PARTIAL_HEADERS + b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
                                      b'{"notifications": [{"scope": "customer/created", "external_id": "SLOW-3"}')
    time.sleep(0.2)
    s.close()
    deadline = time.monotonic() + SLACK
    while not _lines(live, "hung up") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_lines(live, "hung up")) == 1
    assert not _lines(live, "Traceback") and not _lines(live, "Exception in ASGI application")
    assert len(_rows(live)) == before


def _lines(live: Live, text: str) -> list[str]:
    return [line for line in live.log.read_text().splitlines() if text in line]


def test_requests_past_the_in_flight_limit_are_503_until_one_is_answered():
    release = asyncio.Event()

    async def slow_app(scope, receive, send):
        await release.wait()
        await PlainTextResponse("ok")(scope, receive, send)

    limited = InFlightLimit(slow_app, limit=1)

    async def status() -> int:
        sent = []

        async def send(message):
            sent.append(message)

        await limited({"type": "http"}, None, send)
        return sent[0]["status"]

    async def scenario():
        first = asyncio.create_task(status())
        await asyncio.sleep(0)
        second = await status()
        release.set()
        return await first, second, await status(), limited.active

    assert asyncio.run(scenario()) == (200, 503, 200, 0)
