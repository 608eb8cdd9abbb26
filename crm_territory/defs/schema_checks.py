"""One blocking schema check per table, made from its Pandera model by the factory (``<table>_matches_schema``)."""

from crm_territory.schemas import TABLES
from crm_territory.wiring.checks import schema_check

schema_checks = [schema_check(spec) for spec in TABLES.values()]
