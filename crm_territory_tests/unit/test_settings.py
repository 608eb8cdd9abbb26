"""The environment read into Settings when the definitions load: defaults, parsing, and a clear error naming the variable."""

import pytest

from crm_territory.definitions import build_definitions
from crm_territory.settings import Settings, SettingsError

TUNABLES = (
    "CRM_LOCK_WAIT_SECONDS",
    "CRM_LANDING_SETTLE_SECONDS",
    "CRM_CHANGE_FEED_INTERVAL_SECONDS",
    "CRM_PREVIEW_TIME_LIMIT_SECONDS",
)


@pytest.fixture
def env(monkeypatch, data_dir):
    monkeypatch.setenv("CRM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CRM_STORAGE", "local")
    for name in TUNABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults(env):
    settings = Settings.from_env()
    assert (settings.lock_wait_seconds, settings.landing_settle_seconds) == (300.0, 15.0)
    assert (settings.change_feed_interval_seconds, settings.preview_time_limit_seconds) == (30, 120.0)


def test_values_are_read_and_reach_the_resources_and_the_sensor(env):
    env.setenv("CRM_PREVIEW_TIME_LIMIT_SECONDS", " 7.5 ")
    env.setenv("CRM_CHANGE_FEED_INTERVAL_SECONDS", "12")
    defs = build_definitions(Settings.from_env())
    assert defs.resources is not None and defs.resources["rules_files"].preview_time_limit_seconds == 7.5
    assert defs.resolve_sensor_def("crm_change_feed_sensor").minimum_interval_seconds == 12


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CRM_PREVIEW_TIME_LIMIT_SECONDS", "0", "more than 0"),
        ("CRM_PREVIEW_TIME_LIMIT_SECONDS", "soon", "is not a number of seconds"),
        ("CRM_CHANGE_FEED_INTERVAL_SECONDS", "1.5", "is not a whole number of seconds"),
        ("CRM_CHANGE_FEED_INTERVAL_SECONDS", "0", "1 or more"),
        ("CRM_LANDING_SETTLE_SECONDS", "-1", "0 or more"),
    ],
)
def test_a_bad_value_fails_at_load_naming_the_variable(env, name, value, says):
    env.setenv(name, value)
    with pytest.raises(SettingsError, match=f"{name}={value!r}.*{says}"):
        Settings.from_env()
