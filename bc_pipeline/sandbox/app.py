"""The one ASGI app on the sandbox's port: dispatches by path to Entra ID, Business Central, iPaaS.com or admin.

  /{tenant}/v2.0/.well-known/openid-configuration, /{tenant}/oauth2/v2.0/token   Entra ID (entra.py)
  /v2.0/{tenant}/{environment}/ODataV4/...                                      Business Central (OData V4)
  /customers, /products, /transactions, /sso, /subscriptions, /hookapi, /_sandbox/ipaas/...   iPaaS.com
  /_sandbox/...                                                                 admin (admin.py, loopback only)

The HTTP layer for BC does, in order: fault switches (drop / status), bearer token (401), tenant and
environment (401 / 404), BC permission (403), the client's rate window and concurrency slots (429),
then delays, the handler and the answer (or a lost answer) - all inside the client's slot. A $batch
meets the switches again once its body is read: a drop on one of its operations drops it unprocessed,
a status answers that operation alone (batch.py). Entra ID and iPaaS.com get the same fault switches
around their handlers. Every request is logged.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
import uuid
from typing import Callable, Optional
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import admin, api_v2, entra
from .batch import operations_of, run_batch
from .bc_errors import Answer, BCError, server_error, too_many_requests, unauthorized, forbidden
from .business_central import ODataRequest, handle, service_name_of
from .fault_answers import HeldAnswer, bc_error_for, drop_connection, entra_error_for, ipaas_error_for
from .faults import Rule
from .limits import Throttled
from .state import SandboxState

log = logging.getLogger("bc_pipeline.sandbox")

IPAAS_DOMAINS = {"customers", "products", "transactions", "sso", "subscriptions", "hookapi"}


def load_ipaas_app(state: SandboxState) -> tuple[Optional[Callable], Optional[str]]:
    """The iPaaS.com stand-in's ASGI app, or (None, why) when it is not there (iPaaS paths then answer 404)."""
    try:
        from bc_pipeline.sandbox.ipaas import build_ipaas_app  # written alongside this package
    except ImportError as exc:
        return None, f"iPaaS.com stand-in not available: {exc}"
    return build_ipaas_app(state.config.ipaas_config()), None


async def read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def send_answer(send, answer: Answer, correlation_id: str) -> None:
    headers = [(b"request-id", correlation_id.encode())]
    if answer.content_type:
        headers.append((b"content-type", answer.content_type.encode()))
    headers.append((b"content-length", str(len(answer.body)).encode()))
    for k, v in answer.headers.items():
        headers.append((k.lower().encode("latin-1"), str(v).encode("latin-1")))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


