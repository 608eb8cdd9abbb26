"""Matching: entity resolution (client_xref, client_matches, client_key_retirements) and the golden client_dim."""
