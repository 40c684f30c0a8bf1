"""Price each concern of the generated app per request, in process, in CPU microseconds.

Run from a baked all-on project's folder with its production environment set (PostgreSQL
migrated, REDIS_URL set); prints JSON. Each variant is the generated app with one concern's
request hooks taken off after it is built, so the difference to the full app is what that
concern costs on every request. CPU time of one thread, best of several repeats: far steadier
than req/s on a shared machine (and blind to time spent waiting on PostgreSQL or Redis).
"""

import gc
import io
import json
import logging
import os
import sys
import time
from datetime import timedelta
from types import SimpleNamespace

import redis
from diagnostics import (  # beside this file
    ACCESS_THROUGH_INFO,
    CLIENT_CALL,
    POOLED,
    PYTHON_PARSER,
    RESET_ALL,
    STOCK_COUNTER,
    THROUGH_SQLALCHEMY,
    WITH_ACCESS_LINE,
)
from flask import Flask
from flask.sessions import SessionInterface
from gunicorn.config import Config
from my_service import api, create_app, gunicorn_logs, redis_store
from my_service.caching import cache
from my_service.extensions import db
from my_service.gunicorn_logs import GunicornLogger
from my_service.logs import logging_config, write_access_line
from my_service.rate_limits import WorkerCounts, count_in
from redis.connection import _RESP2Parser
from reference_apps import create_flask_app  # beside this file, so on sys.path
from sqlalchemy.pool.base import reset_rollback

CALLS = 2000
REPEATS = 7


class NoSession(SessionInterface):
    """Open no session: what Flask does when the app has no SECRET_KEY."""

    def open_session(self, app, request):
        """Return no session."""
        return None

    def save_session(self, app, session, response):
        """Save nothing."""


def environ(path: str = "/healthz") -> dict:
    """Return the WSGI environ of a GET as gunicorn builds it."""
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "RAW_URI": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def _start_response(status, headers, exc_info=None) -> None:
    """Accept the response head."""


def cpu_us(call, calls: int = CALLS) -> float:
    """Return the best CPU microseconds per call over the repeats."""
    return interleaved({"call": call}, calls)["call"]


def interleaved(variants: dict, calls: int = CALLS) -> dict:
    """Return each variant's best CPU microseconds per call, the variants timed in turn.

    Each repeat times every variant once (A B C ... A B C ...), so a spell of load on the
    machine falls on all of them alike instead of on whichever ran during it. The garbage
    collector waits while a variant is timed, as in timeit: every round allocates alike, so its
    collections (of a dozen apps' objects) would land on the same variants round after round.
    """
    for call in variants.values():
        call()
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(REPEATS):
        for name, call in variants.items():
            gc.collect()
            gc.disable()
            try:
                started = time.thread_time()
                for _ in range(calls):
                    call()
                best[name] = min(best[name], time.thread_time() - started)
            finally:
                gc.enable()
    return {name: seconds / calls * 1e6 for name, seconds in best.items()}


def get(app, path: str = "/healthz", start_response=_start_response):
    """Return a function that sends one GET through the app's WSGI callable."""

    def call() -> None:
        body = app(environ(path), start_response)
        b"".join(body)
        body.close()

    return call


def answering(apps: dict, path: str = "/healthz", through: dict | None = None) -> dict:
    """Return each app's GET call, once each has answered it 200: a variant broken by how it was
    built would otherwise time its error page. ``through`` maps a name to what wraps its call."""
    statuses = []

    def start_response(status, headers, exc_info=None) -> None:
        statuses.append(status)

    calls = {}
    for name, app in apps.items():
        wrap = (through or {}).get(name, lambda call: call)
        wrap(get(app, path, start_response))()
        if not statuses[-1].startswith("200 "):
            raise RuntimeError(f"{name}: GET {path} answered {statuses[-1]}")
        calls[name] = wrap(get(app, path))
    return calls


def uncached_app() -> Flask:
    """Build the app without Redis and with a NullCache: every item read goes to PostgreSQL."""
    app = create_app({"redis_url": None})
    cache.init_app(app, config={"CACHE_TYPE": "NullCache", "CACHE_NO_NULL_WARNING": True})
    return app


