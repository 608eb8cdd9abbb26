"""Thin Dagster helpers the defs/ modules share: asset arguments from the table spec, metadata, the check factory, guards.

Not autoloaded (only ``defs/`` is): nothing here defines an asset, job or sensor by itself.
"""
