"""The generated Dockerfile builds, and its image runs hardened, small and clean."""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path

import project_files
import pytest
from combinations import BY_ID

from .images import (
    CONTEXT_LEFTOVERS,
    added_bytes,
    build_image,
    megabytes,
    package_dir,
    prepare_context,
    warnings_in,
)
from .matrix import DOCKER, docker_params
from .net import free_port, request
from .project import base_images, final_base, tmpfs_mounts
from .standins import tag_version

# Compilers that must stay in the builder stage, if any stage ever has them.
COMPILERS = ("cc", "gcc", "c++", "g++", "clang", "tcc")
# The image's own HEALTHCHECK runs; only its interval (30 s) is shortened for the test.
HEALTH_SCHEDULE = ("--health-interval=1s",)
SERVE_TIMEOUT = 60
LAYER_CACHE_COMBO = "bare"
# A rebuild after a code change must take at most this share of the cold build.
CACHED_REBUILD_SHARE = 0.35

INSPECT_SCRIPT = """
import json, os, shutil, sys
workdir = os.getcwd()
found = {}
for root, dirs, files in os.walk(workdir):
    for name in dirs + files:
        if name in sys.argv[1:]:
            found.setdefault(name, []).append(os.path.join(root, name))
pip_caches = []
for root, dirs, _ in os.walk("/"):
    if root.startswith(("/proc", "/sys", "/dev")):
        dirs[:] = []
        continue
    if os.path.basename(root) == ".cache" and "pip" in dirs:
        pip_caches.append(os.path.join(root, "pip"))
print(json.dumps({
    "workdir": workdir,
    "entries": sorted(os.listdir(workdir)),
    "found": found,
    "pip_caches": pip_caches,
    "compilers": {name: shutil.which(name) for name in %r if shutil.which(name)},
}))
"""


def _runtime_environment(build, port: int) -> list[str]:
    """Return `docker run -e` flags the app needs: loopback bind, a secret, a database URL."""
    env = {"PORT": str(port), "HOST": "127.0.0.1", "SECRET_KEY": secrets.token_urlsafe(32)}
    if build.combo.selected("use_postgres"):
        # Nothing listens there: liveness and the healthcheck must not depend on the database.
        env["DATABASE_URL"] = f"postgresql+psycopg://app:unused@127.0.0.1:{free_port()}/app"
    return [flag for name, value in env.items() for flag in ("-e", f"{name}={value}")]


@pytest.mark.parametrize("combo", docker_params())
def test_dockerfile_builds_without_warnings(combo, app_image, report):
    """It builds with BuildKit on every combination, and the builder reports no warning."""
    build = app_image(combo)
    report(f"build {combo.id}: {build.seconds:.1f} s (BuildKit; layers built earlier are reused)")
    assert build.output.strip(), "the build printed nothing"
    assert warnings_in(build.output) == []


@pytest.mark.parametrize("combo", docker_params())
def test_image_runs_as_numeric_non_root_user(combo, app_image, engine):
    """It names a numeric, non-root user, and its processes run as that uid."""
    build = app_image(combo)
    user = engine.inspect("image", build.tag)["Config"]["User"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), f"USER {user!r} is not numeric"
    assert gid == "" or gid.isdigit(), f"USER {user!r} has a non-numeric group"
    assert int(uid) != 0
    ran = run_offline(engine, build.tag, "id", "-u")
    assert ran.stdout.strip() == uid


@pytest.mark.parametrize("combo", docker_params())
def test_image_runs_the_python_its_base_tag_names(combo, app_image, engine, report):
    """Its `python` (the venv's, first on PATH) is the version the base image's tag names."""
    build = app_image(combo)
    base = final_base(build.context / "Dockerfile")
    ran = run_offline(engine, build.tag, "python", "--version")
    report(f"python {combo.id}: {ran.stdout.strip()} in the image FROM {base} (stand-in)")
    assert ran.stdout.strip() == f"Python {tag_version(base)}"
    assert tag_version(base).startswith(combo.value("python_version") + ".")


@pytest.mark.parametrize("combo", docker_params())
def test_image_holds_no_secrets_tests_tools_or_caches(combo, app_image, engine):
    """It leaves .env, .git, tests, compilers and pip's cache out of the image."""
    build = app_image(combo)
    script = INSPECT_SCRIPT % (COMPILERS,)
    ran = run_offline(engine, build.tag, "python", "-c", script, *CONTEXT_LEFTOVERS)
    seen = json.loads(ran.stdout)
    package = package_dir(build.context).name
    assert package in seen["entries"], f"the app is not in {seen['workdir']}: {seen}"
    assert seen["found"] == {}, f"the image holds {seen['found']}"
    assert seen["compilers"] == {}
    assert seen["pip_caches"] == []


@pytest.mark.parametrize("combo", docker_params())
def test_the_code_runs_from_bytecode_compiled_into_the_image(combo, app_image, engine):
    """Its package loads from the bytecode the build compiled (the app user cannot write any):
    Python's verbose import names each module's code object, compiled from a .py or read from a
    .pyc; not one of the app's is compiled as the process starts."""
    build = app_image(combo)
    workdir = engine.inspect("image", build.tag)["Config"]["WorkingDir"]
    package = package_dir(build.context).name
    ran = run_offline(engine, build.tag, "python", "-v", "-c", f"import {package}")
    code_objects = re.findall(r"^# code object from '?([^'\n]+)'?$", ran.stderr, re.M)
    ours = [path for path in code_objects if path.startswith(f"{workdir}/")]
    assert ours, ran.stderr[-3000:]
    assert [path for path in ours if not path.endswith(".pyc")] == [], ran.stderr[-3000:]


