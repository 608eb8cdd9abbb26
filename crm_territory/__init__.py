"""crm-territory: a CRM Territory & Segmentation Engine built as Dagster assets.

The logic lives in plain functions over DataFrames (``crm_territory.logic``); the Dagster
wiring (``crm_territory.defs``) is a thin layer on top; ``crm_territory.schemas`` is the
single source of column names and types.
"""
