"""Starts the sandbox in a subprocess and hands back a SandboxHandle; also the `sandbox serve` command line.

    from bc_pipeline.sandbox.launcher import SandboxConfig, start_sandbox
    with start_sandbox(SandboxConfig(scale=0.05)) as sb:
        os.environ.update(sb.env())      # BC_*, IPAAS_*, REQUESTS_CA_BUNDLE pointing at the sandbox
        sb.set_faults({"kind": "status", "status": 503, "retry_after": 1, "count": 2})
        sb.records("CustomerCard")       # what the pipeline wrote
        sb.ipaas_count("Transaction", by="external_id")   # how many, unlinked ("missing"), duplicates

The child exits when its stdin closes, so it never outlives the process that started it.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence
from urllib.parse import quote

import requests

from .config import (BC_SCOPE, DEFAULT_STATE_DIR, REPO_DIR, SandboxConfig, ClientRegistration)  # noqa: F401
from .tls import ensure_certificates

__all__ = ["SandboxConfig", "ClientRegistration", "SandboxHandle", "start_sandbox", "serve_forever", "main",
           "sandbox_env", "sandbox_exports"]


def sandbox_env(config: SandboxConfig, base_url: str, ca_path: Path) -> dict[str, str]:
    """The pipeline's environment variables for a sandbox at base_url."""
    return {
        "BC_TENANT_ID": config.tenant_id,
        "BC_CLIENT_ID": config.client_id,
        "BC_CLIENT_SECRET": config.client_secret,
        "BC_ENVIRONMENT": config.environment,
        "BC_COMPANY_NAME": config.company_name,
        "BC_SCOPE": BC_SCOPE,
        "BC_API_URL": base_url,
        "BC_AUTHORITY_HOST": base_url,
        "IPAAS_API_URL": base_url,
        "IPAAS_API_TOKEN": config.ipaas_api_token,
        "IPAAS_SYSTEM_ID": config.ipaas_system_id,
        "REQUESTS_CA_BUNDLE": str(ca_path),
    }


def sandbox_exports(config: SandboxConfig, base_url: str, ca_path: Path) -> dict[str, str]:
    """sandbox_env plus the throttle settings that match the sandbox's own limits, for a run in another shell.

    Without them a run uses the pipeline's defaults (iPaaS.com 500 per 60 s), far below what this sandbox allows.
    """
    return {
        **sandbox_env(config, base_url, ca_path),
        "IPAAS_THROTTLE_LIMIT": str(config.ipaas_rate_limit),
        "IPAAS_THROTTLE_SECONDS": f"{config.ipaas_rate_window_seconds:g}",
        "BC_THROTTLE_LIMIT": str(config.bc_rate_limit),
        "BC_THROTTLE_SECONDS": f"{config.bc_rate_window_seconds:g}",
        "CONCURRENT_CONNECTIONS": str(config.bc_max_concurrent),
    }


