"""Read names from a baked project's files: base images, compose services, images and ports."""

from __future__ import annotations

import re

# The Dockerfile and compose readers live in project_files; re-exported for the tier-3 tests.
from project_files import base_images as base_images
from project_files import final_base as final_base
from project_files import pulled_services as pulled_services

# Repository names of official images and the stand-in kind that replaces each.
STAND_IN_KINDS = {
    "postgres": "postgres",
    "redis": "redis",
    "nginx": "nginx",
    "caddy": "caddy",
    "jaeger": "jaeger",
    "mailpit": "mailpit",
}


def repository(image: str) -> str:
    """Return an image reference's last path part without tag or digest ("postgres")."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def stand_in_kind(image: str) -> str:
    """Return which stand-in replaces an official image, from its repository name."""
    name = repository(image)
    for word, kind in STAND_IN_KINDS.items():
        if word in name:
            return kind
    raise LookupError(f"no stand-in for image {image!r}: add a recipe under tests/tier3/standins/")


def major_version(image: str) -> int | None:
    """Return the leading number of an image's tag ("postgres:17.6-bookworm" -> 17)."""
    tag = image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
    match = re.match(r"(\d+)", tag)
    return int(match.group(1)) if match else None


def service_image(config: dict, name: str) -> str:
    """Return the image a compose service runs: its image key, else compose's default name."""
    service = config["services"][name]
    return service.get("image") or f"{config['name']}-{name}"


def tmpfs_mounts(service: dict) -> list[str]:
    """Return a compose service's tmpfs mount points, whichever syntax declares them."""
    mounts = service.get("tmpfs") or []
    mounts = [mounts] if isinstance(mounts, str) else list(mounts)
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict) and volume.get("type") == "tmpfs":
            mounts.append(volume["target"])
    return mounts
