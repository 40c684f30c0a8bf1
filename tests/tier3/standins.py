"""Build TEST STAND-INS for the images the generated project names: nothing can be pulled here.

Each stand-in is made from Debian bookworm packages and tagged with the exact name the generated
Dockerfile (FROM) or compose file (image:) uses; the generated project is never changed to suit
them. The Python stand-in is Debian's Python 3.11, whatever version its tag says.

A debootstrap root filesystem is the base of all of them. It and the service stand-ins are cached
between runs on one machine, keyed by a hash of their recipe (under $XDG_CACHE_HOME or ~/.cache,
in flask-service-tier3/), and rebuilt when absent. The service images install their packages with
this machine's apt sources, copied in at build time (no mirror address is kept in this repository).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .engine import DockerEngine
from .project import major_version, repository

log = logging.getLogger("tier3")

RECIPES = Path(__file__).resolve().parent / "standins"
SUITE = "bookworm"
ROOTFS_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
# Bump when the way the root filesystem is prepared changes.
ROOTFS_PREPARATION = "2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APT_SOURCE_FILES = ("sources.list", "sources.list.d/debian.sources")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LABEL = "flask-service-tier3"
# Stand-ins whose package manager reaches a registry while the app image builds (npm ci).
NEEDS_CA_BUNDLE = ("node",)
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


def debian_mirror(sources: dict[str, str], suite: str = SUITE) -> str:
    """Return the first mirror URI that serves ``suite`` main, from one-line or deb822 sources."""
    for text in sources.values():
        for stanza in text.split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                key, sep, value = line.partition(":")
                if sep and not line.startswith((" ", "#")) and " " not in key:
                    fields[key.strip().lower()] = value.split()
            if suite in fields.get("suites", []) and "main" in fields.get("components", []):
                if "deb" in fields.get("types", ["deb"]):
                    return fields["uris"][0]
            for line in stanza.splitlines():
                words = [w for w in line.split() if not w.startswith("[")]
                if (
                    len(words) >= 4
                    and words[0] == "deb"
                    and words[2] == suite
                    and "main" in words[3:]
                ):
                    return words[1]
    raise RuntimeError(f"no apt source serves {suite} main")


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


class StandIns:
    """Builds, caches and tags the stand-in images inside one engine."""

    def __init__(self, engine: DockerEngine, cache: Path | None = None) -> None:
        self.engine = engine
        self.cache = cache or cache_dir()
        self.rootfs_key = _digest(SUITE, "minbase", *ROOTFS_PACKAGES, ROOTFS_PREPARATION)
        self._rootfs_image: str | None = None
        self._python: str | None = None

    def rootfs_image(self) -> str:
        """Return the tag of the debootstrap root filesystem imported into the engine."""
        if self._rootfs_image is None:
            tag = f"{LABEL}/debian-rootfs:{self.rootfs_key}"
            if not self.engine.image_exists(tag):
                with _locked(self.cache):
                    tarball = self._rootfs_tarball()
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
            self._rootfs_image = tag
        return self._rootfs_image

    def python(self, names: list[str]) -> str:
        """Tag Debian's Python 3.11 stand-in as each python image name; return its own tag."""
        if self._python is None:
            tag = f"{LABEL}/python:{recipe_digest('python', self.rootfs_key)}"
            with tempfile.TemporaryDirectory(prefix="fst3-python-") as work:
                shutil.copyfile(HOST_CA_BUNDLE, Path(work) / "ca-certificates.crt")
                self._build("python", tag, Path(work), {})
            self._python = tag
        for name in names:
            self.engine.docker("tag", self._python, name)
            log.info("stand-in: %s is Debian bookworm's Python 3.11, not the official image", name)
        return self._python

    def bases(self, names: list[str]) -> None:
        """Tag a stand-in as each base image a Dockerfile names: node, nginx, else Python."""
        kinds = {name: _base_kind(name) for name in names}
        python = [name for name, kind in kinds.items() if kind == "python"]
        if python:
            self.python(python)
        for name, kind in kinds.items():
            if kind != "python":
                self.service(kind, name)

    def service(self, kind: str, name: str) -> str:
        """Tag the stand-in of ``kind`` (postgres, redis, nginx, node) as ``name``; return it."""
        build_args = _service_build_args(kind, name)
        key = recipe_digest(
            kind, self.rootfs_key, *(f"{k}={v}" for k, v in sorted(build_args.items()))
        )
        tag = f"{LABEL}/{kind}:{key}"
        if not self.engine.image_exists(tag):
            self.rootfs_image()
            with _locked(self.cache):
                self._load_or_build(kind, tag, key, build_args)
        self.engine.docker("tag", tag, name)
        log.info(
            "stand-in: %s is %s, from Debian bookworm packages, not the official image", name, tag
        )
        return tag

    def _rootfs_tarball(self) -> Path:
        """Return the cached root filesystem tarball, making it when absent (lock held)."""
        tarball = self.cache / f"rootfs-{SUITE}-{self.rootfs_key}.tar"
        if tarball.is_file():
            return tarball
        if shutil.which("debootstrap") is None:
            raise RuntimeError("debootstrap not found (.ci/run installs it)")
        mirror = debian_mirror(apt_source_files())
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=self.cache, prefix="rootfs-build-") as work:
            rootfs = Path(work) / "rootfs"
            packages = ",".join(ROOTFS_PACKAGES)
            command = ["debootstrap", "--variant=minbase", f"--include={packages}", SUITE]
            _run([*command, str(rootfs), mirror], DEBOOTSTRAP_TIMEOUT)
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
        _replace_cached(self.cache, f"rootfs-{SUITE}", tarball)
        log.info("debootstrap %s root filesystem: %.0f s", SUITE, time.monotonic() - started)
        return tarball

    def _load_or_build(self, kind: str, tag: str, key: str, build_args: dict[str, str]) -> None:
        """Load a service stand-in from the cache, or build and cache it (lock held)."""
        saved = self.cache / f"{kind}-{key}.tar"
        if saved.is_file():
            self.engine.docker("load", "--input", str(saved), timeout=BUILD_TIMEOUT)
            return
        with tempfile.TemporaryDirectory(prefix=f"fst3-{kind}-") as work:
            for relative, text in apt_source_files().items():
                target = Path(work) / "apt-sources" / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            if kind in NEEDS_CA_BUNDLE:
                shutil.copyfile(HOST_CA_BUNDLE, Path(work) / "ca-certificates.crt")
            self._build(kind, tag, Path(work), build_args)
        partial = self.cache / f".{kind}-{key}.tar.partial-{os.getpid()}"
        self.engine.docker("save", "--output", str(partial), tag, timeout=BUILD_TIMEOUT)
        os.replace(partial, saved)
        _replace_cached(self.cache, kind, saved)

    def _build(self, kind: str, tag: str, context: Path, build_args: dict[str, str]) -> None:
        """Build a stand-in recipe (copied into ``context``) on host networking."""
        shutil.copytree(RECIPES / kind, context, dirs_exist_ok=True)
        for script in context.glob("*.sh"):
            script.chmod(0o755)  # entrypoints must run even from a checkout that lost the bit
        args = ["build", "--network", "host", "-t", tag]
        args += ["--label", f"{LABEL}.stand-in={kind}", "--label", f"{LABEL}.recipe={tag}"]
        for name, value in {"ROOTFS": self.rootfs_image(), **build_args}.items():
            args += ["--build-arg", f"{name}={value}"]
        started = time.monotonic()
        self.engine.docker(*args, str(context), timeout=BUILD_TIMEOUT, env={"DOCKER_BUILDKIT": "1"})
        log.info("stand-in %s built in %.0f s", tag, time.monotonic() - started)


def _base_kind(image: str) -> str:
    """Return the stand-in of a Dockerfile's base image: node, nginx (a stage), else python."""
    name = repository(image)
    return next((kind for kind in ("node", "nginx") if kind in name), "python")


def _service_build_args(kind: str, name: str) -> dict[str, str]:
    """Return build arguments that follow the official image's layout for this tag."""
    if kind != "postgres":
        return {}
    major = major_version(name) or 17
    # From PostgreSQL 18 on, the official image keeps PGDATA in a versioned folder.
    if major >= 18:
        return {"PGDATA": f"/var/lib/postgresql/{major}/docker", "PGVOLUME": "/var/lib/postgresql"}
    return {"PGDATA": "/var/lib/postgresql/data", "PGVOLUME": "/var/lib/postgresql/data"}
