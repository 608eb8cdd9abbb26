"""History (SCD Type 2) of a table across runs, and point-in-time questions over it."""
