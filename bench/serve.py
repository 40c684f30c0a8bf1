"""Bake a template tree and serve its bakes for real, with the tier-2 harness.

The service is reached only as its owner reaches it: the image's command, its settings'
environment variables, its own server config files, and HTTP.
"""

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))

import wrk  # noqa: E402
from combinations import combination  # noqa: E402
from tier2.deployment import Deployment  # noqa: E402
from tier2.servers import Interpreter, Postgres, Redis, Service, owned_dir  # noqa: E402

# Settings of every server, beyond the tier-2 harness's (production, 2 workers): the cached item
# stays cached for the whole run (the longest TTL allowed).
SETTINGS = {"CACHE_TTL_SECONDS": "86400"}
# Each rate limit a bake sets in its .env.example is raised to one no load reaches; an empty one
# (no limit) stays empty, so each tree counts the requests it counts as shipped.
UNREACHED_LIMIT = "1000000 per minute"


def unreached_limits(project: Path) -> dict[str, str]:
    """Return the bake's RATELIMIT_* settings that set a limit, each raised to UNREACHED_LIMIT."""
    found = {}
    for line in (project / ".env.example").read_text().splitlines():
        name, _, value = line.partition("=")
        if name.startswith("RATELIMIT_") and value.strip():
            found[name] = UNREACHED_LIMIT
    return found


def settings_of(project: Path) -> dict[str, str]:
    """Return the settings a server of the bake ``project`` gets beyond the harness's."""
    return {**SETTINGS, **unreached_limits(project)}


def extract(ref: str, into: Path) -> Path:
    """Extract ``git archive REF`` of this repository into ``into``; return it."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True, timeout=120)
    return into


def bake(template: Path, out: Path, answers: dict, home: Path) -> Path:
    """Bake ``template`` with ``answers`` (no prompts) into ``out``; return the project."""
    words = [f"{option}={value}" for option, value in answers.items()]
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(out), str(template)]
    # Its own HOME: no cookiecutterrc or replay of whoever runs the bench applies.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    subprocess.run([*command, *words], env=env, check=True, capture_output=True, timeout=180)
    (project,) = out.iterdir()
    return project


@dataclasses.dataclass
class Servers:
    """What every deployment shares: this Python for the unprivileged user, PostgreSQL, Redis."""

    root: Path
    interpreter: Interpreter
    postgres: Postgres
    redis: Redis


def deploy(servers: Servers, template: Path, name: str, answers: dict) -> Deployment:
    """Bake ``answers``, migrate its database and start its service as its image would."""
    folder = servers.root / name
    folder.mkdir()
    folder.chmod(0o755)  # the unprivileged user reaches the tree and venv inside
    project = bake(template, folder / "bake", answers, owned_dir(folder / "home"))
    deployment = Deployment(
        combo=combination(answers),
        bake=project,
        root=folder,
        interpreter=servers.interpreter,
        postgres=servers.postgres,
        redis=servers.redis,
    )
    deployment.migrate()
    deployment.service = deployment.new_service(
        "service", wrk.SERVER_CPUS, **settings_of(project)
    ).start()
    return deployment


def serve_reference(deployment: Deployment, name: str, app: str) -> Service:
    """Start a reference app of reference_apps.py (``app``: its factory, ``module:function``)
    under the deployment's app server, plain, as a user would serve a minimal app: gunicorn (or
    granian, for a granian bake) with the deployment's workers and threads on the command line;
    none of the service's config, hooks or access log. It has the deployment's environment (its
    database and Redis)."""
    folder = deployment.root / name
    folder.mkdir(mode=0o755)
    shutil.copy(BENCH / "reference_apps.py", folder)
    (folder / "reference_apps.py").chmod(0o644)
    service = deployment.new_service(
        f"{name}-service", wrk.SERVER_CPUS, PYTHONPATH=str(folder), **settings_of(deployment.bake)
    )
    env, target = service.env, f"reference_apps:{app}"
    workers, threads = env["WEB_CONCURRENCY"], env["WEB_THREADS"]
    if service.recipe.command[0] == "gunicorn":
        plain = [
            *("gunicorn", "--workers", workers, "--worker-class", "gthread"),
            *("--threads", threads, "--bind", f"127.0.0.1:{service.port}", f"{target}()"),
        ]
    elif service.recipe.command[:3] == ["python", "-m", f"{deployment.package}.granian_server"]:
        plain = [
            *("python", "-m", "granian", "--interface", "wsgi", "--workers", workers),
            *("--blocking-threads", threads, "--host", "127.0.0.1", "--port", str(service.port)),
            *("--no-log", "--factory", target),
        ]
    else:
        raise RuntimeError(f"neither gunicorn nor granian: {service.recipe.command}")
    service.recipe = dataclasses.replace(service.recipe, command=plain)
    deployment.extra.append(service)
    return service.start()


def create_item(base: str) -> int:
    """Create one item through the API; return its id (from the Location header)."""
    body = {"name": "bench", "description": "x" * 200}
    response = requests.post(f"{base}/api/items", json=body, timeout=10)
    response.raise_for_status()
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def x_cache(url: str) -> str | None:
    """Return the X-Cache header of one read of an item."""
    response = requests.get(url, timeout=10)
    response.raise_for_status()
    return response.headers.get("X-Cache")


def cached_item(deployment: Deployment, reader: Service | None = None) -> int:
    """Create an item and read it twice from ``reader`` (default: the deployment's service);
    return its id once the second read is a cache hit."""
    item_id = create_item(deployment.service.url)
    url = f"{(reader or deployment.service).url}/api/items/{item_id}"
    answers = [x_cache(url) for _ in range(2)]
    if answers[1] != "hit":
        raise RuntimeError(f"the second read of item {item_id} was not a hit: X-Cache {answers}")
    return item_id


def items_to_read(deployment: Deployment, rows: int) -> tuple[int, int]:
    """Add ``rows`` copies of a new item (one INSERT); return their first and last ids.

    The API would take minutes to write them; a copy of a row it wrote has every column as the
    service writes it, whatever the columns are.
    """
    seed = create_item(deployment.service.url)
    columns = deployment.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'items' "
        "AND column_name <> 'id' AND is_generated = 'NEVER'"
    )
    names = ", ".join(f'"{name}"' for (name,) in columns)
    with deployment.postgres.connect(deployment.database) as connection:
        connection.execute(
            f"INSERT INTO items ({names}) SELECT {names} FROM items "  # the names read just above
            "CROSS JOIN generate_series(1, %s) WHERE id = %s",
            (rows, seed),
        )
        # Done now, the work autovacuum would start on the new rows during the loads, and the hint
        # bits each first read would set: PostgreSQL shares its CPU with wrk, and a read then
        # dirties no page.
        connection.execute("VACUUM (ANALYZE) items")
    ((first, last),) = deployment.query("SELECT min(id), max(id) FROM items WHERE id > ?", seed)
    if x_cache(f"{deployment.service.url}/api/items/{first}") != "miss":
        raise RuntimeError(f"the first read of item {first} was not a cache miss")
    return first + 1, last  # the first was just read: it is in the cache now
