"""Check PROMETHEUS_MULTIPROC_DIR when the settings load."""

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator


def usable_folder(path: Path | None) -> Path | None:
    """Refuse a metrics folder that does not exist or that this process cannot write."""
    if path is not None and not (path.is_dir() and os.access(path, os.W_OK | os.X_OK)):
        raise ValueError("must be an existing folder this process can write (e.g. a tmpfs)")
    return path


MetricsFolder = Annotated[Path | None, AfterValidator(usable_folder)]