class SandboxHandle:
    """A running sandbox: its URL, CA, config, the pipeline's env, admin helpers, and stop()."""

    def __init__(self, config: SandboxConfig, base_url: str, ca_path: Path, process: Optional[subprocess.Popen],
                 log_path: Optional[Path] = None):
        self.config = config
        self.base_url = base_url
        self.ca_path = ca_path
        self.process = process
        self.log_path = log_path
        self.session = requests.Session()
        self.session.verify = str(ca_path)
        self.session.trust_env = False

    # --- addresses -----------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def authority(self) -> str:
        return f"{self.base_url}/{self.config.tenant_id}"

    @property
    def token_url(self) -> str:
        return f"{self.authority}/oauth2/v2.0/token"

    @property
    def odata_root(self) -> str:
        """https://127.0.0.1:PORT/v2.0/{tenant}/{environment}/ODataV4"""
        return f"{self.base_url}/v2.0/{self.config.tenant_id}/{self.config.environment}/ODataV4"

    def company_url(self, service: Optional[str] = None) -> str:
        """The OData URL of the company, or of one of its services."""
        literal = "'" + self.config.company_name.replace("'", "''") + "'"
        url = f"{self.odata_root}/Company({quote(literal, safe=chr(39))})"
        return f"{url}/{service}" if service else url

    def env(self) -> dict[str, str]:
        return sandbox_env(self.config, self.base_url, self.ca_path)

    # --- admin helpers -------------------------------------------------------------------------------

    @property
    def admin(self) -> "SandboxHandle":
        """The admin helpers (also available directly on the handle): sb.admin.requests() == sb.requests()."""
        return self

    def _admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base_url}/_sandbox/{path}", timeout=60, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"sandbox admin {method} {path} answered {response.status_code}: {response.text}")
        return response.json()

    def health(self) -> dict[str, Any]:
        return self._admin("GET", "health")

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Every request the sandbox has seen after sequence number `since`."""
        return self._admin("GET", "requests", params={"since": since})["requests"]

    def last_seq(self) -> int:
        return self._admin("GET", "requests", params={"since": 1 << 62})["last_seq"]

    def records(self, service: str, filter: Optional[str] = None, key: Any = None) -> list[dict[str, Any]]:
        """The service's current records (optionally narrowed by an OData $filter or one key)."""
        params = {}
        if filter:
            params["$filter"] = filter
        if key is not None:
            params["key"] = key if isinstance(key, str) else json.dumps(key)
        return self._admin("GET", f"bc/records/{service}", params=params)["value"]

    def count(self, service: str, by: Optional[str] = None, filter: Optional[str] = None) -> dict[str, Any]:
        """{"count"} of the service's records; with ``by`` also the field's "distinct", "missing", "duplicates"."""
        params = {k: v for k, v in {"by": by, "$filter": filter}.items() if v is not None}
        return self._admin("GET", f"bc/counts/{service}", params=params)

    def ipaas_records(self, model: str) -> list[dict[str, Any]]:
        """Every record of an iPaaS.com model (e.g. "Transaction"), with its external_ids."""
        return self._admin("GET", f"ipaas/records/{quote(model)}")

    def ipaas_count(self, model: str, by: Optional[str] = None) -> dict[str, Any]:
        """{"count"} of an iPaaS.com model's records; ``by`` a field or "external_id" (unlinked are "missing")."""
        return self._admin("GET", f"ipaas/counts/{quote(model)}", params={"by": by} if by else {})

    def edit_record(self, service: str, key: Any, changes: Optional[dict[str, Any]] = None, *,
                    delete: bool = False) -> dict[str, Any]:
        """Change (or delete) a record as another BC user would: new values and a new ETag."""
        body: dict[str, Any] = {"key": key}
        if delete:
            body["delete"] = True
        else:
            body["changes"] = changes or {}
        return self._admin("POST", f"bc/records/{service}", json=body)

    def insert_record(self, service: str, record: dict[str, Any]) -> dict[str, Any]:
        return self._admin("POST", f"bc/records/{service}", json={"record": record})

    @property
    def api_root(self) -> str:
        """https://127.0.0.1:PORT/v2.0/{tenant}/{environment}/api/v2.0 (the standard API, webhooks)"""
        return f"{self.base_url}/v2.0/{self.config.tenant_id}/{self.config.environment}/api/v2.0"

    def webhooks(self) -> dict[str, Any]:
        """API webhook subscriptions, changes waiting to be notified, and the deliveries' log."""
        return self._admin("GET", "bc/webhooks")

    def expire_subscription(self, subscription_id: str) -> dict[str, Any]:
        """Let a subscription's 3 days pass: BC stops notifying it and forgets it."""
        return self._admin("POST", "bc/webhooks/expire", json={"subscriptionId": subscription_id})

    def set_faults(self, *faults: dict[str, Any]) -> dict[str, Any]:
        """Add fault rules / run actions (see bc_pipeline.sandbox.faults)."""
        return self._admin("POST", "faults", json={"faults": list(faults)})

    def clear_faults(self) -> dict[str, Any]:
        return self._admin("DELETE", "faults")

    def faults(self) -> dict[str, Any]:
        return self._admin("GET", "faults")

    def stats(self) -> dict[str, Any]:
        return self._admin("GET", "stats")

    def reset(self) -> dict[str, Any]:
        """Reseed the data and clear faults, log and counters."""
        return self._admin("POST", "reset")

    def token(self, client_id: Optional[str] = None, client_secret: Optional[str] = None) -> str:
        """An access token straight from the sandbox's token endpoint (tests that do not use MSAL)."""
        response = self.session.post(self.token_url, data={
            "grant_type": "client_credentials", "client_id": client_id or self.config.client_id,
            "client_secret": client_secret or self.config.client_secret, "scope": BC_SCOPE}, timeout=30)
        response.raise_for_status()
        return response.json()["access_token"]

    # --- lifetime ------------------------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        self.session.close()
        if process is None:
            return
        try:
            if process.stdin:
                process.stdin.close()  # the child's stdin watch exits on EOF
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.log_path is not None:  # keep a log only when the sandbox had something to say
            try:
                if self.log_path.stat().st_size == 0:
                    self.log_path.unlink()
            except OSError:
                pass

    def __enter__(self) -> "SandboxHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SandboxHandle({self.base_url}, pid={self.process.pid if self.process else None})"


