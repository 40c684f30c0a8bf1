"""The folder where the server's worker processes write their metrics, kept by the server.

Each worker writes its values into files of this folder (PROMETHEUS_MULTIPROC_DIR); /metrics
sums them (metrics.py). prometheus_client reads the variable once, when first imported: the
server names the folder before any worker imports it, and empties it first (start_server).
"""

import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

FOLDER_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_temporary_folders: list[Path] = []


def _usable_folder(path: Path | None) -> Path | None:
    """Refuse a metrics folder that does not exist or that this process cannot write."""
    if path is not None and not (path.is_dir() and os.access(path, os.W_OK | os.X_OK)):
        raise ValueError("must be an existing folder this process can write (e.g. a tmpfs)")
    return path


MetricsFolder = Annotated[Path | None, AfterValidator(_usable_folder)]


def start_server(folder: Path | None) -> Path:
    """Empty the workers' shared folder (a temporary one when unset) before any worker starts.

    An earlier run's files would add its counts to this run's. Workers find the folder in
    PROMETHEUS_MULTIPROC_DIR, which they inherit.
    """
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="metrics-"))
        _temporary_folders.append(folder)
    for leftover in folder.glob("*.db"):
        leftover.unlink()
    os.environ[FOLDER_VARIABLE] = str(folder)
    return folder


def stop_server() -> None:
    """Remove the temporary folder start_server made, if it made one."""
    while _temporary_folders:
        shutil.rmtree(_temporary_folders.pop(), ignore_errors=True)
