"""The concerns every route shares: logs, errors, the database, the cache, rate limits, health,
metrics, the OpenAPI document."""