@pytest.mark.parametrize("combo", docker_params())
def test_hardened_container_serves_and_turns_healthy(combo, app_image, engine, compose_config):
    """It serves /healthz read-only, without capabilities or new privileges, and turns healthy."""
    build = app_image(combo)
    config = compose_config(build)
    web = project_files.web_service(config)
    tmpfs = tmpfs_mounts(config["services"][web])
    assert tmpfs, f"compose.yaml documents no tmpfs mount for {web}"
    port = free_port()
    name = f"fst3-hardened-{combo.id}"
    flags = [
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--network",
        "host",
    ]
    flags += [flag for mount in tmpfs for flag in ("--tmpfs", mount)]
    engine.docker(
        "run",
        "-d",
        "--name",
        name,
        *flags,
        *HEALTH_SCHEDULE,
        *_runtime_environment(build, port),
        build.tag,
    )
    try:
        deadline = time.monotonic() + SERVE_TIMEOUT
        status, health = None, None
        while time.monotonic() < deadline and (status != 200 or health != "healthy"):
            state = engine.inspect("container", name)["State"]
            assert state["Running"], f"the container stopped:\n{engine.docker('logs', name).stderr}"
            health = state["Health"]["Status"]
            try:
                status = request(port, "GET", "/healthz").status
            except OSError:
                status = None
            time.sleep(0.5)
        logs = engine.docker("logs", name)
        assert status == 200, f"/healthz did not answer 200:\n{logs.stdout}{logs.stderr}"
        assert health == "healthy", f"health is {health!r}:\n{logs.stdout}{logs.stderr}"
    finally:
        engine.docker("rm", "-f", "-v", name, check=False)


@pytest.mark.parametrize("combo", docker_params())
def test_image_size_on_top_of_base_is_reported(combo, app_image, engine, report):
    """It adds a bounded size on top of its base image, and the size is reported."""
    build = app_image(combo)
    base = final_base(build.context / "Dockerfile")
    size = added_bytes(engine, build.tag, base)
    line = f"size {combo.id}: {megabytes(size)} on top of {base} (stand-in)"
    report(line)
    assert 1_000_000 < size < 300_000_000, line


@pytest.mark.parametrize(
    "builder", [pytest.param(name, marks=DOCKER) for name in ("buildkit", "classic")]
)
def test_code_change_rebuild_reuses_dependency_layers(
    builder, engine, standins, bake, tmp_path, report
):
    """It rebuilds after a .py change from cached dependency layers, in a fraction of the time."""
    chosen = BY_ID[LAYER_CACHE_COMBO]
    context = prepare_context(bake(chosen), tmp_path / "project")
    dockerfile = context / "Dockerfile"
    standins.bases(base_images(dockerfile))
    classic = builder == "classic"
    cold, cold_output = build_image(
        engine, context, f"fst3-cache:{builder}-cold", classic=classic, no_cache=True
    )
    assert warnings_in(cold_output) == []

    package = package_dir(context)
    module = package / "items" / "api.py"
    module.write_text(module.read_text() + "\n# changed by the layer-cache test\n")
    warm, warm_output = build_image(engine, context, f"fst3-cache:{builder}-warm", classic=classic)

    line = (
        f"layer cache ({builder}, {chosen.id}): cold {cold:.1f} s, after a .py change {warm:.1f} s"
    )
    report(line)
    for step in _dependency_steps(dockerfile):
        assert _step_cached(warm_output, step, classic), f"{step!r} was rebuilt:\n{warm_output}"
    inside = module.relative_to(package.parent).as_posix()
    ran = run_offline(engine, f"fst3-cache:{builder}-warm", "cat", inside)
    assert "changed by the layer-cache test" in ran.stdout, "the rebuilt image lacks the change"
    assert warm <= CACHED_REBUILD_SHARE * cold, line


def run_offline(engine, image: str, program: str, *args: str):
    """Run ``program args`` in a throw-away container of ``image`` with no network."""
    return engine.docker("run", "--rm", "--network", "none", "--entrypoint", program, image, *args)


def _dependency_steps(dockerfile: Path) -> list[str]:
    """Return the Dockerfile instructions that install or copy the dependencies."""
    steps = [
        f"{keyword} {arguments}"
        for keyword, arguments in project_files.instructions(dockerfile)
        if (keyword == "RUN" and "pip" in arguments and " install " in arguments)
        or (keyword == "COPY" and arguments.startswith("--from"))
    ]
    assert steps, f"no dependency step in {dockerfile}"
    return steps


def _step_cached(output: str, instruction: str, classic: bool) -> bool:
    """Say whether the build output shows the given Dockerfile instruction served from cache."""
    head = " ".join(instruction.split()[:4])
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if head not in " ".join(line.split()):
            continue
        if classic:  # "Step 6/20 : RUN ..." then " ---> Using cache"
            return any("Using cache" in later for later in lines[index + 1 : index + 3])
        step = line.split()[0]  # BuildKit: "#10 [builder 4/4] RUN ..." then "#10 CACHED"
        return any(later.split()[:2] == [step, "CACHED"] for later in lines[index + 1 :])
    raise AssertionError(f"no step {instruction!r} in the build output:\n{output}")
