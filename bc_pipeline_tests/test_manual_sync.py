"""Manual Sync (the guide's form) validates like the receiver and queues exactly what was asked."""

from __future__ import annotations

import argparse

import pytest

from bc_pipeline.manual_sync import (
    ManualSyncError,
    add_sync_arguments,
    enqueue_manual_sync,
    format_status,
    parse_ids,
    run_sync_command,
)
from bc_pipeline.settings import load_settings
from bc_pipeline.state import inbox
from bc_pipeline.state.database import engine_for

CUSTOMER_TO = "Dynamics Customer Add/Update to iPaaS"
ORDER_FROM = "Dynamics Sales Order Add/Update From iPaaS"


@pytest.fixture
def settings(tmp_path):
    return load_settings({"ipaas_webhook_api_key": "k", "home": tmp_path, "state_url": f"sqlite:///{tmp_path}/s.sqlite"},
                         from_environment=False)


@pytest.fixture
def engine(settings):
    return engine_for(settings.state_database_url)


def test_parse_ids_splits_on_commas_and_newlines_trims_and_drops_duplicates():
    assert parse_ids(["C10000, C20000", "C30000\nC10000\r\n", " ", "C40000,,"]) == ["C10000", "C20000", "C30000", "C40000"]
    assert parse_ids("C1' or No ne '") == ["C1' or No ne '"]
    assert parse_ids(None) == [] and parse_ids([]) == []


def test_more_than_3000_ids_is_a_clear_error(engine):
    ids = [f"C{i}" for i in range(3001)]
    with pytest.raises(ManualSyncError, match=r"3,001 ids given; .* at most 3,000"):
        parse_ids(ids)
    with pytest.raises(ManualSyncError, match="at most 3,000"):
        enqueue_manual_sync(engine, collection=CUSTOMER_TO, scope="updated", external_ids=[",".join(ids)])
    assert inbox.status(engine) == []
    assert len(parse_ids(ids[:3000] + ids[:10])) == 3000  # duplicates do not count


def test_one_customer_by_customer_no_queues_exactly_that(engine):
    ids = enqueue_manual_sync(engine, system="MSD 365", collection=CUSTOMER_TO, scope="Created", external_ids=["C10000"])
    [row] = inbox.status(engine)
    assert ids == [row.id]
    assert (row.source, row.system, row.collection, row.direction, row.scope, row.action, row.external_id,
            row.ipaas_id, row.status, row.priority) == (
        "manual", "MSD 365", CUSTOMER_TO, "TO_IPAAS", "customer/created", "created", "C10000", None, "pending", 0)


def test_from_ipaas_collections_take_ipaas_ids(engine):
    ids = enqueue_manual_sync(engine, collection=ORDER_FROM, scope="updated", ipaas_ids="5521,5522")
    rows = {r.id: r for r in inbox.status(engine)}
    assert [(rows[i].ipaas_id, rows[i].external_id, rows[i].direction, rows[i].scope) for i in ids] == [
        ("5521", None, "FROM_IPAAS", "transaction/updated"), ("5522", None, "FROM_IPAAS", "transaction/updated")]


def test_the_collection_may_be_named_in_any_case_or_by_its_slug(engine):
    enqueue_manual_sync(engine, collection="customer_to_ipaas", scope="updated", external_ids=["C1"])
    enqueue_manual_sync(engine, collection="dynamics customer add/update TO ipaas", scope="updated", external_ids=["C2"])
    assert {r.collection for r in inbox.status(engine)} == {CUSTOMER_TO}


