"""Sources into raw rows: CSV drops, the CRM API snapshot, row-level quarantine, and raw_clients with provenance."""
