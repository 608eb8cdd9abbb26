"""Dagster wiring, by domain: ingest (sources, sensor, schedule), core (the star schema), checks, jobs."""
