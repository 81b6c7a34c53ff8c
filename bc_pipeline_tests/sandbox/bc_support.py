"""Helpers for the Business Central sandbox tests: an authenticated OData session and a nextLink walker."""

from __future__ import annotations

from typing import Any, Optional

import requests

from bc_pipeline.sandbox.launcher import SandboxHandle


def odata_session(sb: SandboxHandle, client_id: Optional[str] = None, secret: Optional[str] = None) -> requests.Session:
    """A session that trusts only the sandbox CA (trust_env off: REQUESTS_CA_BUNDLE would override verify=)."""
    s = requests.Session()
    s.trust_env = False
    s.verify = str(sb.ca_path)
    s.headers["Authorization"] = "Bearer " + sb.token(client_id, secret)
    return s


def follow(s: requests.Session, url: str, params: Optional[dict] = None, headers: Optional[dict] = None,
           max_pages: int = 10_000) -> tuple[list[dict[str, Any]], list[requests.Response]]:
    """Every record of a collection, following @odata.nextLink verbatim; also the page responses."""
    records: list[dict[str, Any]] = []
    pages: list[requests.Response] = []
    next_url: Optional[str] = url
    first = True
    while next_url:
        r = s.get(next_url, params=params if first else None, headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        first = False
        pages.append(r)
        body = r.json()
        records.extend(body["value"])
        next_url = body.get("@odata.nextLink")
        assert len(pages) <= max_pages
    return records, pages


def bc_error(r: requests.Response, status: int, code: Optional[str] = None) -> dict[str, Any]:
    """Assert BC's error shape: {"error": {"code", "message": "... CorrelationId:  <request-id>."}}."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    assert f"CorrelationId:  {r.headers['request-id']}." in body["error"]["message"]
    return body["error"]