def with_stock_counter(app: Flask) -> Flask:
    """Count each hit with limits' stock calls (the counter, then its expiry: two calls), and
    read the cache entry in a call of its own: three round trips instead of one."""
    app.extensions["rate_limits"].counts.shared_counter = count_in
    return app


def through_client(clients):
    """Wrap a request's call: while it runs, the limiter's Redis command goes through the
    thread's redis-py client (its retries, lock and timings), as the template once sent it,
    instead of straight on the client's connection (redis_store.call)."""

    def client_call(connection, *command):
        return clients.current().execute_command(*command)

    def wrap(call):
        def run() -> None:
            template_call = redis_store.call
            redis_store.call = client_call  # only while this variant runs: others share it
            try:
                call()
            finally:
                redis_store.call = template_call

        return run

    return wrap


def pooled_clients(app: Flask):
    """Take a connection from the pool and give it back around every Redis command, as a plain
    redis-py client does, instead of keeping one per thread; return the call's wrapper."""
    clients = app.extensions["shared_store"].clients
    client = redis.Redis(connection_pool=clients.pool)
    clients.current = lambda: client
    return through_client(clients)


def with_python_parser(app: Flask) -> Flask:
    """Parse the cache's and the limiter's Redis replies with redis-py's own Python parser.

    Set before the app's first Redis call, so every connection it makes uses that parser.
    """
    app.extensions["shared_store"].clients.pool.connection_kwargs["parser_class"] = _RESP2Parser
    return app


def with_pre_ping(app: Flask) -> Flask:
    """Ping PostgreSQL before handing out each pooled connection, as the template once did."""
    with app.app_context():
        db.engine.pool._pre_ping = True
    return app


def with_reset_all(app: Flask) -> Flask:
    """Roll back every connection returned to the pool, idle ones too, as the pool's own reset
    does (the template's guard, still listening, then finds each one idle)."""
    with app.app_context():
        db.engine.pool._reset_on_return = reset_rollback
    return app


def through_sqlalchemy(call):
    """Run a read with each item read as the template read it before: a SQLAlchemy Connection
    from the pool, switched to autocommit for the SELECT, its row from a Result (the template
    now sends the SELECT with psycopg itself; see database.read_row)."""

    def read_row(statement, **parameters):
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            return connection.execute(statement, parameters).first()

    def run() -> None:
        template_read_row = api.read_row
        api.read_row = read_row  # only while this variant is called: the others share the module
        try:
            call()
        finally:
            api.read_row = template_read_row

    return run


def without(app: Flask, *concerns: str) -> Flask:
    """Take the named concerns' per-request work off a built app."""

    def keep(func) -> bool:
        name = repr(func).lower()
        return not any(word in name for word in hooks)

    hooks = []
    if "limiter" in concerns:
        hooks += ["rate_limit"]
    if "request_id" in concerns:
        hooks += ["request_id"]
    for table in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        table[None] = [func for func in table[None] if keep(func)]
    if "session" in concerns:
        app.session_interface = NoSession()
    if "proxy" in concerns and hasattr(app.wsgi_app, "app"):
        app.wsgi_app = app.wsgi_app.app  # unwrap ProxyFix
    return app


def limiter_storage_cost() -> float:
    """Return the CPU microseconds of the limiter's counter call for one hit, in memory."""
    counts = WorkerCounts()
    return cpu_us(lambda: counts.count("key", 60))


def access_lines() -> tuple:
    """Return calls writing one JSON access line to /dev/null: gunicorn's, and the former one.

    The former wrote it through Logger.info, which walks up the stack for the caller's file and
    line; the generated GunicornLogger hands the record to the handlers without that walk.
    """
    cfg = Config()
    cfg.set("logconfig_dict", logging_config("INFO", "json"))
    logger = GunicornLogger(cfg)
    handler = logging.getLogger().handlers[0]
    handler.setStream(open(os.devnull, "w"))  # lives as long as the process
    response = SimpleNamespace(
        status_code=200,
        status="200 OK",
        sent=16,
        headers=[("Content-Type", "application/json"), ("X-Request-ID", "0" * 32)],
    )
    request = SimpleNamespace(method="GET", path="/healthz", headers=[("Host", "127.0.0.1")])
    took = timedelta(microseconds=1234)

    def current() -> None:
        logger.access(response, request, environ(), took)

    def through_info(logger, method, path, status, fields) -> None:
        logger.info("%s %s %s", method or "-", path or "-", status, extra=fields)

    def former() -> None:
        gunicorn_logs.write_access_line = through_info  # the line's fields built as they are
        try:
            current()
        finally:
            gunicorn_logs.write_access_line = write_access_line

    return current, former


