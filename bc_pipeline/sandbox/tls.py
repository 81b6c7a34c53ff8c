"""The sandbox's TLS: a private CA and a server certificate for localhost/127.0.0.1 made with trustme, kept on disk."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CA_FILE = "ca.pem"
CERT_FILE = "server.pem"
KEY_FILE = "server.key"
NAMES = ("localhost", "127.0.0.1", "::1")


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    with open(state_dir / ".tls.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_certificates(state_dir: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key) in state_dir, created once and reused so clients keep trusting the CA."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    ca, cert, key = state_dir / CA_FILE, state_dir / CERT_FILE, state_dir / KEY_FILE
    with _locked(state_dir):
        if ca.is_file() and cert.is_file() and key.is_file():
            return ca, cert, key
        import trustme

        authority = trustme.CA(organization_name="bc_pipeline sandbox", organization_unit_name="local test CA")
        issued = authority.issue_cert(*NAMES, common_name="localhost")
        tmp = state_dir / f".tmp-{os.getpid()}"
        tmp.mkdir(exist_ok=True)
        authority.cert_pem.write_to_path(str(tmp / CA_FILE))
        with open(tmp / CERT_FILE, "wb") as f:
            for pem in issued.cert_chain_pems:
                f.write(pem.bytes())
        issued.private_key_pem.write_to_path(str(tmp / KEY_FILE))
        os.chmod(tmp / KEY_FILE, 0o600)
        for name in (KEY_FILE, CERT_FILE, CA_FILE):  # the CA last: its presence means "complete"
            os.replace(tmp / name, state_dir / name)
        tmp.rmdir()
    return ca, cert, key
