"""The IO manager reads a table once per run and hands each step its own copy, the same as a read from storage."""

import dagster as dg
import pandas as pd

from crm_territory.schemas import TABLES, empty_frame
from crm_territory.storage.local import LocalCsvIOManager
from crm_territory.storage.table_set_io import ReadCache


def _client_dim(names: list[str]) -> pd.DataFrame:
    n = len(names)
    return pd.DataFrame(
        {
            "client_key": [f"crm_api:C{i}" for i in range(n)],
            "client_name": names,
            "region": ["NORTH", None, "=SUM(A1)"][:n],
            "segment": ["INS", "RET", None][:n],
            "parent_org": [None] * n,
            "primary_advisor_email": ["a@example.com", None, None][:n],
            "is_active": [True, False, True][:n],
            "aum_usd": [1.5, None, 0.0][:n],
            "business_type": [None, "Trust", None][:n],
            "source_system": ["crm_api"] * n,
            "source_record_id": [f"C{i}" for i in range(n)],
            "source_modified_at": pd.to_datetime(["2026-11-01T06:00:00Z"] * n, utc=True).astype("datetime64[ns, UTC]"),
            "source_record_count": pd.array([1] * n, dtype="Int64"),
            "data_issues": [None, "no region", None][:n],
        }
    )


def test_in_a_run_each_step_reads_the_stored_table_whatever_the_steps_before_did_to_theirs(tmp_path):
    seen: list[tuple[str, list[str]]] = []
    stored = _client_dim(["A", "B", "C"])

    @dg.asset(name="client_dim")
    def client_dim() -> pd.DataFrame:
        return stored

    def _check(name: str):
        @dg.asset_check(asset="client_dim", name=name)
        def _changes_its_input(client_dim: pd.DataFrame) -> dg.AssetCheckResult:
            seen.append((name, client_dim["client_name"].tolist()))
            client_dim.loc[0, "client_name"] = f"changed by {name}"
            client_dim.drop(index=2, inplace=True)
            return dg.AssetCheckResult(passed=True)

        return _changes_its_input

    @dg.asset(name="territory_dim")
    def territory_dim(client_dim: pd.DataFrame) -> pd.DataFrame:
        seen.append(("territory_dim", client_dim["client_name"].tolist()))
        client_dim["client_name"] = "changed by territory_dim"
        return empty_frame(TABLES["territory_dim"].model)

    @dg.asset(name="advisor_dim", deps=["territory_dim"])
    def advisor_dim(client_dim: pd.DataFrame) -> pd.DataFrame:
        seen.append(("advisor_dim", client_dim["client_name"].tolist()))
        return empty_frame(TABLES["advisor_dim"].model)

    result = dg.materialize(
        [client_dim, territory_dim, advisor_dim, _check("first_check"), _check("second_check")],
        resources={"io_manager": LocalCsvIOManager(data_dir=str(tmp_path))},
    )
    assert result.success
    assert [names for _, names in seen] == [["A", "B", "C"]] * 4
    assert {step for step, _ in seen} == {"first_check", "second_check", "territory_dim", "advisor_dim"}


def test_the_cache_keeps_small_tables_and_the_two_large_tables_read_last():
    cache = ReadCache()
    small = pd.DataFrame({"x": [1]})
    large = pd.DataFrame({"x": range(ReadCache.SMALL_ROWS)})
    cache.put("small", small)
    for name in ("large_1", "large_2", "large_3"):
        cache.put(name, large)
    assert cache.copy_of("large_1") is None
    assert cache.copy_of("large_2") is not None and cache.copy_of("large_3") is not None
    cache.copy_of("large_2")  # read last: large_3 goes first now
    cache.put("large_4", large)
    assert cache.copy_of("large_3") is None and cache.copy_of("large_2") is not None
    kept = cache.copy_of("small")
    assert kept is not None and kept is not small
    pd.testing.assert_frame_equal(kept, small)
    cache.forget("large_2")
    assert cache.copy_of("large_2") is None


def test_an_asset_takes_the_table_itself_and_drops_the_large_tables_it_does_not_read():
    cache = ReadCache()
    small = pd.DataFrame({"x": [1]})
    large = pd.DataFrame({"x": range(ReadCache.SMALL_ROWS)})
    cache.put("small", small)
    cache.put("read_by_the_asset", large)
    cache.put("not_read", large)
    cache.keep_only({"read_by_the_asset"})
    assert cache.copy_of("not_read") is None and cache.copy_of("small") is not None
    assert cache.take("read_by_the_asset") is large
    assert cache.copy_of("read_by_the_asset") is None


def test_a_step_reading_a_dependency_itself_gets_the_stored_table_the_checks_kept_and_may_change_it(tmp_path):
    """read_in_step: the table as stored (taken from what the checks kept, not re-read), the step's to change or drop."""
    stored = _client_dim(["A", "B", "C"])
    seen: list[list[str]] = []

    @dg.asset(name="client_dim")
    def client_dim() -> pd.DataFrame:
        return stored

    @dg.asset_check(asset="client_dim", name="reads_it_first")
    def reads_it_first(client_dim: pd.DataFrame) -> dg.AssetCheckResult:
        client_dim.loc[0, "client_name"] = "changed by the check"
        return dg.AssetCheckResult(passed=True)

    @dg.asset(name="territory_dim", deps=["client_dim"])
    def territory_dim(context: dg.AssetExecutionContext) -> pd.DataFrame:
        frame = context.resources.io_manager.read_in_step("client_dim")
        seen.append(frame["client_name"].tolist())
        frame["client_name"] = "changed by territory_dim"
        return empty_frame(TABLES["territory_dim"].model)

    @dg.asset(name="advisor_dim", deps=["territory_dim"])
    def advisor_dim(context: dg.AssetExecutionContext) -> pd.DataFrame:
        seen.append(context.resources.io_manager.read_in_step("client_dim")["client_name"].tolist())
        return empty_frame(TABLES["advisor_dim"].model)

    io_manager = LocalCsvIOManager(data_dir=str(tmp_path))
    result = dg.materialize([client_dim, reads_it_first, territory_dim, advisor_dim], resources={"io_manager": io_manager})
    assert result.success
    assert seen == [["A", "B", "C"], ["A", "B", "C"]]  # neither the check's change nor the first reader's is seen
