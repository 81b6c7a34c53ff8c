"""Links, payload hashes, dead letters and watermarks behave the same on SQLite and PostgreSQL."""

from bc_pipeline.state import records, watermarks
from bc_pipeline.state.database import engine_for


def test_links_are_cached_and_updated_in_place(state_url):
    engine = engine_for(state_url)
    records.save_links(engine, "customer", [("C10000", "1"), ("O'BRIEN|1", "2")])
    records.save_links(engine, "customer", [("C10000", "9")])
    assert records.links(engine, "customer") == {"C10000": "9", "O'BRIEN|1": "2"}
    records.forget_links(engine, "customer", ["C10000"])
    assert records.links(engine, "customer") == {"O'BRIEN|1": "2"}
    assert records.links(engine, "product") == {}


def test_payload_hashes_are_kept_per_collection(state_url):
    engine = engine_for(state_url)
    records.save_hashes(engine, "company_to_ipaas", [("C10000", "abc", "1")])
    records.save_hashes(engine, "company_to_ipaas", [("C10000", "def", "1")])
    assert records.hashes(engine, "company_to_ipaas") == {"C10000": ("def", "1")}
    assert records.hashes(engine, "customer_to_ipaas") == {}


def test_a_dead_letter_counts_attempts_keeps_first_seen_and_leaves_when_it_lands(state_url):
    engine = engine_for(state_url)
    failure = {"external_id": "10010", "payload": {"sku": "10010", "name": "Müller"}, "error": "SKU blocked",
               "status": 400, "code": None, "correlation_id": "abc-123"}
    records.record_failures(engine, "product_to_ipaas", [failure])
    first = records.dead_letters_of(engine, "product_to_ipaas")[0]
    records.record_failures(engine, "product_to_ipaas", [{**failure, "error": "still blocked"}])
    [letter] = records.dead_letters_of(engine, "product_to_ipaas")
    assert (letter.attempts, letter.error, letter.payload["name"]) == (2, "still blocked", "Müller")
    assert letter.first_seen == first.first_seen and letter.last_seen >= first.last_seen
    records.clear_dead_letters(engine, "product_to_ipaas", ["10010"])
    assert records.dead_letters_of(engine, "product_to_ipaas") == []


def test_a_watermark_moves_only_when_each_reader_delivered_that_run(state_url):
    engine = engine_for(state_url)
    watermarks.propose(engine, "customers", "Last_Date_Modified", "2026-11-20", "run-1")
    consumers = ["company_to_ipaas", "customer_to_ipaas"]
    assert watermarks.committed_for_consumers(engine, "customers", consumers) is None
    assert watermarks.commit_for_consumer(engine, "customers", "company_to_ipaas", "run-1") == "2026-11-20"
    assert watermarks.committed_for_consumers(engine, "customers", consumers) is None  # one reader is behind
    assert watermarks.commit_for_consumer(engine, "customers", "customer_to_ipaas", "run-2") is None  # not its run
    assert watermarks.commit_for_consumer(engine, "customers", "customer_to_ipaas", "run-1") == "2026-11-20"
    assert watermarks.committed_for_consumers(engine, "customers", consumers) == "2026-11-20"
