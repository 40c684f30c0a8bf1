"""The pages' assets of a bake with the frontend: built once, and the digest's manifest.

tests/frontend_build.py builds them as `make assets` does (npm offline from .npmcache, esbuild,
the digest); the Dockerfile's stages run the same steps, so tier 2 serves what the image holds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import frontend_build
import project_files

MANIFEST = "cache_manifest.json"


def has_assets(project: Path) -> bool:
    """Say whether a bake has the pages' asset sources (the frontend option)."""
    return (project / "assets" / "package-lock.json").is_file()


def static_dir(project: Path) -> Path:
    """Return the package's static folder, where the build and the digest write."""
    return project / project_files.package_name(project) / "static"


def build_assets(project: Path) -> Path:
    """Build and digest a bake's assets once; return its static folder."""
    static = static_dir(project)
    if not (static / MANIFEST).is_file():
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(project),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        frontend_build.build_assets(project, project_files.package_name(project), env)
    return static


def digested_files(static: Path) -> dict[str, str]:
    """Return the manifest: each built file's name and its digested name."""
    return json.loads((static / MANIFEST).read_text())
