"""Runs the sandbox app under uvicorn over HTTPS in this process (the launcher starts it as a subprocess)."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Callable, Optional

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .app import build_app
from .config import SandboxConfig
from .state import SandboxState
from .tls import ensure_certificates


class SandboxProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the transport put in each request's scope so a fault can drop it."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["sandbox.transport"] = self.transport  # type: ignore[typeddict-unknown-key]

    def connection_lost(self, exc) -> None:
        if self.scope is not None:
            self.scope["sandbox.lost"] = True  # type: ignore[typeddict-unknown-key]
        super().connection_lost(exc)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def watch_stdin() -> None:
    """Exit when stdin closes: the launcher holds the other end, so the sandbox dies with its parent."""

    def run() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except Exception:
            pass
        os._exit(0)

    threading.Thread(target=run, name="parent-watch", daemon=True).start()


def serve(config: SandboxConfig, *, port_file: Optional[Path] = None, exit_on_stdin_eof: bool = False,
          on_ready: Optional[Callable[[int, Path], None]] = None) -> None:
    """Bind, seed, and serve until stopped; writes the bound port to port_file once listening is possible."""
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s sandbox %(levelname)s %(message)s")
    if exit_on_stdin_eof:
        watch_stdin()
    ca, cert, key = ensure_certificates(config.state_dir)
    sock = bind(config.host, config.port)
    port = sock.getsockname()[1]
    state = SandboxState(config.model_copy(update={"port": port}))
    app = build_app(state)
    uv_config = uvicorn.Config(app, host=config.host, port=port, ssl_certfile=str(cert), ssl_keyfile=str(key),
                               http=SandboxProtocol, loop="uvloop" if _has_uvloop() else "asyncio",
                               lifespan="on" if app.ipaas_app is not None else "off",
                               log_level=config.log_level, access_log=False, timeout_keep_alive=30)
    server = uvicorn.Server(uv_config)
    if port_file is not None:
        tmp = Path(str(port_file) + ".tmp")
        tmp.write_text(str(port))
        os.replace(tmp, port_file)
    if on_ready is not None:
        on_ready(port, ca)
    server.run(sockets=[sock])


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True
