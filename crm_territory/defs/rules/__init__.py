"""Rules: the rules in force (territory_rules), the preview of a candidate, and its explicit activation; with
CRM_STORAGE=snowflake also the rules run inside the warehouse (client_placement_in_warehouse, placement_in_warehouse.py)."""
