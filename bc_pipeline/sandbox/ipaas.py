"""The iPaaS.com stand-in's app: route, fault, authenticate, rate-limit, handle and log each call (IPAAS_BEHAVIOUR.md)."""

from __future__ import annotations

import time
import uuid
from typing import Optional
from urllib.parse import quote, unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bc_pipeline.sandbox.ipaas_admin import handle_admin
from bc_pipeline.sandbox.ipaas_endpoints import Endpoint, route
from bc_pipeline.sandbox.ipaas_handlers import HANDLERS
from bc_pipeline.sandbox.ipaas_http import ApiError, authenticate, error_response, parse_json
from bc_pipeline.sandbox.ipaas_state import IpaasState

ADMIN = "_sandbox/ipaas"


async def handle(sb: IpaasState, request: Request) -> Response:
    # The client's X-Correlation-Id is echoed; X-Client-Id and trackingGuid (the Template sends both) are not checked.
    correlation = request.headers.get("x-correlation-id") or uuid.uuid4().hex
    raw = request.scope.get("raw_path")
    path = (raw.decode("latin-1").split("?", 1)[0] if raw else quote(request.url.path)).lstrip("/")
    if path.lower() == ADMIN or path.lower().startswith(ADMIN + "/"):
        try:
            response = await handle_admin(sb, request, path[len(ADMIN):].strip("/"))
        except ApiError as e:
            response = error_response(e, correlation)
        response.headers["X-Correlation-Id"] = correlation
        return response
    started, ep = time.time(), None
    try:
        ep, params = route(request.method, path)
        response = await _api(sb, request, ep, params)
    except ApiError as e:
        response = error_response(e, correlation)
    except Exception as e:  # a bug in the stand-in: answer 500 JSON like the real service would
        response = error_response(ApiError(500, f"sandbox internal error: {type(e).__name__}: {e}"), correlation)
    response.headers["X-Correlation-Id"] = correlation
    sb.record(request.method, "/" + unquote(path), request.url.query, ep.model if ep else None,
              response.status_code, started, correlation)
    return response


async def _api(sb: IpaasState, request: Request, ep: Optional[Endpoint], params: dict) -> Response:
    sb.fault(request.method, "/" + request.url.path.lstrip("/"))
    if ep is None or not ep.public:
        authenticate(request, sb.config["api_token"])
    sb.admit()
    if ep is None:
        raise ApiError(404, f"no iPaaS.com endpoint at {request.url.path}")
    body = parse_json(await request.body()) if request.method in ("POST", "PUT") else None
    return HANDLERS[ep.action](sb, request, ep, params, body)


def build_ipaas_app(config: Optional[dict] = None) -> Starlette:
    """The iPaaS.com stand-in as an ASGI app; ``app.state.ipaas`` is its IpaasState."""
    sb = IpaasState(config)

    async def endpoint(request: Request) -> Response:
        return await handle(sb, request)

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])])
    app.state.ipaas = sb
    return app


__all__ = ["build_ipaas_app", "handle"]
