import pytest

from audit.csvsafe import csv_cell, csv_text


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_text_a_spreadsheet_would_run_gets_a_leading_quote(start):
    assert csv_text(f"{start}SUM(A1:A9)") == f"'{start}SUM(A1:A9)"


@pytest.mark.parametrize("value", ["", "plain words", "a=b", " =leading space", "'already quoted"])
def test_other_text_is_left_alone(value):
    assert csv_text(value) == value


def test_cells_render_none_empty_and_structures_as_json():
    assert csv_cell(None) == ""
    assert csv_cell(["b", "a"]) == '["b", "a"]'
    assert csv_cell({"k": "=x"}) == '{"k": "=x"}'
    assert csv_cell(42) == 42
    assert csv_cell("-5 points") == "'-5 points"
