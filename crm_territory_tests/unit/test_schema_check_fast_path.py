"""The schema checks' fast path accepts exactly what the Pandera model accepts, and a failure still reports Pandera's cases.

``passes_schema`` checks the text columns' type with pandas' C type inference and runs ``str_matches`` once per
distinct value. A frame it accepts must be one the model accepts; one it refuses goes to Pandera, so the check's
verdict is Pandera's. On these crafted frames (every way a text column, a pattern, a null, the grain or the layout
can be wrong) the check answers as Pandera does, and the fast path alone does too wherever the layout is the
engine's own (object text columns, each column once): those are the frames the pipeline produces.
"""

import dagster as dg
import numpy as np
import pandas as pd
import pandera.errors
import pytest

from crm_territory.schemas import TABLES, AssignmentsFact, ClientDim
from crm_territory.wiring.checks import matches_by_value, passes_schema, schema_check


def _pandera_passes(model, frame: pd.DataFrame) -> bool:
    try:
        model.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors:
        return False
    return True


def _client_dim(rows: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_key": [f"crm_api:C{i}" for i in range(rows)],
            "client_name": [f"Client {i}" for i in range(rows)],
            "region": ["NORTH", None, "SOUTH", np.nan][:rows],
            "segment": ["INS", "RET", None, "INS"][:rows],
            "parent_org": [None] * rows,
            "primary_advisor_email": ["a.b@example.com", None, "c@example.co.uk", "a.b@example.com"][:rows],
            "is_active": [True, False, True, True][:rows],
            "aum_usd": [1.0, None, 0.0, 5e6][:rows],
            "business_type": ["Trust", None, "Foundation", "Trust"][:rows],
            "source_system": ["crm_api", "csv_drop", "crm_api", "hubspot"][:rows],
            "source_record_id": [f"C{i}" for i in range(rows)],
            "source_modified_at": pd.to_datetime(["2026-11-01T06:00:00Z"] * rows, utc=True).astype("datetime64[ns, UTC]"),
            "source_record_count": pd.array([1, 2, 1, 1][:rows], dtype="Int64"),
            "data_issues": [None, "no region", None, "unknown region 'x'"][:rows],
        }
    )


def _with(frame: pd.DataFrame, column: str, row: int, value) -> pd.DataFrame:
    out = frame.copy()
    values = out[column].astype(object).tolist()
    values[row] = value
    out[column] = pd.Series(values, index=out.index, dtype=object)
    return out


CLIENT_DIM_CASES = {
    "valid": lambda f: f,
    "empty": lambda f: f.iloc[0:0],
    "int in a text column": lambda f: _with(f, "client_name", 1, 7),
    "float in a nullable text column": lambda f: _with(f, "region", 0, 1.5),
    "bytes in a text column": lambda f: _with(f, "source_record_id", 2, b"C2"),
    "numpy str is a str": lambda f: _with(f, "client_name", 0, np.str_("Client 0")),
    "pd.NA in a nullable text column": lambda f: _with(f, "parent_org", 0, pd.NA),
    "NaN in a non-nullable text column": lambda f: _with(f, "client_name", 0, np.nan),
    "None in a non-nullable text column": lambda f: _with(f, "source_record_id", 0, None),
    "empty name": lambda f: _with(f, "client_name", 3, ""),
    "bad e-mail": lambda f: _with(f, "primary_advisor_email", 0, "A@Example.com"),
    "e-mail with a trailing newline (Python's $ accepts it)": lambda f: _with(f, "primary_advisor_email", 0, "a@example.com\n"),
    "source system with a trailing newline": lambda f: _with(f, "source_system", 1, "csv_drop\n"),
    "bad source system": lambda f: _with(f, "source_system", 1, "CSV drop"),
    "duplicate key": lambda f: _with(f, "client_key", 1, "crm_api:C0"),
    "negative aum": lambda f: f.assign(aum_usd=[-1.0, None, 0.0, 1.0]),
    "extra column": lambda f: f.assign(extra="x"),
    "missing column": lambda f: f.drop(columns="data_issues"),
    "repeated column": lambda f: pd.concat([f, f[["region"]]], axis=1),
    "arrow strings": lambda f: f.astype({"client_name": "string[pyarrow]"}),
    "python strings with NA": lambda f: f.astype({"region": "string"}),
    "categorical text": lambda f: f.astype({"segment": "category"}),
    "all-null nullable text column": lambda f: f.assign(business_type=[None] * len(f)),
    "non-default index": lambda f: f.set_axis([10, 3, 7, 1]),
}


# layouts the fast path does not judge (it answers "ask Pandera"): never produced by the engine's readers
UNUSUAL_LAYOUTS = {"repeated column", "arrow strings", "python strings with NA", "categorical text"}