def start_sandbox(config: Optional[SandboxConfig] = None, **overrides: Any) -> SandboxHandle:
    """Start the sandbox in a subprocess and wait until /_sandbox/health answers over HTTPS with the CA."""
    config = (config or SandboxConfig()).model_copy(update=overrides) if overrides else (config or SandboxConfig())
    config = SandboxConfig.model_validate(config.model_dump())
    state_dir = Path(config.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    ca, _, _ = ensure_certificates(state_dir)
    fd, port_name = tempfile.mkstemp(prefix="port-", dir=state_dir)
    os.close(fd)
    port_file = Path(port_name)
    port_file.unlink()
    log_path = state_dir / f"sandbox-{os.getpid()}-{int(time.time() * 1000)}.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_DIR) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "bc_pipeline.sandbox", "serve", "--config-json", config.model_dump_json(),
           "--port-file", str(port_file), "--exit-on-stdin-eof", "--quiet"]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log_file, stderr=subprocess.STDOUT,
                                   cwd=str(REPO_DIR), env=env)
    handle: Optional[SandboxHandle] = None
    deadline = time.monotonic() + config.startup_timeout_seconds
    try:
        while not port_file.exists():
            if process.poll() is not None:
                raise RuntimeError(f"the sandbox exited with code {process.returncode} before listening:\n"
                                   f"{_tail(log_path)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sandbox did not start within {config.startup_timeout_seconds} s:\n"
                                   f"{_tail(log_path)}")
            time.sleep(0.02)
        port = int(port_file.read_text())
        port_file.unlink(missing_ok=True)
        host = "[::1]" if config.host == "::1" else config.host
        handle = SandboxHandle(config.model_copy(update={"port": port}), f"https://{host}:{port}", ca, process,
                               log_path)
        while True:
            try:
                if handle.session.get(f"{handle.base_url}/_sandbox/health", timeout=5).status_code == 200:
                    break
            except requests.exceptions.ConnectionError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"the sandbox exited with code {process.returncode}:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sandbox did not answer within {config.startup_timeout_seconds} s:\n"
                                   f"{_tail(log_path)}")
            time.sleep(0.05)
    except BaseException:
        if handle is not None:
            handle.stop()
        else:
            process.kill()
            process.wait()
        raise
    atexit.register(handle.stop)
    return handle


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def serve_forever(config: SandboxConfig, *, quiet: bool = False, port_file: Optional[Path] = None,
                  exit_on_stdin_eof: bool = False) -> None:
    """Serve in the foreground (Ctrl+C stops); prints the environment to point the pipeline at it."""
    from .server import serve

    def announce(port: int, ca: Path) -> None:
        if quiet:
            return
        host = "[::1]" if config.host == "::1" else config.host
        base = f"https://{host}:{port}"
        print(f"bc_pipeline sandbox listening on {base} (Entra ID, Business Central OData V4, iPaaS.com)")
        print("Point the pipeline at it with:")
        for k, v in sandbox_exports(config, base, ca).items():
            print(f"export {k}={_shell_quote(v)}")
        print("Admin: GET /_sandbox/health, /_sandbox/requests, /_sandbox/stats; POST/DELETE /_sandbox/faults",
              flush=True)

    serve(config, port_file=port_file, exit_on_stdin_eof=exit_on_stdin_eof, on_ready=announce)


def _shell_quote(value: str) -> str:
    if value and all(c.isalnum() or c in "-_./:@" for c in value):
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m bc_pipeline.sandbox serve [--port 8443] [--scale 1] [--state-dir DIR] ...`"""
    parser = argparse.ArgumentParser(prog="bc-pipeline sandbox",
                                     description="Local HTTPS stand-ins for Entra ID, Business Central and iPaaS.com")
    sub = parser.add_subparsers(dest="command")
    serve_p = sub.add_parser("serve", help="serve in the foreground")
    serve_p.add_argument("--port", type=int, help="port (default 8443; 0 picks a free one)")
    serve_p.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve_p.add_argument("--scale", type=float, help="seed data size multiplier (default 1)")
    serve_p.add_argument("--profile", choices=["default", "benchmark"], help="seed profile (benchmark: ~190k rows)")
    serve_p.add_argument("--seed", type=int, help="random seed (default 42)")
    serve_p.add_argument("--state-dir", type=Path, help=f"certificates and logs (default {DEFAULT_STATE_DIR})")
    serve_p.add_argument("--config-json", help="a full SandboxConfig as JSON (other flags override it)")
    serve_p.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    serve_p.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    serve_p.add_argument("--quiet", action="store_true", help="do not print the environment")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.command != "serve":
        parser.print_help()
        return 2
    config = SandboxConfig.model_validate_json(args.config_json) if args.config_json else SandboxConfig(port=8443)
    updates = {k: v for k, v in {"port": args.port, "host": args.host, "scale": args.scale, "seed": args.seed,
                                 "state_dir": args.state_dir, "seed_profile": args.profile}.items() if v is not None}
    if updates:
        config = SandboxConfig.model_validate({**config.model_dump(), **updates})
    try:
        serve_forever(config, quiet=args.quiet, port_file=args.port_file, exit_on_stdin_eof=args.exit_on_stdin_eof)
    except KeyboardInterrupt:
        pass
    return 0
