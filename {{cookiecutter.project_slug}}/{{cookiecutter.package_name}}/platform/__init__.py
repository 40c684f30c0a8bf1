"""The concerns every route shares: logs, errors, the database, the cache, limits, health, metrics."""
