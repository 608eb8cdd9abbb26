"""Territory ids: the prefix rule, collisions, and stability across runs."""

import pandas as pd
import pytest

from crm_territory.logic.placement.territories import base_territory_id, issue_territories, prefix, territory_ids
from crm_territory.schemas import TerritoryDim
from crm_territory_tests.support import utc

ROLES = {"Institutional": "Institutional RM", "Retail": "Retail advisor", "Insurance": "Insurance specialist"}


def pairs(*rows):
    return pd.DataFrame(rows, columns=["region", "segment"])


@pytest.mark.parametrize(("name", "expected"), [("Northeast", "NOR"), ("Mid-Atlantic", "MID"), ("north east", "NOR"), ("W", "W")])
def test_prefix_is_first_three_letters_upper_cased(name, expected):
    assert prefix(name) == expected


def test_base_id_follows_the_seed_rule():
    assert base_territory_id("Northeast", "Institutional") == "NOR_INS"


def test_colliding_prefixes_get_unique_ids_in_alphabetical_order():
    dim = issue_territories(pairs(("Northwest", "Institutional"), ("Northeast", "Institutional")), None, ROLES, utc("2026-01-01"))
    ids = dict(zip(zip(dim["region"], dim["segment"]), dim["territory_id"]))
    assert ids[("Northeast", "Institutional")] == "NOR_INS"
    assert ids[("Northwest", "Institutional")] == "NOR_INS_2"
    TerritoryDim.validate(dim)


def test_segment_prefix_collisions_are_resolved_too():
    dim = issue_territories(pairs(("West", "Institutional"), ("West", "Insurance")), None, ROLES, utc("2026-01-01"))
    assert set(dim["territory_id"]) == {"WES_INS", "WES_INS_2", "UNASSIGNED"}


def test_adding_a_region_later_never_renames_an_existing_territory():
    first = issue_territories(pairs(("Northwest", "Institutional")), None, ROLES, utc("2026-01-01"))
    assert first.set_index("territory_id").loc["NOR_INS", "region"] == "Northwest"

    second = issue_territories(
        pairs(("Northeast", "Institutional"), ("Northwest", "Institutional")), first, ROLES, utc("2026-02-01")
    )
    ids = dict(zip(zip(second["region"], second["segment"]), second["territory_id"]))
    assert ids[("Northwest", "Institutional")] == "NOR_INS"  # kept
    assert ids[("Northeast", "Institutional")] == "NOR_INS_2"  # newcomer takes the next suffix
    kept = second.set_index("territory_id").loc["NOR_INS"]
    assert kept["issued_at"] == utc("2026-01-01")


def test_territories_without_clients_stay_issued():
    first = issue_territories(pairs(("Midwest", "Retail")), None, ROLES, utc("2026-01-01"))
    second = issue_territories(pairs(("West", "Retail")), first, ROLES, utc("2026-02-01"))
    assert {"MID_RET", "WES_RET", "UNASSIGNED"} == set(second["territory_id"])


def test_same_input_gives_the_same_registry():
    run1 = issue_territories(pairs(("Midwest", "Retail"), ("West", "Retail")), None, ROLES, utc("2026-01-01"))
    run2 = issue_territories(pairs(("West", "Retail"), ("Midwest", "Retail")), run1, ROLES, utc("2026-02-01"))
    pd.testing.assert_frame_equal(run1, run2)


def test_unknown_region_or_segment_goes_to_unassigned():
    dim = issue_territories(pairs(("Midwest", "Retail")), None, ROLES, utc("2026-01-01"))
    clients = pairs(("Midwest", "Retail"), (None, "Retail"), ("Midwest", None))
    assert territory_ids(clients["region"], clients["segment"], dim).tolist() == ["MID_RET", "UNASSIGNED", "UNASSIGNED"]
    unassigned = dim.set_index("territory_id").loc["UNASSIGNED"]
    assert pd.isna(unassigned["region"]) and pd.isna(unassigned["segment"])


def test_owner_role_comes_from_the_reference_data():
    dim = issue_territories(pairs(("Midwest", "Retail")), None, ROLES, utc("2026-01-01")).set_index("territory_id")
    assert dim.loc["MID_RET", "owner_role"] == "Retail advisor"


def test_an_inconsistent_registry_is_refused_not_repaired():
    from crm_territory.logic.placement.territories import TerritoryRegistryError

    first = issue_territories(pairs(("Midwest", "Retail"), ("West", "Retail")), None, ROLES, utc("2026-01-01"))
    twice = first.copy()
    twice.loc[twice["territory_id"] == "WES_RET", ["region", "segment"]] = ["Midwest", "Retail"]
    with pytest.raises(TerritoryRegistryError, match=r"\(Midwest, Retail\) have more than one territory_id"):
        issue_territories(pairs(("Midwest", "Retail")), twice, ROLES, utc("2026-02-01"))
