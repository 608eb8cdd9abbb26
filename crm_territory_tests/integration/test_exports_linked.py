"""The generated Salesforce and HubSpot exports, shipped in the default landing zone, linked to the CRM API's book.

The default world, as ``make run`` on a fresh clone has it: the API book of 2,000 clients (seed 42), the seed's
drop, Maven's accounts and the two exports, each read with its layout from data/sources/. Entity resolution
must link the exports' records to the API's clients (and to each other) where they are one organisation, and
nowhere else: precision and recall of those cross-source links, against the generator's truth.
"""

import shutil

import dagster as dg
import pandas as pd
import pytest

from crm_territory.definitions import build_definitions
from crm_territory.storage.csv_tables import CsvTables
from crm_territory_tests.support import QUIET, REPO_ROOT
from mock_api.exports import cross_source_link_quality, generate_exports
from mock_api.generator import client_entities

pytestmark = pytest.mark.integration

API_CLIENTS = 2000  # the default book (MOCK_CRM_CLIENTS), which the shipped exports were generated against
MOCK_API_BOOK = {"clients": API_CLIENTS, "seed": 42}


def test_the_exports_load_with_their_layouts_and_link_to_the_api_book(pipeline_env, tmp_path):
    shutil.copytree(REPO_ROOT / "data" / "sources", pipeline_env.data_dir / "sources")
    result = (
        build_definitions(pipeline_env)
        .resolve_job_def("materialize_all_job")
        .execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config=QUIET)
    )
    assert result.success
    store = CsvTables(pipeline_env.data_dir)
    manifest = store.read("ingest_manifest").set_index("batch")
    for batch, system, rows in [("salesforce/accounts_report.csv", "salesforce", 240), ("hubspot/companies.csv", "hubspot", 160)]:
        row = manifest.loc[batch]
        assert (row["source_system"], row["status"], row["rows_read"]) == (system, "loaded", rows)
        assert row["rows_loaded"] + row["rows_quarantined"] == rows

    exports = generate_exports()
    truth = exports.truth.assign(record=exports.truth["source_system"] + ":" + exports.truth["client_id"])
    api = client_entities(API_CLIENTS, 42)
    api_truth = api.to_frame().assign(record="crm_api:" + (api.index + 100_001).astype(str))
    quality = cross_source_link_quality(store.read("client_xref"), pd.concat([truth, api_truth]))
    # measured: 220 links made, 223 true, 220 correct (precision 1.000, recall 0.987); the matcher merges only
    # agreeing names, so a wrong link is a regression, and a few heavy spelling variations stay for review
    assert quality.precision >= 0.99
    assert quality.recall >= 0.95
    assert quality.true >= 200  # about half the 400 exported rows are organisations of the API book


def test_the_shipped_exports_are_what_the_generator_writes(tmp_path):
    from mock_api.exports import write_exports

    for written in write_exports(tmp_path):
        shipped = REPO_ROOT / "data" / "landing" / written.relative_to(tmp_path)
        assert written.read_bytes() == shipped.read_bytes(), (
            f"regenerate with: python -m mock_api.exports data/landing ({shipped})"
        )
