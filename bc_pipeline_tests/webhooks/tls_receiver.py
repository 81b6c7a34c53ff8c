"""An ASGI app served over HTTPS in a thread, with the sandbox's certificate: what Business Central calls back."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bc_pipeline.sandbox.launcher import SandboxHandle


@contextmanager
def served(app: Any, sandbox: SandboxHandle) -> Iterator[str]:
    """https://127.0.0.1:<port> serving `app` until the block ends (the sandbox's CA signs its certificate)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    state_dir = sandbox.config.state_dir
    config = uvicorn.Config(app, log_level="warning", ssl_certfile=str(state_dir / "server.pem"),
                            ssl_keyfile=str(state_dir / "server.key"), lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class Recorder:
    """A notification URL that answers the handshake, records each notification body and answers `status`."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.handshakes = 0
        self.status = 202
        self.echo_token = True

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            token = request.query_params.get("validationToken")
            if token is not None:
                self.handshakes += 1
                return PlainTextResponse(token if self.echo_token else "nope")
            self.bodies.append(await request.json())
            return Response(status_code=self.status)

        return Starlette(routes=[Route("/hook", hook, methods=["GET", "POST"])])

    def items(self) -> list[dict[str, Any]]:
        return [item for body in self.bodies for item in body["value"]]

    def wait(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.items()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.items()
