"""The guide's Troubleshooting as a command: check settings, token, company, each service, iPaaS.com."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from bc_pipeline.catalog import ENTITIES
from bc_pipeline.clients.business_central import BusinessCentralClient
from bc_pipeline.clients.errors import PipelineError, ServiceError, TransportError
from bc_pipeline.clients import odata
from bc_pipeline.clients.ipaas import IpaasClient
from bc_pipeline.mapping.add_defaults import ADD_DEFAULTS
from bc_pipeline.mapping.collection import MappingCollection
from bc_pipeline.mapping.registry import from_ipaas_collections
from bc_pipeline.service_fields import by_catalog_name, parse_metadata
from bc_pipeline.settings import SettingsError, SubscriptionSettings, load_settings


@dataclass
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""


def _attempt(name: str, action: Callable[[], str]) -> Finding:
    try:
        return Finding(name, True, action())
    except ServiceError as exc:
        return Finding(name, False, f"{exc.service} answered {exc.status or ''} {exc.code or ''}: {exc.message}".replace("  ", " "), exc.hint or "")
    except PipelineError as exc:
        text = str(exc)
        detail, _, fix = text.partition(". What to do: ")
        return Finding(name, False, detail, fix)


def diagnose(settings: Optional[SubscriptionSettings] = None, *, check_ipaas: bool = True) -> list[Finding]:
    """Every check, in the order the guide's setup goes; later checks are skipped when earlier ones fail."""
    findings: list[Finding] = []
    if settings is None:
        try:
            settings = load_settings()
        except SettingsError as exc:
            return [Finding("settings", False, p, "") for p in exc.problems]
    try:
        settings.require_bc()
    except SettingsError as exc:
        return [Finding("settings", False, p, "") for p in exc.problems]
    findings.append(Finding("settings", True, f"company {settings.company_name!r}, environment {settings.environment!r}, API URL {settings.api_url}"))

    client = BusinessCentralClient(settings)
    try:
        def token_check() -> str:
            client.tokens.token()
            return "got an access token from Microsoft Entra ID"

        token = _attempt("token", token_check)
        findings.append(token)
        if not token.ok:
            return findings

        names: list = []
        failed_as = "company"  # reading the companies may fail for another reason than the environment (permission)

        def environment_check() -> str:
            nonlocal failed_as
            try:
                names.extend(c.get("Name") for c in client.companies())
            except ServiceError as exc:
                # The company list's URL names only the tenant and the environment: a 404 there is the environment.
                if exc.status == 404:
                    failed_as = "environment"
                    raise _EnvironmentMissing(settings.environment, exc) from exc
                raise
            except TransportError:
                failed_as = "Business Central"
                raise
            return f"environment {settings.environment!r} answers with {len(names)} companies"

        environment = _attempt("environment", environment_check)
        if not environment.ok:
            environment.check = failed_as
            findings.append(environment)
            return findings
        findings.append(environment)

        def company_check() -> str:
            if settings.company_name not in names:
                raise _CompanyMissing(settings.company_name, names)
            return f"company {settings.company_name!r} found among {len(names)}"

        company = _attempt("company", company_check)
        findings.append(company)
        if not company.ok:
            return findings
        for entity in ENTITIES:
            def probe(entity=entity) -> str:
                page = next(client.iter_pages(entity.service, page_size=1), None)
                fields = sorted(page.records[0]) if page and page.records else []
                missing = [f for f in entity.select if fields and f not in fields]
                note = f"; fields the pipeline asks for but the page lacks: {', '.join(missing)}" if missing else ""
                return f"{entity.object_type} {entity.object_id} published as {client.published(entity.service)}{note}"

            findings.append(_attempt(f"service {entity.service}", probe))
        for collection in from_ipaas_collections().values():
            if collection.add_defaults:
                findings.append(_attempt(f"add defaults of {collection.slug}",
                                         lambda c=collection: _check_add_defaults(client, c)))
        findings.append(_check_webhooks(settings, client))
        metadata: list[dict[str, set[str]]] = []  # read once, for both checks

        def published() -> dict[str, set[str]]:
            if not metadata:
                metadata.append(by_catalog_name(parse_metadata(client.metadata()), settings))
            return metadata[0]

        findings.append(_attempt("collection fields", lambda: _check_collection_fields(published())))
        findings.append(_attempt("change dates", lambda: _check_change_dates(published(), settings)))
    finally:
        client.close()

    if check_ipaas:
        findings.append(_check_ipaas(settings))
    return findings


def _check_webhooks(settings: SubscriptionSettings, client: BusinessCentralClient) -> Finding:
    """Which way BC's changes travel: webhook subscriptions (each active?) or the 15-minute incremental schedule."""
    from bc_pipeline.clients.bc_api import BusinessCentralApi
    from bc_pipeline.webhooks.subscriptions import MISSING, in_force, states

    if not settings.bc_webhook_notification_url:
        return Finding("webhook subscriptions", True, "BC_WEBHOOK_NOTIFICATION_URL is not set: Business Central's "
                       "changes travel by the 15-minute incremental schedule (incremental_sync_every_15_minutes, "
                       "switched on in the Dagster UI)")
    found: list = []

    def probe() -> str:
        found.extend(states(BusinessCentralApi(client), settings))
        expiries = "; ".join(f"{s.entity.name} {s.state}" + (f" until {s.expires}" if s.expires else "") for s in found)
        return f"{in_force(found)} ({expiries})"

    finding = _attempt("webhook subscriptions", probe)
    if finding.ok and any(s.state == MISSING for s in found):
        finding.ok = False
        finding.fix = ("run `bc-pipeline webhooks subscriptions create` (the bc_webhook_subscriptions_hourly schedule "
                       "does it within the hour), with `bc-pipeline webhooks serve` reachable at "
                       "BC_WEBHOOK_NOTIFICATION_URL")
    return finding


