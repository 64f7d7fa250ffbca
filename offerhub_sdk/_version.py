__version__ = "1.0.0"  # equals the server's `version` (GET /health, GET /config)
