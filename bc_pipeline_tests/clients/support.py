"""Test support: local servers for what the sandbox cannot do (lose an answer after the work, rewrite links),
and a wait that must end.

`LossyProxy` forwards every request over HTTPS to the sandbox (so the work really happens there), then
may lose the answer (drop the connection or answer a status instead) or rewrite the answer's body.
`Recorder` answers anything with an empty page and remembers every request it received.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional

import requests

from bc_pipeline.sandbox.tls import ensure_certificates

# Not forwarded either way: they describe one connection or one encoding, not the request.
_HOP_HEADERS = {"connection", "content-length", "transfer-encoding", "content-encoding", "accept-encoding",
                "keep-alive", "date", "server"}


@dataclass
class Loss:
    """Lose the answer to the next request whose method and path match: drop it (status None) or replace it."""

    method: str
    path_contains: str
    status: Optional[int] = None
    retry_after: Optional[str] = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.owner.handle(self)

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner, tls_dir: Optional[Path]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner
        if tls_dir is not None:
            _, cert, key = ensure_certificates(tls_dir)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(cert), str(key))
            self.socket = context.wrap_socket(self.socket, server_side=True)

    def handle_error(self, request, client_address) -> None:
        pass  # a dropped connection is the point, not a failure


class _Served:
    """A server on 127.0.0.1 in a background thread (HTTPS with the sandbox's certificate when tls_dir is given)."""

    def __init__(self, tls_dir: Optional[Path]):
        self.server = _Server(self, tls_dir)
        self.scheme = "https" if tls_dir is not None else "http"
        self.url = f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.received: list[tuple[str, str, dict[str, str]]] = []
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def _read(self, h: BaseHTTPRequestHandler) -> Optional[bytes]:
        self.received.append((h.command, h.path, dict(h.headers)))
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length else None


def _answer(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
    h.send_response(status)
    for name, value in headers.items():
        if name.lower() not in _HOP_HEADERS:
            h.send_header(name, value)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


class LossyProxy(_Served):
    """HTTPS in front of the sandbox: the sandbox does the work; the answer may be lost or rewritten."""

    def __init__(self, sandbox):
        super().__init__(Path(sandbox.ca_path).parent)
        self.upstream = sandbox.base_url
        self.losses: list[Loss] = []
        self.rewrite: Optional[Callable[[bytes], bytes]] = None
        self.session = requests.Session()
        self.session.verify = str(sandbox.ca_path)
        self.session.trust_env = False

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self.session.close()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        body = self._read(h)
        # The Host header is kept: the sandbox builds its next links from it, so they point back here.
        headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP_HEADERS}
        upstream = self.session.request(h.command, self.upstream + h.path, headers=headers, data=body,
                                        allow_redirects=False, timeout=60)
        loss = self._take(h.command, h.path)
        if loss is not None and loss.status is None:
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if loss is not None:
            extra = {"Retry-After": loss.retry_after} if loss.retry_after is not None else {}
            _answer(h, loss.status, {"Content-Type": "application/json", **extra},
                    b'{"error":{"code":"AnswerLost","message":"the answer was lost on the way back"}}')
            return
        content = self.rewrite(upstream.content) if self.rewrite else upstream.content
        _answer(h, upstream.status_code, dict(upstream.headers), content)

    def _take(self, method: str, path: str) -> Optional[Loss]:
        for loss in self.losses:
            if loss.method == method and loss.path_contains in path:
                self.losses.remove(loss)
                return loss
        return None


class Recorder(_Served):
    """Answers every request with an empty OData page and keeps what it received (method, path, headers)."""

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        self._read(h)
        _answer(h, 200, {"Content-Type": "application/json"}, b'{"value":[]}')


def finishes_within(seconds: float, work: Callable[[], Any]) -> Any:
    """work()'s result, failing (instead of hanging the suite) when it takes longer than `seconds`."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