@pytest.mark.parametrize("case", list(CLIENT_DIM_CASES))
def test_the_check_answers_as_pandera_and_the_fast_path_never_accepts_more(case):
    frame = CLIENT_DIM_CASES[case](_client_dim())
    expected = _pandera_passes(ClientDim, frame)
    fast = passes_schema(ClientDim, frame)
    assert expected or not fast
    if case not in UNUSUAL_LAYOUTS:
        assert fast == expected
    assert _run_check(frame).passed == expected


def test_the_crafted_cases_include_both_answers():
    answers = {case: _pandera_passes(ClientDim, make(_client_dim())) for case, make in CLIENT_DIM_CASES.items()}
    assert answers["valid"] and answers["empty"] and answers["numpy str is a str"]
    assert answers["e-mail with a trailing newline (Python's $ accepts it)"]  # the same regex engine as Pandera's
    assert not answers["int in a text column"] and not answers["bad e-mail"] and not answers["duplicate key"]


def _fact() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_key": ["crm_api:C0", "crm_api:C0", "crm_api:C1"],
            "territory_id": ["NOR_INS", "OVL_X", "UNASSIGNED"],
            "primary_advisor_email": ["a@example.com", None, None],
            "assignment_type": ["PRIMARY", "SECONDARY", "PRIMARY"],
            "is_current": [True, True, False],
            "assigned_by": ["tier1", "overlay", "fallback"],
            "segment_rule": [None, None, None],
            "advisor_reason": ["kept", None, "inactive_client"],
            "rules_version": ["0123456789ab"] * 3,
        }
    )


FACT_CASES = {
    "valid": lambda f: f,
    "grain repeated": lambda f: f.assign(territory_id=["NOR_INS", "NOR_INS", "UNASSIGNED"], assignment_type="PRIMARY"),
    "unknown assignment type": lambda f: _with(f, "assignment_type", 0, "TERTIARY"),
    "unknown advisor reason": lambda f: _with(f, "advisor_reason", 2, "because"),
    "short rules version": lambda f: _with(f, "rules_version", 1, "0123"),
    "upper-case rules version": lambda f: _with(f, "rules_version", 1, "0123456789AB"),
    "int rules version": lambda f: _with(f, "rules_version", 1, 123456789012),
    "empty assigned_by": lambda f: _with(f, "assigned_by", 0, ""),
}


@pytest.mark.parametrize("case", list(FACT_CASES))
def test_the_fast_path_agrees_on_the_facts_patterns_values_and_grain(case):
    frame = FACT_CASES[case](_fact())
    assert passes_schema(AssignmentsFact, frame) == _pandera_passes(AssignmentsFact, frame)


def test_every_tables_empty_frame_passes_both_ways():
    from crm_territory.schemas import empty_frame

    for spec in TABLES.values():
        frame = empty_frame(spec.model)
        assert passes_schema(spec.model, frame) == _pandera_passes(spec.model, frame), spec.name


def test_matching_per_distinct_value_is_pandas_str_match():
    values = pd.Series(["crm_api", None, "crm_api", "CRM", "csv_drop\n", np.nan, "x" * 40, "csv_drop"], index=range(10, 18))
    pattern = r"^[a-z][a-z0-9_]{0,31}$"
    expected = values.str.match(pattern, na=False).astype(bool)
    pd.testing.assert_series_equal(matches_by_value(values, pattern), expected, check_names=False)


def _run_check(frame: pd.DataFrame) -> dg.AssetCheckResult:
    check = schema_check(TABLES["client_dim"])
    context = dg.build_asset_check_context()
    return check(context, frame)  # pyright: ignore[reportCallIssue]


def test_a_failing_schema_check_still_reports_pandera_s_failure_cases():
    frame = _with(_with(_client_dim(), "source_system", 1, "CSV drop"), "client_name", 2, 7)
    result = _run_check(frame)
    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.ERROR
    with pytest.raises(pandera.errors.SchemaErrors) as pandera_says:
        ClientDim.validate(frame, lazy=True)
    assert result.metadata["failing_values"].value == len(pandera_says.value.failure_cases)
    sample = result.metadata["failure_cases_sample"].value
    assert "crm_api:C1" in sample and "CSV drop" in sample and "crm_api:C2" in sample
    assert "str_matches" in result.metadata["failing_values_by_rule"].value
    assert "crm_territory/schemas.py" in result.metadata["next_step"].value


def test_a_passing_schema_check_counts_the_rows():
    result = _run_check(_client_dim())
    assert result.passed
    assert result.metadata["rows_validated"].value == 4 and result.metadata["failing_values"].value == 0
