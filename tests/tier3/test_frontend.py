"""The frontend's images: the Node stand-in, an app image holding only the built assets.

The compose stack's own test (test_compose.py) checks that it serves the page and its assets
(through nginx when selected) with assert_page_and_assets_served below.
"""

from __future__ import annotations

import gzip
import json
import re

import pytest

from .images import package_dir
from .matrix import DOCKER, TIER3, docker_params
from .net import Endpoint, request
from .project import base_images

pytestmark = DOCKER

IMMUTABLE = "public, max-age=31536000, immutable"
ASSET_URL = re.compile(r'(?:href|src)="(/static/[^"]+-[0-9a-f]{32}\.(?:js|css))"')
# One image build with the frontend, nginx selected too if a served combination has both.
FRONTEND = sorted(
    (combo for combo in TIER3 if combo.selected("use_frontend")),
    key=lambda combo: not combo.selected("use_nginx"),
)[:1]
LEFTOVERS_SCRIPT = """
import json, os, shutil
found = {"programs": [p for p in ("node", "npm", "npx") if shutil.which(p)], "paths": []}
for root, dirs, files in os.walk("/"):
    if root.startswith(("/proc", "/sys", "/dev")):
        dirs[:] = []
        continue
    found["paths"] += [os.path.join(root, d) for d in dirs if d == "node_modules"]
    found["paths"] += [os.path.join(root, f) for f in files if f.endswith(".map")]
print(json.dumps(found))
"""
# Each file of a folder: the manifest's text, the other names.
READ_FOLDER = """
import json, os, sys
names = os.listdir(sys.argv[1])
print(json.dumps({n: open(os.path.join(sys.argv[1], n)).read() if n.endswith(".json") else ""
                  for n in names}))
"""


def test_node_stand_in_runs_node_and_npm_under_the_pinned_name(engine, standins, bake):
    """It tags Debian's nodejs and npm as the Dockerfile's node image, Python's as python."""
    combo = FRONTEND[0]
    images = base_images(bake(combo) / "Dockerfile")
    (node,) = [name for name in images if "node" in name]
    (python,) = [name for name in images if name.startswith("python:")]
    standins.bases([node, python])
    script = "console.log(require('crypto').createHash('sha256').update('x').digest('hex'))"
    ran = engine.docker("run", "--rm", "--network", "none", node, "node", "-e", script)
    assert ran.stdout.strip().startswith("2d711642b726b044")
    npm = engine.docker("run", "--rm", "--network", "none", node, "npm", "--version")
    assert npm.stdout.strip()[0].isdigit(), npm.stdout
    version = engine.docker("run", "--rm", "--network", "none", python, "python", "-V")
    assert version.stdout.startswith("Python 3."), version.stdout


@pytest.mark.parametrize("combo", docker_params(FRONTEND))
def test_image_holds_the_digested_assets_and_no_node(combo, app_image, engine):
    """It carries the built, digested, compressed assets, and no Node, node_modules or map."""
    build = app_image(combo)
    run = ("run", "--rm", "--network", "none", "--entrypoint", "python", build.tag, "-c")
    leftovers = json.loads(engine.docker(*run, LEFTOVERS_SCRIPT).stdout)
    assert leftovers == {"programs": [], "paths": []}
    static = f"{package_dir(build.context).name}/static"
    files = json.loads(engine.docker(*run, READ_FOLDER, static).stdout)
    manifest = json.loads(files.pop("cache_manifest.json"))
    assert manifest, "the digest manifest is empty"
    for digested in manifest.values():
        assert re.search(r"-[0-9a-f]{32}\.", digested), digested
        assert {digested, f"{digested}.gz"} <= set(files), sorted(files)


def assert_page_and_assets_served(port: int | Endpoint, through_nginx: bool) -> None:
    """Assert the page links digested assets, each served for a year, gzipped through nginx."""
    page = request(port, "GET", "/")
    assert page.status == 200, page
    assert page.headers["content-type"].startswith("text/html"), page.headers
    assets = ASSET_URL.findall(page.body.decode())
    assert assets, page.body[:2000]
    for url in assets:
        plain = request(port, "GET", url)
        assert plain.status == 200, (url, plain.status)
        assert plain.headers["cache-control"] == IMMUTABLE, plain.headers
        if through_nginx:  # the .gz variant the digest wrote, sent by gzip_static
            zipped = request(port, "GET", url, headers={"Accept-Encoding": "gzip"})
            assert zipped.headers.get("content-encoding") == "gzip", zipped.headers
            assert gzip.decompress(zipped.body) == plain.body
    assert request(port, "GET", "/static/app-" + "0" * 32 + ".js").status == 404
