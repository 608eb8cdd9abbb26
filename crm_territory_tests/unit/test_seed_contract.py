"""The seed sample gives exactly the seed's territories and assignments (the contract we replace)."""

import pandas as pd

from crm_territory.logic.ingest.drops import read_drop
from crm_territory.logic.ingest.raw_clients import LandingFile, assemble_raw_clients
from crm_territory.logic.matching.client_dim import build_client_dim
from crm_territory.logic.placement.pipeline import build_star
from crm_territory.logic.rules.loader import load_rules
from crm_territory_tests.support import REPO_ROOT, SEED_SAMPLE, utc


def _star(reference, drop_bytes: bytes):
    """The seed sample through the real logic and the committed rules file."""
    landing_file = LandingFile("clients.csv", len(drop_bytes), utc("2026-11-01"))
    ingest = assemble_raw_clients([(landing_file, read_drop("clients.csv", drop_bytes))], None, utc("2026-11-02"))
    clients = build_client_dim(ingest.raw_clients, reference)
    star = build_star(
        clients, load_rules(REPO_ROOT / "data" / "rules" / "territory_rules.yaml"), reference, issued_at=utc("2026-11-02")
    )
    return ingest, clients, star.territory_dim, star.assignments.fact


def test_committed_first_drop_is_the_seed_sample():
    assert (REPO_ROOT / "data" / "landing" / "clients.csv").read_text() == SEED_SAMPLE


def test_seed_sample_gives_the_seed_territories_and_assignments(reference):
    ingest, clients, territories, fact = _star(reference, SEED_SAMPLE.encode())

    assert ingest.quarantined.empty
    real = territories[territories["territory_id"] != "UNASSIGNED"]
    assert sorted(real["territory_id"]) == ["MID_INS", "NOR_INS", "NOR_RET"]
    assert set(zip(real["territory_id"], real["region"], real["segment"])) == {
        ("NOR_INS", "Northeast", "Institutional"),
        ("NOR_RET", "Northeast", "Retail"),
        ("MID_INS", "Midwest", "Institutional"),
    }
    by_client = fact.merge(clients[["client_key", "source_record_id"]], on="client_key").set_index("source_record_id")
    assert by_client.loc["1", "territory_id"] == "NOR_INS"
    assert by_client.loc["2", "territory_id"] == "NOR_RET"
    assert by_client.loc["3", "territory_id"] == "MID_INS"
    assert by_client.loc["1", "primary_advisor_email"] == "advisor1@example.com"
    assert (fact["assignment_type"] == "PRIMARY").all() and fact["is_current"].all()
    assert len(fact) == 3


def test_client_keys_are_stable_across_runs(reference):
    _, first, _, _ = _star(reference, SEED_SAMPLE.encode())
    # same clients, other order, other batch: same keys
    lines = SEED_SAMPLE.splitlines()
    shuffled = "\n".join([lines[0], lines[3], lines[1], lines[2]]) + "\n"
    _, second, _, _ = _star(reference, shuffled.encode())
    assert list(first["client_key"]) == list(second["client_key"])
    assert set(first["client_key"]) == {"csv_drop:1", "csv_drop:2", "csv_drop:3"}
    pd.testing.assert_frame_equal(first.drop(columns="source_modified_at"), second.drop(columns="source_modified_at"))
