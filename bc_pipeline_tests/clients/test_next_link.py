"""An @odata.nextLink is followed only to the API URL's scheme, host and port: the token goes nowhere else."""

from pathlib import Path

import pytest
from sqlalchemy import func, select

from bc_pipeline.catalog import BY_SERVICE
from bc_pipeline.clients.errors import UntrustedNextLinkError, outcome_unclear
from bc_pipeline.extraction import extract
from bc_pipeline.settings import load_settings
from bc_pipeline.state import watermarks
from bc_pipeline.state.database import engine_for
from bc_pipeline.state.staging import StagingArea
from bc_pipeline.state.tables import extractions
from bc_pipeline_tests.clients.support import Recorder


@pytest.fixture(params=["http", "https on another port"])
def elsewhere(request, world):
    with Recorder(None if request.param == "http" else Path(world.handle.ca_path).parent) as served:
        yield served


@pytest.fixture
def links_elsewhere(proxy, elsewhere):
    """The proxy rewrites every link in BC's answers to point at `elsewhere`."""
    proxy.rewrite = lambda body: body.replace(proxy.url.encode(), elsewhere.url.encode())
    return elsewhere


def test_pages_through_the_api_url_are_followed(world, bc_via_proxy):
    pages = list(bc_via_proxy.iter_pages("CustomerCard", select=["No"], page_size=7))
    assert sum(len(p.records) for p in pages) == len(world.handle.records("CustomerCard"))
    assert len(pages) > 1


def test_a_next_link_elsewhere_is_not_followed_and_the_read_fails(world, bc_via_proxy, links_elsewhere):
    with pytest.raises(UntrustedNextLinkError) as error:
        list(bc_via_proxy.iter_pages("CustomerCard", select=["No"], page_size=7))
    text = str(error.value)
    assert links_elsewhere.received == []
    assert f"points to {links_elsewhere.url}/v2.0/" in text
    assert "incomplete" in text and "CustomerCard" in text
    assert "skiptoken" not in text.lower()
    assert not outcome_unclear(error.value)


def test_an_extraction_whose_next_link_points_elsewhere_fails_and_stages_nothing(world, bc_via_proxy, links_elsewhere):
    settings = load_settings()
    staging = StagingArea(settings.home / "staging")
    engine = engine_for(settings.state_database_url)
    with pytest.raises(UntrustedNextLinkError):
        extract(bc_via_proxy, BY_SERVICE["CustomerCard"], staging, engine, "run-1", page_size=7)
    assert links_elsewhere.received == []
    assert staging.runs("customers") == [] and not staging.extract("customers", "run-1").complete
    assert watermarks.commit(engine, "customers", "run-1") is None  # nothing proposed to move forward
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(extractions)).scalar_one() == 0
