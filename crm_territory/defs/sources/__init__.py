"""Sources: the CRM API pull (clients, advisors), the landing drops into raw_clients with quarantine and manifest, the drop sensor."""
