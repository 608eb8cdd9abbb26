"""History: SCD Type 2 versions of client_dim and assignments_fact."""
