"""One combination of the template served for real: the pieces a tier-2 test talks to."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import signal
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import project_files
from combinations import SERVED, Combination

from . import frontend
from .auth import EMAIL, Account, create_user
from .servers import (
    NGINX_TEMPLATE,
    ImageRecipe,
    Interpreter,
    Nginx,
    Postgres,
    Redis,
    Service,
    compose_command,
    compose_environment,
    free_port,
    loopback_nginx_config,
    owned_dir,
    runtime_requirements,
    runtime_venv,
    stop_all,
    template_variables,
    write_env_file,
)

GENEROUS_LIMIT = "1000000 per minute"


# The cross of the runtime services (tests/combinations.py says which and why).
TIER2_COMBINATIONS = SERVED


@dataclass
class Deployment:
    """One combination served for real: its service, its nginx, its database and Redis index."""

    combo: Combination
    bake: Path
    root: Path
    interpreter: Interpreter
    postgres: Postgres | None
    redis: Redis | None
    recipe: ImageRecipe = field(init=False)
    compose: dict = field(init=False)
    tree: Path = field(init=False)
    bin: Path = field(init=False)
    database: str | None = None
    redis_db: int | None = None
    service: Service | None = None
    nginx: Nginx | None = None
    extra: list = field(default_factory=list)
    # Set for every process of the deployment (the service, Celery's, migrations), below each
    # process's own overrides: a module's receivers, for instance (conftest's service_env).
    environment: dict[str, str] = field(default_factory=dict)
    refused: set = field(default_factory=set)  # the folder names of instances failed_start ran
    account: Account | None = None  # use_auth: the user the deployment signed up (auth.py)
    # use_auth on PostgreSQL: the user (email, password) migrate made in the database, or the
    # copy of its template holds; the deployment then signs in as that user (conftest's deploy).
    made_user: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        """Lay out the image's files read-only and its runtime venv; claim a database and index."""
        self.recipe = ImageRecipe.read(self.bake)
        self.compose = project_files.compose_model(self.bake)
        self.root.mkdir(parents=True, exist_ok=True)
        pins = runtime_requirements(self.bake, self.root / "runtime.txt")
        self.bin = runtime_venv(self.interpreter, pins, self.root / "venv")
        if frontend.has_assets(self.bake):  # built into the bake, as the image's stages do
            frontend.build_assets(self.bake)
        self.tree = self.recipe.build_tree(self.bake, self.root / "app")
        owned_dir(self.root / "data")
        if self.postgres is not None:
            self.database = self.postgres.create_database(self.combo.id)
        if self.redis is not None:
            self.redis_db = self.redis.new_db()

    @property
    def package(self) -> str:
        """Return the generated package's name."""
        return self.bake.name.replace("-", "_")

    @property
    def access_logger(self) -> str:
        """Return the logger of the app server's access lines (gunicorn.access, granian.access)."""
        return f"{self.combo.value('app_server')}.access"

    @property
    def entry(self) -> str:
        """Return the URL clients use: nginx when selected, else the app server."""
        return self.nginx.url if self.nginx else self.service.url

    @property
    def sqlite_file(self) -> Path:
        """Return the SQLite file of a combination without PostgreSQL (the image's /data volume)."""
        return self.root / "data" / "app.db"

    def env(self, port: int, **overrides: str) -> dict[str, str]:
        """Return the service's env file: .env, compose's web environment, loopback values, then
        the deployment's environment and the overrides."""
        env = project_files.env_file(self.bake / ".env")
        web = self.compose["services"][project_files.web_service(self.compose)]
        env.update(compose_environment(web))
        env.update(
            APP_ENV="production",
            HOST="127.0.0.1",
            PORT=str(port),
            WEB_CONCURRENCY="2",
            # Reads stay unlimited, as the service ships; writes are limited, far above any test.
            RATELIMIT_WRITE=GENEROUS_LIMIT,
        )
        if self.postgres is not None:
            env["DATABASE_URL"] = self.postgres.url(self.database)
        else:
            env["DATABASE_URL"] = f"sqlite:///{self.sqlite_file}"
        if self.redis is not None:
            env["REDIS_URL"] = self.redis.url(self.redis_db)
        env.update(self.environment)
        env.update(overrides)
        return env

    def new_service(self, name: str, cpus: tuple[int, ...] = (), **overrides: str) -> Service:
        """Prepare (not start) a service instance with its own port, env file and logs; on
        ``cpus`` only when given (a container's cpuset), else on any CPU."""
        folder = self.root / name
        folder.mkdir()
        # Its own metrics folder, as compose gives each web container its own tmpfs.
        metrics = str(owned_dir(folder / "metrics"))
        overrides = {"PROMETHEUS_MULTIPROC_DIR": metrics, **overrides}
        env_file = write_env_file(folder / "service.env", self.env(free_port(), **overrides))
        logs = owned_dir(folder / "logs")
        return Service(self.tree, env_file, self.recipe, logs, self.bin, self.interpreter.env, cpus)

    def failed_start(self, name: str, **overrides: str) -> tuple[int, str]:
        """Start an instance expected to refuse; return its exit code and its output."""
        self.refused.add(name)
        service = self.new_service(name, **overrides)
        process = service.launch()
        try:
            code = process.wait(timeout=60)
        finally:
            service.stop()
        return code, service.stdout.read_text() + service.stderr.read_text()

    def extra_service(self, name: str, cpus: tuple[int, ...] = (), **overrides: str) -> Service:
        """Start another instance of the service on the same data; stopped with the deployment."""
        service = self.new_service(name, cpus, **overrides)
        self.extra.append(service)
        return service.start()

    def migrate(self, again: bool = False) -> None:
        """Run compose's one-shot app services (the migrations) with their commands, in turn.

        Once per bake and migrations on a PostgreSQL server, unless ``again``: the database they
        migrated is copied right after, and a later deployment starts on a copy of that copy
        (CREATE DATABASE ... TEMPLATE: the same schema and rows, without the process). With
        use_auth, the deployment's user is made right after the migrations (`flask users create`,
        as auth.create_user runs it), so the copies hold it too: one process less for each.
        """
        one_shot = project_files.one_shot_services(self.compose)
        assert one_shot, "compose defines no one-shot service to migrate with"
        assert self.postgres is not None and self.database is not None
        files = sorted((self.bake / "migrations").rglob("*.py"))
        digest = hashlib.sha256(b"".join(path.read_bytes() for path in files)).hexdigest()
        key = (str(self.bake), digest)
        template = self.postgres.migrated.get(key)
        if template is not None and not again:
            self.database = self.postgres.create_database(self.combo.id, template=template)
            self.made_user = self.postgres.users.get(template)
            return
        for name, service in one_shot.items():
            migrated = self.new_service(name).run_once(compose_command(service))
            assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        if self.combo.selected("use_auth"):
            self.made_user = (EMAIL, secrets.token_urlsafe(18))
            create_user(self, *self.made_user, service=self.new_service("make-user"))
        if template is None:
            label = f"{self.combo.id}_migrated"
            template = self.postgres.create_database(label, self.database)
            self.postgres.migrated[key] = template
            if self.made_user is not None:
                self.postgres.users[template] = self.made_user

    def start_nginx(self) -> Nginx:
        """Render the generated nginx template for the loopback upstream and start nginx."""
        port = free_port()
        # nginx serves /static/ from the image's copy of the built assets: the tree's.
        static = {"NGINX_STATIC_ROOT": str(self.tree / self.package / "static")}
        if "NGINX_STATIC_ROOT" not in template_variables((self.bake / NGINX_TEMPLATE).read_text()):
            static = {}
        # As generous as the app's limits here: the tests' bursts all come from one address.
        generous = {"NGINX_API_RATE": "100000r/s", "NGINX_API_BURST": "100000"}
        config = loopback_nginx_config(self.bake, port, self.service.port, **static, **generous)
        nginx = Nginx(self.root / "nginx", config, port)
        code, output = nginx.check()
        assert code == 0, f"nginx -t failed:\n{output}"
        return nginx.start()

    def rows(self) -> int:
        """Count the items in the service's real store (PostgreSQL or the SQLite file)."""
        return self.query("SELECT count(*) FROM items")[0][0]

    def query(self, sql: str, *args) -> list[tuple]:
        """Run one statement on the service's real store, outside the service, and commit it
        (one that writes returns rows only with RETURNING; one that returns none, no rows)."""
        if self.postgres is not None:
            with self.postgres.connect(self.database) as connection:
                cursor = connection.execute(sql.replace("?", "%s"), args)
                return cursor.fetchall() if cursor.description is not None else []
        with contextlib.closing(sqlite3.connect(self.sqlite_file)) as connection, connection:
            return connection.execute(sql, args).fetchall()

    def stop_extras(self, kept: int) -> None:
        """Stop the extra instances started after the first ``kept``, and forget them."""
        started, self.extra[kept:] = self.extra[kept:], []
        stop_all([(service.process, signal.SIGTERM) for service in started if service.process])

    def stop(self) -> None:
        """Stop every process of this deployment by its pid, all at once (each one gracefully)."""
        running = [service.process for service in [*self.extra, self.service] if service]
        processes = [(process, signal.SIGTERM) for process in running if process is not None]
        if self.nginx is not None and self.nginx.process is not None:
            processes.append((self.nginx.process, signal.SIGQUIT))
        stop_all(processes)


def fresh_secret() -> str:
    """Return a real secret, as the post-generation hook writes one."""
    return secrets.token_urlsafe(48)