def _check_collection_fields(published: dict[str, set[str]]) -> str:
    """Every BC field a mapping collection names (either direction) against the services' $metadata."""
    from bc_pipeline.mapping.fields import fields_by_service
    from bc_pipeline.mapping.registry import all_collections
    from bc_pipeline.service_fields import FIX, describe_missing, missing_fields

    named = fields_by_service(all_collections().values())
    # A service that is not published at all is reported by its own check above.
    problems = [describe_missing(service, missing) for service, fields in named.items()
                if service in published and (missing := missing_fields(published, service, fields))]
    if problems:
        raise PipelineError("; ".join(problems) + f". What to do: {FIX}")
    total = sum(len(f) for f in named.values())
    return f"all {total} fields the mapping collections name are published ({len(named)} services)"


def _check_change_dates(published: dict[str, set[str]], settings: SubscriptionSettings) -> str:
    """How each entity is read each sync, and the SystemModifiedAt a page extension exposes but no setting uses."""
    from bc_pipeline.catalog import with_change_field

    unused = [e for e in ENTITIES if "SystemModifiedAt" in published.get(e.service, ())
              and e.name not in settings.modified_at_fields]
    read = [with_change_field(e, settings.modified_at_fields) for e in ENTITIES]
    changes = ", ".join(f"{e.name} by {e.modified_at}" for e in read if e.modified_at)
    text = f"changes only: {changes or 'none'}; the rest read in full each sync (unchanged records are not sent)"
    if unused:
        pairs = ",".join(f"{e.name}=SystemModifiedAt" for e in unused)
        text += (f"; {', '.join(e.service for e in unused)} expose SystemModifiedAt (a page extension): read only "
                 f"their changes with BC_MODIFIED_AT_FIELDS={pairs}")
    return text


def _check_ipaas(settings: SubscriptionSettings) -> Finding:
    try:
        settings.require_ipaas()
    except SettingsError as exc:
        return Finding("iPaaS.com", False, "; ".join(exc.problems), "set IPAAS_API_TOKEN and IPAAS_SYSTEM_ID")

    def probe() -> str:
        client = IpaasClient(settings)
        try:
            next(client.iter_pages("Location", page_size=1))
        finally:
            client.close()
        return f"reached {settings.ipaas_api_url} with the API token"

    return _attempt("iPaaS.com", probe)


class _EnvironmentMissing(PipelineError):
    def __init__(self, wanted: str, answer: ServiceError):
        super().__init__(
            f"Business Central has no environment {wanted!r} for this tenant ({answer.status} {answer.code or ''}: "
            f"{answer.message}). What to do: set Environment (BC_ENVIRONMENT) to the environment's name exactly as "
            "Business Central → Settings → Admin Center → Operations shows it (e.g. Production, Sandbox)"
        )


def _check_add_defaults(client: BusinessCentralClient, collection: MappingCollection) -> str:
    """Each code a collection's Add sets exists in the company's setup table (read through its web service)."""
    where = (collection.source_file or "").rsplit("/", 1)[-1] or collection.name
    specs = ADD_DEFAULTS[collection.target_model]
    found, problems, fixes = [], [], []
    for key, code in collection.add_defaults.items():
        spec = specs[key]
        try:
            rows = list(client.read(spec.service, select=["Code"], filter=odata.compare("Code", "eq", code)))
        except ServiceError as exc:
            if exc.status != 404:
                raise
            problems.append(f"add_defaults.{key} {code!r} cannot be checked: web service {spec.service} is not published")
            fixes.append(f"publish Page {spec.page} {spec.page_name} as web service {spec.service}")
            continue
        if rows:
            found.append(f"{spec.field} {code!r}")
        else:
            problems.append(f"add_defaults.{key} {code!r} is not a {spec.table} of the company")
            fixes.append(f"set add_defaults.{key} in {where} to a code of {spec.page_name} (page {spec.page}), "
                         f"or create {code!r} there")
    if problems:
        raise PipelineError(f"{where}: {'; '.join(problems)}. What to do: {'; '.join(fixes)}")
    return f"{where}: {', '.join(found)} exist in the company"


class _CompanyMissing(PipelineError):
    def __init__(self, wanted: str, names: list):
        shown = ", ".join(repr(n) for n in names[:10])
        super().__init__(
            f"Business Central has no company named {wanted!r} (it has {shown}). What to do: set Company Name "
            "(BC_COMPANY_NAME) to the name exactly as Business Central shows it, including case and punctuation"
        )


def render(findings: list[Finding]) -> str:
    lines = []
    for f in findings:
        mark = "ok  " if f.ok else "FAIL"
        lines.append(f"[{mark}] {f.check}: {f.detail}")
        if not f.ok and f.fix:
            lines.append(f"       fix: {f.fix}")
    failed = sum(not f.ok for f in findings)
    lines.append(f"{failed} of {len(findings)} checks failed" if failed else f"all {len(findings)} checks ok")
    return "\n".join(lines)
