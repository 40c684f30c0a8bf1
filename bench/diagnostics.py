"""The names of the in-process diagnostic rows: overhead.py measures them, report.py explains them.

A module of its own because overhead.py runs in a baked project's environment, where report.py's
imports (the template's test helpers) cannot be loaded.
"""

STOCK_COUNTER = "Redis cache hit, the limit counted in two calls (INCR, then TTL), the entry apart"
POOLED = "Redis cache hit, a pooled redis-py client (a connection taken and given back per call)"
CLIENT_CALL = (
    "Redis cache hit, the limit counted through the thread's redis-py client (the former call)"
)
PYTHON_PARSER = "Redis cache hit, replies parsed by redis-py's Python parser (no hiredis)"
RESET_ALL = (
    "PostgreSQL read, every returned connection rolled back (the pool's own reset, the former one)"
)
THROUGH_SQLALCHEMY = "PostgreSQL read through SQLAlchemy's Connection and Result (the former read)"
# The generated app's /healthz and then the access line gunicorn writes for it, in one call: the
# line costs more there than alone, its code no longer in the CPU's caches.
WITH_ACCESS_LINE = "generated, then its JSON access line (gunicorn logger), in one call"
ACCESS_THROUGH_INFO = (
    "the same, the line written through Logger.info (its walk up the stack: the former line)"
)
