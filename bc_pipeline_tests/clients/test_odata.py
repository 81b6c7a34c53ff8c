"""Values that reach an OData $filter are literals, never syntax."""

import datetime as dt

import pytest

from bc_pipeline.clients import odata


def test_a_quote_inside_a_string_is_doubled():
    assert odata.compare("No", "eq", "O'BRIEN") == "No eq 'O''BRIEN'"


def test_an_injection_attempt_stays_inside_the_literal():
    expression = odata.compare("No", "eq", "x' or No ne 'y")
    assert expression == "No eq 'x'' or No ne ''y'"


def test_dates_are_bare_and_datetimes_are_utc():
    assert odata.compare("Last_Date_Modified", "ge", dt.date(2026, 11, 1)) == "Last_Date_Modified ge 2026-11-01"
    stamp = dt.datetime(2026, 11, 1, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert odata.literal(stamp) == "2026-11-01T08:30:00Z"


@pytest.mark.parametrize("bad", ["No eq 1", "No;", "", "1No", "Name)", "a" * 200])
def test_field_names_that_are_not_identifiers_are_refused(bad):
    with pytest.raises(odata.ODataSyntaxError):
        odata.field_name(bad)


def test_or_over_one_field_and_compound_keys():
    assert odata.any_of("No", ["A", "B'"]) == "(No eq 'A' or No eq 'B''')"
    assert odata.key_segment({"Document_Type": "Order", "No": "101005"}) == "(Document_Type='Order',No='101005')"
    assert odata.key_segment({"No": "C 10/00"}) == "('C%2010%2F00')"


def test_company_names_are_quote_doubled_then_percent_encoded():
    assert odata.company_segment("CRONUS USA, Inc.") == "Company('CRONUS%20USA%2C%20Inc.')"
    assert odata.company_segment("O'Neil & Co") == "Company('O%27%27Neil%20%26%20Co')"