class SandboxApp:
    """ASGI entry point."""

    def __init__(self, state: SandboxState, ipaas_app: Optional[Callable] = None, ipaas_problem: str = ""):
        self.state = state
        self.ipaas_app = ipaas_app
        self.ipaas_problem = ipaas_problem

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        parts = path.split("/")
        first = parts[1] if len(parts) > 1 else ""
        if first in IPAAS_DOMAINS or path == "/_sandbox/ipaas" or path.startswith("/_sandbox/ipaas/"):
            await self.ipaas(scope, receive, send, path, query)
        elif first == "_sandbox":
            await admin.handle(self, scope, receive, send, path)
        elif first == "v2.0":
            await self.business_central(scope, receive, send, path, query)
        elif len(parts) >= 3 and parts[2] in ("v2.0", "oauth2", ".well-known"):
            await self.entra(scope, receive, send, path, query)
        else:
            await JSONResponse({"error": "not_found", "message": f"The sandbox serves nothing at {path}.",
                                "see": "/_sandbox/health"}, status_code=404)(scope, receive, send)

    async def lifespan(self, scope, receive, send) -> None:
        if self.ipaas_app is not None:
            await self.ipaas_app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    def base_url(scope) -> str:
        host = dict(scope["headers"]).get(b"host")
        if host:
            return f"{scope.get('scheme', 'https')}://{host.decode('latin-1')}"
        server = scope.get("server") or ("127.0.0.1", 443)
        return f"{scope.get('scheme', 'https')}://{server[0]}:{server[1]}"

    # --- Entra ID ----------------------------------------------------------------------------------------

    async def entra(self, scope, receive, send, path: str, query: str) -> None:
        state = self.state
        entry = state.begin(scope["method"], path + (f"?{query}" if query else ""), "entra")
        status_box = [500]

        async def logged_send(message):
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        try:
            rule = state.faults.take_failure("entra", None, path, scope["method"])
            if rule is not None:
                state.counters["fault_answers"] += 1
                await self._instead(rule, entra_error_for, scope, receive, logged_send, status_box)
                return
            delay = state.faults.take_delay("entra", None, path, scope["method"])
            if delay:
                await asyncio.sleep(delay)
            request = Request(scope, receive)
            parts = path.split("/")
            tenant = unquote(parts[1])
            rest = "/".join(parts[2:])
            base = self.base_url(scope)
            if scope["method"] == "GET" and rest in ("v2.0/.well-known/openid-configuration",
                                                     ".well-known/openid-configuration"):
                response = entra.openid_configuration(state.config, base, tenant)
            elif scope["method"] == "POST" and rest in ("oauth2/v2.0/token", "oauth2/token"):
                response = await entra.token_endpoint(state.config, state.tokens, request, tenant)
            else:
                response = entra.entra_error(404, "invalid_request", 900561, f"The endpoint only accepts the "
                                             f"openid-configuration (GET) and token (POST) requests, not "
                                             f"{scope['method']} {path}.")
            lost = self._lost_answer("entra", None, path, scope["method"], response.status_code)
            if lost is not None:
                await self._instead(lost, entra_error_for, scope, receive, logged_send, status_box)
                return
            await response(scope, receive, logged_send)
        finally:
            state.finish(entry, status_box[0])

    # --- Business Central --------------------------------------------------------------------------------

    async def business_central(self, scope, receive, send, path: str, query: str) -> None:
        state = self.state
        method = scope["method"]
        entry = state.begin(method, path + (f"?{query}" if query else ""), "bc")
        correlation_id = str(uuid.uuid4())
        entry["correlation_id"] = correlation_id
        status_box = [500]
        try:
            answer = await self._bc_answer(scope, receive, send, path, query, entry, correlation_id, status_box)
            if answer is not None:
                status_box[0] = answer.status
                await send_answer(send, answer, correlation_id)
        finally:
            state.finish(entry, status_box[0])

    async def _bc_answer(self, scope, receive, send, path, query, entry, correlation_id,
                         status_box: list) -> Optional[Answer]:
        """The answer to send, or None when it was sent already (inside the client's slot) or dropped."""
        state = self.state
        config = state.config
        method = scope["method"]
        try:
            segs = path.split("/", 5)  # ['', 'v2.0', tenant, environment, 'ODataV4' | 'api', rest]
            if len(segs) < 5 or segs[4] not in ("ODataV4", "api"):
                raise BCError(404, "BadRequest_NotFound", f"No HTTP resource was found that matches the request "
                              f"URI '{path}'. The sandbox serves OData V4 web services under "
                              "/v2.0/{tenant}/{environment}/ODataV4/ and the API under .../api/v2.0/.")
            rest = segs[5] if len(segs) > 5 else ""
            is_api = segs[4] == "api"
            service = api_v2.resource_name(rest) if is_api else service_name_of(rest, query)
            entry["service"] = service
            rule = state.faults.take_failure("bc", service, path, method)
            if rule is not None:
                state.counters["fault_answers"] += 1
                return await self._bc_instead(rule, scope, send, correlation_id, status_box)
            token_text = _bearer(scope)
            if token_text is None:
                raise unauthorized("The authentication failed because of missing 'Authorization' header.")
            token, why = state.tokens.lookup(token_text)
            if why == "invalid":
                raise unauthorized("The access token is invalid.")
            if why == "expired":
                entry["client_id"] = token.client_id
                raise unauthorized("The access token has expired.")
            entry["client_id"] = token.client_id
            tenant, environment = unquote(segs[2]), unquote(segs[3])
            if not entra.tenant_matches(config, tenant) or token.tenant_id != config.tenant_id:
                raise unauthorized(f"The access token was issued for another tenant than '{tenant}'.")
            if environment != config.environment:
                raise BCError(404, "BadRequest_NotFound", f"The environment '{environment}' does not exist for "
                              f"tenant '{tenant}'. Environments: {config.environment}.")
            if token.client_id in state.denied_clients:
                raise forbidden(token.client_id)
            limits = state.limits.for_client(token.client_id)
            try:
                await limits.acquire()
            except Throttled as exc:
                if exc.status == 429:
                    state.counters["throttled_429"] += 1
                    raise too_many_requests(exc.detail, config.bc_retry_after_seconds) from None
                raise server_error(503, config.bc_retry_after_seconds) from None
            try:
                delay = state.faults.take_delay("bc", service, path, method) + config.bc_latency_seconds
                if delay:
                    await asyncio.sleep(delay)
                body = await read_body(receive) if method in ("POST", "PATCH", "PUT", "MERGE", "DELETE") else b""
                headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
                root = f"{self.base_url(scope)}{'/'.join(segs[:5])}/"
                req = ODataRequest(method=method, path=rest, query=query, headers=headers, body=body,
                                   service_root=root, client_id=token.client_id)
                if is_api:
                    answer = await api_v2.handle(state, method, rest, query, headers, body,
                                                 f"{self.base_url(scope)}{'/'.join(segs[:5])}/", token.client_id)
                elif rest.rstrip("/") == "$batch":
                    if method != "POST":
                        raise BCError(405, "BadRequest_MethodNotAllowed", "$batch takes POST only.")
                    operations = operations_of(req)
                    dropped = state.faults.take_inner_drop("bc", operations)
                    if dropped is not None:  # before any operation runs: nothing in the batch is processed
                        state.counters["fault_answers"] += 1
                        return await self._bc_instead(dropped, scope, send, correlation_id, status_box)
                    answer = run_batch(state, req, correlation_id)
                else:
                    answer = handle(state, req)
                lost = self._lost_answer("bc", service, path, method, answer.status)
                if lost is None and service == "$batch":
                    for inner_service, inner_method, inner_path in operations:
                        lost = self._lost_answer("bc", inner_service, inner_path, inner_method, answer.status)
                        if lost is not None:
                            break
                if lost is not None:
                    answer = await self._bc_instead(lost, scope, send, correlation_id, status_box)
                    if answer is None:
                        return None
                status_box[0] = answer.status
                await send_answer(send, answer, correlation_id)  # inside the slot: big pages take time to send
                return None
            finally:
                limits.release()
        except BCError as exc:
            return exc.answer(correlation_id)
        except Exception:
            log.error("sandbox error on %s %s\n%s", method, path, traceback.format_exc())
            return BCError(500, "Internal_ServerError", "The sandbox failed to answer: "
                           f"{traceback.format_exc(limit=1).strip().splitlines()[-1]}").answer(correlation_id)

    # --- iPaaS.com ---------------------------------------------------------------------------------------

    async def ipaas(self, scope, receive, send, path: str, query: str) -> None:
        state = self.state
        entry = state.begin(scope["method"], path + (f"?{query}" if query else ""), "ipaas")
        status_box = [500]

        async def logged_send(message):
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        try:
            if self.ipaas_app is None:
                await JSONResponse({"errors": [{"message": self.ipaas_problem or "iPaaS.com stand-in not loaded"}]},
                                   status_code=404)(scope, receive, logged_send)
                return
            if not path.startswith("/_sandbox/"):
                rule = state.faults.take_failure("ipaas", None, path, scope["method"])
                if rule is not None:
                    state.counters["fault_answers"] += 1
                    await self._instead(rule, ipaas_error_for, scope, receive, logged_send, status_box)
                    return
                delay = state.faults.take_delay("ipaas", None, path, scope["method"])
                if delay:
                    await asyncio.sleep(delay)
                if state.faults.awaits_lost_answer("ipaas", None, path, scope["method"]):
                    held = HeldAnswer()
                    await self.ipaas_app(scope, receive, held.send)
                    lost = self._lost_answer("ipaas", None, path, scope["method"], held.status)
                    if lost is not None:
                        await self._instead(lost, ipaas_error_for, scope, receive, logged_send, status_box)
                    else:
                        await held.replay(logged_send)
                    return
            await self.ipaas_app(scope, receive, logged_send)
        finally:
            state.finish(entry, status_box[0])

    # --- faults in the services' stead -------------------------------------------------------------------

    def _lost_answer(self, target: str, service: Optional[str], path: str, method: str,
                     status: int) -> Optional[Rule]:
        """The lost_answer rule that takes this answer: only an answer to a processed request (below 400)."""
        if status >= 400:
            return None
        rule = self.state.faults.take_lost_answer(target, service, path, method)
        if rule is not None:
            self.state.counters["lost_answers"] += 1
        return rule

    async def _drop(self, scope, send, status_box: list) -> None:
        self.state.counters["dropped"] += 1
        status_box[0] = 0
        await drop_connection(scope, send)

    async def _instead(self, rule: Rule, error_for: Callable[..., Response], scope, receive, send,
                       status_box: list) -> None:
        """Drop the connection or send error_for's answer for the rule's status (Entra ID and iPaaS.com)."""
        if rule.instead == "drop":
            await self._drop(scope, send, status_box)
            return
        await error_for(scope, rule.instead, rule.retry_after)(scope, receive, send)

    async def _bc_instead(self, rule: Rule, scope, send, correlation_id: str, status_box: list) -> Optional[Answer]:
        """BC's error answer for the rule's status, or None once the connection is dropped."""
        if rule.instead == "drop":
            await self._drop(scope, send, status_box)
            return None
        return bc_error_for(rule.instead, rule.retry_after).answer(correlation_id)


def _bearer(scope) -> Optional[str]:
    for k, v in scope["headers"]:
        if k == b"authorization":
            text = v.decode("latin-1").strip()
            if text[:7].lower() == "bearer ":
                return text[7:].strip() or None
            return None
    return None


def build_app(state: SandboxState) -> SandboxApp:
    ipaas_app, problem = load_ipaas_app(state)
    if problem:
        log.warning(problem)
    return SandboxApp(state, ipaas_app, problem or "")


__all__ = ["SandboxApp", "build_app", "IPAAS_DOMAINS"]
