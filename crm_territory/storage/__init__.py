"""Table storage back-ends, independent of Dagster (the IO managers wrap them)."""
