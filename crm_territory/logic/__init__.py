"""Plain functions over DataFrames: the engine's rules, testable without Dagster."""
