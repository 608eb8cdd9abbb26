"""Entity resolution: names, blocking, scoring, clustering, stable client keys, survivorship into client_dim."""
