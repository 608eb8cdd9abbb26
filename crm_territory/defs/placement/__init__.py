"""Placement: territory_dim, advisor_dim and assignments_fact, with their integrity checks."""
