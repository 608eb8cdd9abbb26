"""Where the CRM token goes and where data is read and written are fixed when the definitions load.

Dagster lets a run's config override every field of a resource (the value given in the definitions is
only the field's default), and its webserver accepts a mutation sent as a plain GET: one cross-site link
to ``make dev``'s UI launched a run whose config pointed ``resources.crm_api.config.base_url`` at
another host, which then received the real bearer token, and ``io_manager.config.data_dir`` at another
folder, which then received every table.

So the fields that say where a secret goes or where data lives (``FIXED_FIELDS``: the CRM API's address
and token, the data folder, the Snowflake connection) come from the environment (CRM_API_URL,
CRM_API_TOKEN, CRM_DATA_DIR, SNOWFLAKE_*) when the definitions load, and from nowhere else. Two locks:

1. ``FixedAtLoad`` takes the destinations (``DESTINATION_FIELDS``) out of the resource's run-config
   schema. A run config that names one is then refused by Dagster's own validation ("unexpected config
   entry") before a run even exists: the launchpad, GraphQL ``launchRun``, a sensor's RunRequest and
   ``execute_in_process`` all validate it. A nested resource (the SnowflakeResource inside the Snowflake
   IO manager) is never in the run config.
2. ``refuse_redirects`` fails a run whose config sets any fixed field, for any resource, when its
   resources start, before a request is sent or a file is read or written. It covers the token, a
   resource that does not take the mixin, and Dagster changing how schemas are built.

The token stays in the schema, as ``{env: CRM_API_TOKEN}`` by default, so that Dagster resolves it the way
it resolves the Snowflake settings: its value exists only in the run's process, and a missing variable
fails the run naming it. A run config that sets it is refused by lock 2 before any request; with the
address fixed by lock 1 it could only ever reach the CRM API anyway.

Every other field (page size, retries, timeouts, the lock wait) stays configurable per run.

The schema is trimmed through Dagster's private resource state (``_state__internal__``). Dagster's public
ways to keep a value out of the run config (a nested resource, ``ResourceDependency``) would turn a URL or
a folder into a resource and change every constructor, the storage classes' included. The pinned version
is 1.13; ``crm_territory_tests/unit/test_fixed_at_load.py`` fails if an upgrade changes that state, and
lock 2 still holds meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import dagster as dg
from dagster._config.pythonic_config.conversion_utils import _curry_config_schema

# A new resource field that names a destination (a bucket, a host, a folder) belongs here; a secret, below.
DESTINATION_FIELDS = ("base_url", "data_dir", "snowflake")
FIXED_FIELDS = (*DESTINATION_FIELDS, "token")


def redirects_in(run_config: Mapping[str, Any], configured: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """The run-config paths that change a fixed field, e.g. ``resources.crm_api.config.base_url``.

    ``configured`` holds each resource's values from the definitions: repeating one of them changes nothing
    and passes (the launchpad's "scaffold all default config" writes them out); any other value is a redirect.
    """
    resources = run_config.get("resources")
    configured = configured or {}
    paths: list[str] = []
    if isinstance(resources, Mapping):
        for key, entry in resources.items():
            config = entry.get("config") if isinstance(entry, Mapping) else None
            if not isinstance(config, Mapping):
                continue
            fixed = configured.get(key, {})
            paths += [
                f"resources.{key}.config.{name}"
                for name in FIXED_FIELDS
                if name in config and (name not in fixed or config[name] != fixed[name])
            ]
    return paths


def configured_values(context: dg.InitResourceContext) -> dict[str, Mapping[str, Any]]:
    """Each resource's config as the definitions give it (the defaults of its run-config schema)."""
    values: dict[str, Mapping[str, Any]] = {}
    for key, definition in context.all_resource_defs.items():
        schema = definition.config_schema
        if schema is not None and schema.default_provided and isinstance(schema.default_value, Mapping):
            values[key] = schema.default_value
    return values


def refusal_message(paths: list[str]) -> str:
    return (
        f"Refused: this run's config sets {', '.join(paths)}. The CRM API's address and token and the data "
        "folder (and the Snowflake connection) are fixed from the environment (CRM_API_URL, CRM_API_TOKEN, "
        "CRM_DATA_DIR, SNOWFLAKE_*) when the definitions load, so that no run can send the token elsewhere or "
        "write the tables to another place. Nothing was read or written. Remove these entries from the run "
        "config; to use another API or folder, change the environment and reload the code location."
    )


def refuse_redirects(context: dg.InitResourceContext) -> None:
    """Fail the run's resource set-up if its config moves the API, the token or the data folder."""
    run = context.run
    paths = redirects_in(run.run_config if run is not None else {}, configured_values(context))
    if paths:
        raise dg.Failure(description=refusal_message(paths))


def drop_from_run_config(resource: Any, names: tuple[str, ...] | frozenset[str]) -> None:
    """Take ``names`` out of a built resource's run-config schema; its values stay what the definitions gave.

    Dagster keeps a resource's schema (every field) and its configured values (the defaults of that
    schema) in ``_state__internal__``; at run time it rebuilds the resource from its own values updated
    with the run's resource config, so a field that is not in the schema keeps the value it was built with.
    """
    state = resource._state__internal__
    shape = state.schema.config_type
    kept = {name: field for name, field in shape.fields.items() if name not in names}
    schema = dg.Field(type(shape)(kept), description=state.schema.description)
    values = {name: value for name, value in state.resolved_config_dict.items() if name in kept}
    resource._state__internal__ = state._replace(
        schema=schema, resolved_config_dict=values, config_schema=_curry_config_schema(schema, values)
    )


class FixedAtLoad:
    """Mixin, listed before ``dg.ConfigurableResource``: no run config can set the resource's fixed fields (see the
    module docstring). A subclass that overrides ``setup_for_execution`` calls super()."""

    # a class's own fields that only the environment may set, beyond the destinations
    extra_fixed_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        drop_from_run_config(self, (*DESTINATION_FIELDS, *self.extra_fixed_fields))

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        refuse_redirects(context)
