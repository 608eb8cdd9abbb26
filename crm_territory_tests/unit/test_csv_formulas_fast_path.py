"""Defusing and restoring spreadsheet formulas skip columns with nothing to change, and change nothing else by it."""

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from crm_territory.storage.csv_tables import _DEFUSED, _EXECUTABLE, defuse_formulas, restore_formulas


def _defuse_every_value(column):
    executable = pc.fill_null(pc.match_substring_regex(column, _EXECUTABLE), False)
    return pc.if_else(executable, pc.binary_join_element_wise(pa.scalar("'"), column, ""), column)


def _restore_every_value(column):
    defused = pc.fill_null(pc.match_substring_regex(column, _DEFUSED), False)
    return pc.if_else(defused, pc.utf8_slice_codeunits(column, 1), column)


COLUMNS = {
    "plain text": ["Acme", "Beta Corp", None, ""],
    "nothing but nulls": [None, None],
    "no rows": [],
    "formulas": ["=HYPERLINK(1)", "+cmd|x", "-3", "@SUM(A1)", "\t=x", "\r+y", None, "ok"],
    "apostrophes not before a formula": ["'quoted'", "O'Brien", "'", "''"],
    "apostrophes before a formula": ["'=x", "''+y", "'''-z", "x"],
    "several chunks": [["a", "=b"], ["'c", None]],
}


def _column(values) -> pa.ChunkedArray:
    chunks = values if values and isinstance(values[0], list) else [values]
    return pa.chunked_array([pa.array(chunk, type=pa.string()) for chunk in chunks], type=pa.string())


@pytest.mark.parametrize("case", list(COLUMNS))
def test_defusing_and_restoring_give_what_the_per_value_rule_gives(case):
    column = _column(COLUMNS[case])
    assert defuse_formulas(column).to_pylist() == _defuse_every_value(column).to_pylist()
    defused = _defuse_every_value(column)
    assert restore_formulas(defused).to_pylist() == _restore_every_value(defused).to_pylist() == column.to_pylist()
    assert restore_formulas(column).to_pylist() == _restore_every_value(column).to_pylist()


def test_a_column_with_nothing_to_change_comes_back_as_it_was():
    column = _column(COLUMNS["plain text"])
    assert defuse_formulas(column) is column
    assert restore_formulas(column) is column
