"""A real ACME CA on loopback for the HTTPS stacks: Pebble and its DNS, started by the tests.

Pebble (Let's Encrypt's test CA, Debian's `pebble` package) listens on 127.0.0.1 with its own
self-signed listener certificate; a stack's Caddy (on the host network) trusts it through
SSL_CERT_FILE. Pebble resolves the test domain with pebble-challtestsrv's DNS, which answers
127.0.0.1 for every name, and validates the challenges on the ports Caddy listens on there
(Pebble's httpPort and tlsPort). The certificates it issues chain to a root it makes at start and
serves on its management listener: clients verify the site against that root and nothing else.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from .net import free_port

START_TIMEOUT = 30  # seconds for Pebble's directory to answer
STOP_TIMEOUT = 10
# The site the HTTPS stacks serve: a reserved name (RFC 2606), resolved only by the tests' DNS.
DOMAIN = "app.example.test"
# Pebble validates at once and accepts every nonce: certificates in seconds, not minutes.
PEBBLE_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}


def free_udp_port() -> int:
    """Return a loopback port free for both UDP and TCP (the DNS server listens on both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port for UDP and TCP in 50 tries")


def _program(name: str) -> str:
    """Return a Pebble program's path, or fail with how to install it."""
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found (.ci/run installs Debian's pebble package)")
    return found


class Pebble:
    """One Pebble CA and its DNS on free loopback ports, validating on given HTTP/TLS ports."""

    def __init__(self, folder: Path, http_port: int, tls_port: int) -> None:
        self.folder = folder
        self.http_port = http_port
        self.tls_port = tls_port
        self.port = free_port()
        self.management_port = free_port()
        self.dns_port = free_udp_port()
        self.dns_management_port = free_port()
        self.listener_cert = folder / "pebble-listener.pem"
        self.processes: list[subprocess.Popen] = []

    @property
    def directory(self) -> str:
        """Return the ACME directory URL (what Caddy's ACME_CA names)."""
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self) -> None:
        """Make the listener certificate, start the DNS and Pebble, wait for the directory."""
        self.folder.mkdir(parents=True, exist_ok=True)
        key = self.folder / "pebble-listener.key"
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
                *("-keyout", str(key), "-out", str(self.listener_cert), "-subj", "/CN=localhost"),
                *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.listener_cert.chmod(0o644)  # read inside the container by Caddy's non-root user
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{self.port}",
                "managementListenAddress": f"127.0.0.1:{self.management_port}",
                "certificate": str(self.listener_cert),
                "privateKey": str(key),
                "httpPort": self.http_port,
                "tlsPort": self.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        (self.folder / "pebble.json").write_text(json.dumps(config))
        # Only the DNS: challenges are answered by Caddy, not by the test server.
        self._spawn(
            "challtestsrv",
            [
                *(_program("pebble-challtestsrv"), "-http01", "", "-https01", "", "-tlsalpn01", ""),
                *("-dns01", f"127.0.0.1:{self.dns_port}", "-defaultIPv4", "127.0.0.1"),
                *("-defaultIPv6", "", "-management", f"127.0.0.1:{self.dns_management_port}"),
            ],
        )
        self._spawn(
            "pebble",
            [
                *(_program("pebble"), "-config", str(self.folder / "pebble.json")),
                *("-dnsserver", f"127.0.0.1:{self.dns_port}"),
            ],
            env=PEBBLE_ENV,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self._get(self.port, "/dir")
                return
            except OSError as exc:
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                    self.stop()
                    raise RuntimeError(f"Pebble did not start: {exc}\n{self.logs()}") from None
                time.sleep(0.2)

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        """Start one program with its output in a log file of the folder."""
        log = (self.folder / f"{name}.log").open("wb")
        self.processes.append(
            subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **(env or {})},
                start_new_session=True,
            )
        )
        log.close()

    def _get(self, port: int, path: str) -> bytes:
        """GET a path of Pebble's listeners, trusting its listener certificate only."""
        context = ssl.create_default_context(cafile=str(self.listener_cert))
        url = f"https://127.0.0.1:{port}{path}"
        with urllib.request.urlopen(url, context=context, timeout=10) as reply:
            return reply.read()

    def root_pem(self) -> str:
        """Return the root certificate the issued certificates chain to (PEM)."""
        return self._get(self.management_port, "/roots/0").decode()

    def client_context(self) -> ssl.SSLContext:
        """Return a TLS client context that trusts Pebble's root and nothing else."""
        context = ssl.create_default_context(cadata=self.root_pem())
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def logs(self) -> str:
        """Return the tails of Pebble's and its DNS's logs."""
        parts = []
        for name in ("pebble", "challtestsrv"):
            path = self.folder / f"{name}.log"
            if path.is_file():
                parts.append(f"--- {name} ---\n" + "\n".join(path.read_text().splitlines()[-30:]))
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop the programs this object started, by their pids."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        self.processes.clear()
