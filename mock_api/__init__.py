"""Mock CRM API: a seeded, realistically messy client book served over HTTP.

``mock_api.generator`` builds the book (also used for benchmark CSV drops),
``mock_api.app`` serves it with FastAPI, ``python -m mock_api`` runs it.
"""
