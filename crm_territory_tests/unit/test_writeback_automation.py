"""The optional write-back after an activated rules change: off by default, once per plan, only on a rules change.

On a real (ephemeral) Dagster instance: plans are reported as materializations of crm_writeback_plan with the
metadata the asset records, and the sensor's ticks are evaluated against that event log.
"""

from __future__ import annotations

import dagster as dg
import pytest

from crm_territory.defs.writeback.automation import PLAN, crm_writeback_after_rules_activation, rules_change_to_apply


def report_plan(instance: dg.DagsterInstance, plan_id: str, rules_version: str | None, to_send: int) -> None:
    metadata: dict[str, dg.RawMetadataValue] = {"plan_id": plan_id, "records_to_send": to_send}
    if rules_version is not None:
        metadata["rules_version"] = rules_version
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=PLAN, metadata=metadata))


def tick(instance: dg.DagsterInstance, cursor: str | None) -> tuple[list[dg.RunRequest], str | None]:
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    data = crm_writeback_after_rules_activation.evaluate_tick(context)
    return list(data.run_requests or []), data.cursor


def test_the_sensor_is_off_until_someone_turns_it_on() -> None:
    assert crm_writeback_after_rules_activation.default_status == dg.DefaultSensorStatus.STOPPED
    assert crm_writeback_after_rules_activation.job_name == "crm_writeback_job"


def test_only_the_first_plan_after_a_rules_change_is_applied_and_only_once() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        report_plan(instance, "a" * 16, "rules-v1", 40)  # the plan there when the sensor is turned on
        requests, cursor = tick(instance, None)
        assert requests == []
        report_plan(instance, "b" * 16, "rules-v1", 12)  # a drop under the same rules
        requests, cursor = tick(instance, cursor)
        assert requests == []
        report_plan(instance, "c" * 16, "rules-v2", 30)  # the first plan after activate_rules_job
        requests, cursor = tick(instance, cursor)
        assert [r.run_key for r in requests] == [f"writeback-{'c' * 16}"]
        assert requests[0].tags["crm/reason"] == "rules rules-v1 -> rules-v2: 30 record(s) to send"
        requests, cursor = tick(instance, cursor)  # nothing new: nothing asked again
        assert requests == []
        report_plan(instance, "d" * 16, "rules-v2", 5)  # later plans under the same rules wait for an explicit apply
        assert tick(instance, cursor)[0] == []


@pytest.mark.parametrize(
    ("current", "previous"),
    [
        ({"rules_version": "v2", "records_to_send": 0}, {"rules_version": "v1"}),  # nothing to send
        ({"records_to_send": 9}, {"rules_version": "v1"}),  # no CRM snapshot: no rules version on the plan
        ({"rules_version": "v2", "records_to_send": 9}, None),  # no plan before this one
        ({"rules_version": "v2", "records_to_send": 9}, {"records_to_send": 3}),
    ],
)
def test_no_apply_without_a_known_rules_change_and_something_to_send(current, previous) -> None:
    assert rules_change_to_apply(current, previous) is None
