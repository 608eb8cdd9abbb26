"""Plain functions over DataFrames, grouped by domain: the engine, testable without Dagster (nothing here imports it)."""
