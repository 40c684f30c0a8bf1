"""Settings every app server shares, sized from the CPUs this process may really use."""

import math
import os
from pathlib import Path

from pydantic import Field

from . import DEFAULT_WEB_THREADS, LogSettings, WebThreads

CGROUP_ROOT = Path("/sys/fs/cgroup")
HOST = r"^[A-Za-z0-9.:-]+$"  # an IP address or a host name: nothing a server could not bind


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """Return the CPUs this process may use: its affinity, capped by the cgroup v2 CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = (root / "cpu.max").read_text().split()
    except (OSError, ValueError):  # not in a cgroup v2 (a quota in v1 files is not read)
        return cpus
    return cpus if quota == "max" else min(cpus, math.ceil(int(quota) / int(period)))


class ServerSettings(LogSettings):
    """The app server's knobs, whichever server runs the app; it logs like the app (LogSettings)."""

    host: str = Field(
        "127.0.0.1", pattern=HOST, description="bind address; the image sets `0.0.0.0`"
    )
    port: int = Field(8000, ge=1, le=65535, description="the port to listen on")
    web_concurrency: int | None = Field(None, ge=1, le=64, description="workers; unset: 1 per CPU")
    web_threads: WebThreads = DEFAULT_WEB_THREADS
    graceful_timeout: int = Field(
        25, ge=1, le=3600, description="seconds requests in flight get to finish"
    )

    def workers(self) -> int:
        """Return WEB_CONCURRENCY, or one worker per available CPU."""
        return self.web_concurrency or available_cpus()