def then(write):
    """Return what wraps a call so that ``write`` runs right after it, as a server's log does."""

    def wrap(call):
        def both() -> None:
            call()
            write()

        return both

    return wrap


def healthz_costs() -> dict:
    """Return the CPU cost of GET /healthz for the references and each variant."""
    flask_keyed = create_flask_app()
    flask_keyed.secret_key = os.environ["SECRET_KEY"]
    apps = {
        "minimal Flask": create_flask_app(),
        "minimal Flask with a SECRET_KEY": flask_keyed,
        "generated": create_app(),
        "generated without the rate limiter hooks": without(create_app(), "limiter"),
        "generated without the session": without(create_app(), "session"),
        "generated without request ids": without(create_app(), "request_id"),
        "generated without ProxyFix": without(create_app(), "proxy"),
        "generated without metrics": create_app({"metrics_enabled": False}),
        "generated without limiter and session": without(create_app(), "limiter", "session"),
        "generated without limiter, session, request ids, ProxyFix": without(
            create_app(), "limiter", "session", "request_id", "proxy"
        ),
        WITH_ACCESS_LINE: create_app(),
        ACCESS_THROUGH_INFO: create_app(),
    }
    access, former_access = access_lines()
    through = {WITH_ACCESS_LINE: then(access), ACCESS_THROUGH_INFO: then(former_access)}
    costs = interleaved(answering(apps, through=through))
    costs["one JSON access line (gunicorn logger)"] = cpu_us(access)
    return costs


def item_costs() -> dict:
    """Return the CPU cost of GET /api/items/<id> from Redis and from PostgreSQL."""
    # With use_celery an item stays pending, and is never cached, until its task runs: run it
    # at once in this process, so the reads below are cache hits.
    app = create_app({"celery_task_always_eager": True})
    item = app.test_client().post("/api/items", json={"name": "overhead"}).headers["Location"]
    path = "/" + item.split("/", 3)[3] if item.startswith("http") else item
    client = create_app().test_client()
    caches = [client.get(path).headers.get("X-Cache") for _ in range(2)]
    if caches[-1] != "hit":
        raise RuntimeError(f"GET {path} answered X-Cache {caches}: the cache rows would be misses")
    calls = 500
    apps = {
        "Redis cache hit": create_app(),
        "Redis cache hit, without the rate limiter hooks": without(create_app(), "limiter"),
        STOCK_COUNTER: with_stock_counter(create_app()),
        CLIENT_CALL: create_app(),
        POOLED: create_app(),
        PYTHON_PARSER: with_python_parser(create_app()),
        "PostgreSQL read": uncached_app(),
        "PostgreSQL read, without the rate limiter hooks": without(uncached_app(), "limiter"),
        "PostgreSQL read, with pool_pre_ping (the former default)": with_pre_ping(uncached_app()),
        RESET_ALL: with_reset_all(uncached_app()),
    }
    through = {
        CLIENT_CALL: through_client(apps[CLIENT_CALL].extensions["shared_store"].clients),
        POOLED: pooled_clients(apps[POOLED]),
    }
    calls_of = answering(apps, path, through)
    calls_of[THROUGH_SQLALCHEMY] = through_sqlalchemy(get(uncached_app(), path))
    costs = interleaved(calls_of, calls)
    costs["the limiter's in-memory counter call alone"] = limiter_storage_cost()
    return costs


def main() -> None:
    """Print the CPU cost per request of each variant as JSON."""
    print(json.dumps({"healthz": healthz_costs(), "item": item_costs()}))


if __name__ == "__main__":
    main()
