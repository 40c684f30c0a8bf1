"""Settings every app server shares, sized from the CPUs this process may really use."""

import math
import os
from pathlib import Path

from pydantic import Field

from .metrics_folder import MetricsFolder
from .settings import DEFAULT_WEB_THREADS, LogSettings, WebThreads

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """Return the CPU quota of this cgroup in CPUs (v2 cpu.max or v1 cfs files), or None."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """Return the CPUs available to this process: its affinity, capped by the cgroup quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return max(1, cpus)


class ServerSettings(LogSettings):
    """Knobs of the app server, each overridable by the upper-case variable of the same name.

    The server logs like the app: LOG_LEVEL and LOG_FORMAT come from LogSettings (settings.py).
    Each app server adds its own knobs, in its own module.
    """

    # Loopback outside containers: a native run is not reachable from the network by accident.
    # The image sets HOST=0.0.0.0, since a container must listen on all its interfaces.
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    web_concurrency: int | None = Field(None, ge=1, le=64)
    # The app sizes its database pool to them too (settings.py).
    web_threads: WebThreads = DEFAULT_WEB_THREADS
    graceful_timeout: int = Field(25, ge=1)
    # The workers' metrics folder, emptied at start; unset: a temporary one (metrics_folder.py).
    prometheus_multiproc_dir: MetricsFolder = None

    def workers(self) -> int:
        """Return WEB_CONCURRENCY, or one worker per available CPU."""
        return self.web_concurrency or available_cpus()
