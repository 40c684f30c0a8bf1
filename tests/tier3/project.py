"""Read names from a baked project's files: base images, compose services, images and ports."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

_ARG = re.compile(r"^\s*ARG\s+(\w+)(?:=(\S*))?", re.IGNORECASE)
_FROM = re.compile(r"^\s*FROM\s+(.+)$", re.IGNORECASE)
_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")

# Repository names of official images and the stand-in kind that replaces each.
STAND_IN_KINDS = {"postgres": "postgres", "redis": "redis", "nginx": "nginx"}


def _logical_lines(text: str) -> list[str]:
    """Join a Dockerfile's continuation lines and drop its comments."""
    lines, current = [], ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        lines.append(current + raw)
        current = ""
    if current:
        lines.append(current)
    return lines


def base_images(dockerfile: Path) -> list[str]:
    """Return the images a Dockerfile's FROM lines name, ARG defaults resolved, stages skipped."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    images: list[str] = []
    seen_from = False
    for line in _logical_lines(dockerfile.read_text()):
        arg = _ARG.match(line)
        if arg and not seen_from:
            args[arg.group(1)] = (arg.group(2) or "").strip("\"'")
            continue
        match = _FROM.match(line)
        if not match:
            continue
        seen_from = True
        words = [word for word in shlex.split(match.group(1)) if not word.startswith("--")]
        image = _VARIABLE.sub(
            lambda m: args.get(m.group(1) or m.group(3), m.group(2) or ""), words[0]
        )
        if len(words) >= 3 and words[1].lower() == "as":
            stages.add(words[2].lower())
        if image.lower() not in stages and image != "scratch" and image not in images:
            images.append(image)
    return images


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


def built_services(config: dict) -> dict[str, dict]:
    """Return the compose services built from the project (they have a build section)."""
    return {name: svc for name, svc in config["services"].items() if "build" in svc}


def pulled_services(config: dict) -> dict[str, dict]:
    """Return the compose services that run a published image (no build section)."""
    return {name: svc for name, svc in config["services"].items() if "build" not in svc}


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
