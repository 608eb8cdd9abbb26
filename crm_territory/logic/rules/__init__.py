"""The territory rules file: its model and loader, the vectorised engine, static analysis, the preview of a candidate."""
