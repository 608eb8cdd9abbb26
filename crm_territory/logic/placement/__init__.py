"""Placement: territories issued from the rules, the advisor roster, capacity-aware advisor assignment, assignments_fact."""
