"""The wiring helpers: asset attributes from the table spec, metadata people can read, named check counts."""

import dagster as dg
import pandas as pd

from crm_territory.schemas import TABLES
from crm_territory.wiring.assets import column_schema, table_out
from crm_territory.wiring.checks import violations_result
from crm_territory.wiring.metadata import markdown_table, table_metadata


def test_floats_in_metadata_and_previews_are_rounded():
    metadata = table_metadata(pd.DataFrame({"u": [1.088235294117647]}), max_utilisation=1.088235294117647, clients=3)
    assert metadata["max_utilisation"] == 1.088 and metadata["clients"] == 3
    assert "1.088 " in markdown_table(pd.DataFrame({"u": [1.088235294117647]})) + " "
    assert "1.0882352" not in metadata["preview"].value


def test_a_check_count_is_named_for_what_it_counts():
    result = violations_result(
        pd.DataFrame({"issue": ["no advisor e-mail"]}),
        counted="kinds_of_email_problem",
        blocking_severity=dg.AssetCheckSeverity.WARN,
        next_step="fix it",
    )
    assert "violations" not in result.metadata
    assert result.metadata["kinds_of_email_problem"].value == 1 and not result.passed


def test_the_column_schema_is_the_models_with_its_descriptions():
    spec = TABLES["client_dim"]
    schema = column_schema(spec.model)
    assert [c.name for c in schema.columns] == list(spec.model.to_schema().columns)
    key = next(c for c in schema.columns if c.name == "client_key")
    assert key.constraints.unique and not key.constraints.nullable
    assert next(c for c in schema.columns if c.name == "aum_usd").type == "float64"


def test_a_multi_asset_output_gets_the_specs_group_grain_and_description():
    out = table_out("raw_clients", "How it is built.")
    assert out.group_name == "sources"
    assert out.description.endswith("How it is built.") and f"Grain: {TABLES['raw_clients'].grain}" in out.description
    assert out.metadata["layer"] == "raw" and out.code_version == TABLES["raw_clients"].code_version
