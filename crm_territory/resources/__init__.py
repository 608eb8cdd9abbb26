"""Dagster resources: the CRM API client, the landing zone, table storage (IO manager + previous versions)."""