@pytest.mark.parametrize("kwargs, message", [
    (dict(system="Shopify", collection=CUSTOMER_TO, external_ids=["C1"]), "System must be 'MSD 365'"),
    (dict(collection="Dynamics Vendor Add/Update to iPaaS", external_ids=["C1"]), "is not known"),
    (dict(collection=CUSTOMER_TO, ipaas_ids=["77"]), "give External IDs"),
    (dict(collection=ORDER_FROM, external_ids=["SO1001"]), "give iPaaS.com IDs"),
    (dict(collection=CUSTOMER_TO, external_ids=["C1"], ipaas_ids=["77"]), "not both"),
    (dict(collection=CUSTOMER_TO), "at least one External ID"),
    (dict(collection=CUSTOMER_TO, external_ids=["C1"], scope="sideways"), "Scopes must be created or updated"),
    (dict(collection=CUSTOMER_TO, external_ids=["C1"], scope="vendor/created"), "unknown model"),
    (dict(collection=CUSTOMER_TO, external_ids=["C1", "x" * 300]), r"External ID #2 .*at most 255"),
    (dict(collection=CUSTOMER_TO, external_ids=["C1\tX"]), "control character"),
])
def test_invalid_input_is_refused_with_a_clear_message_and_nothing_is_queued(engine, kwargs, message):
    kwargs.setdefault("scope", "updated")
    with pytest.raises(ManualSyncError, match=message):
        enqueue_manual_sync(engine, **kwargs)
    assert inbox.status(engine) == []


def test_an_id_with_quotes_and_odata_syntax_is_stored_verbatim(engine):
    enqueue_manual_sync(engine, collection=CUSTOMER_TO, scope="updated", external_ids=["C1' or No ne '"])
    [row] = inbox.status(engine)
    assert row.external_id == "C1' or No ne '"


def test_debug_puts_the_request_at_the_front_of_the_queue(engine):
    enqueue_manual_sync(engine, collection=CUSTOMER_TO, scope="updated", external_ids=["C1", "C2"])
    [debug] = enqueue_manual_sync(engine, collection="Dynamics Product Add/Update to iPaaS", scope="updated",
                                  external_ids=["1000"], debug=True)
    assert inbox.pending(engine, 10)[0].id == debug
    # The same ids again are not duplicated; with Debug they move to the front.
    again = enqueue_manual_sync(engine, collection=CUSTOMER_TO, scope="updated", external_ids=["C2"], debug=True)
    assert len(inbox.status(engine, limit=None)) == 3
    assert [r.id for r in inbox.pending(engine, 2)] == sorted([debug, again[0]])


def test_a_full_scope_is_accepted_like_the_receiver_does(engine):
    enqueue_manual_sync(engine, collection="Dynamics Company Add/Update to iPaaS", scope="customer/updated",
                        external_ids=["C10000"])
    [row] = inbox.status(engine)
    assert (row.collection, row.scope) == ("Dynamics Company Add/Update to iPaaS", "customer/updated")


def _parse(*argv):
    return add_sync_arguments(argparse.ArgumentParser(prog="bc-pipeline sync")).parse_args(list(argv))


def test_the_sync_command_queues_and_shows_the_queue(settings, engine, capsys):
    args = _parse("--collection", CUSTOMER_TO, "--scope", "updated", "--external-id", "C10000,C20000",
                  "--external-id", "C30000", "--debug")
    assert run_sync_command(args, settings) == 0
    assert "Queued 3 id(s)" in capsys.readouterr().out
    assert {r.external_id for r in inbox.status(engine)} == {"C10000", "C20000", "C30000"}
    assert run_sync_command(_parse("--status", "--limit", "2"), settings) == 0
    shown = capsys.readouterr().out
    assert "C30000" in shown and "C20000" in shown and "C10000" not in shown
    assert "pending (debug)" in shown and "3 pending, 0 running, 0 done, 0 failed" in shown


def test_the_sync_command_reports_errors_with_exit_code_2(settings, engine, capsys):
    assert run_sync_command(_parse("--collection", ORDER_FROM, "--external-id", "SO1001"), settings) == 2
    assert "give iPaaS.com IDs" in capsys.readouterr().err
    assert run_sync_command(_parse("--external-id", "C1"), settings) == 2
    assert "--collection is required" in capsys.readouterr().err
    assert inbox.status(engine) == []


def test_format_status_of_an_empty_inbox():
    assert format_status([]) == "No sync requests."
