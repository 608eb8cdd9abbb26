"""Rules: the rules in force (territory_rules), the preview of a candidate, and its explicit activation."""
