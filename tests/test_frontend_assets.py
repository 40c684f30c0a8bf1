"""use_frontend's assets: locked exact npm versions, a minified esbuild build, digested files the
pages link and the app caches a year (built offline once per session, see frontend_build.py)."""

import json
import re
import subprocess
import sys

import pytest
from combinations import COMBINATIONS
from frontend_build import build_assets
from project_files import package_name

FRONTEND = next(combo for combo in COMBINATIONS if combo.selected("use_frontend"))
DIGESTED = re.compile(r"^(app|style)-[0-9a-f]{32}\.(js|css)$")
# A script run in the bake: the page of an app on an empty SQLite file, then each asset it links.
PAGE_CHECK = """
import json, re, sys, tempfile
from {package} import create_app
from {package}.extensions import db
app = create_app({{"app_env": "test", "secret_key": "x" * 40,
                   "database_url": f"sqlite:///{{tempfile.mkdtemp()}}/page.db"}})
with app.app_context():
    db.create_all()
client = app.test_client()
page = client.get("/").text
links = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
served = {{link: client.get(link).headers["Cache-Control"] for link in links}}
print(json.dumps(served))
"""


@pytest.fixture(scope="session")
def frontend(bake, clean_env):
    """Return the bake with use_frontend and its package name, its assets built once."""
    root = bake(FRONTEND)
    package = package_name(root)
    build_assets(root, package, clean_env)
    return root, package


def test_npm_dependencies_are_exact_and_locked(bake):
    """It pins every npm dependency to one version, locked with integrity hashes."""
    assets = bake(FRONTEND) / "assets"
    manifest = json.loads((assets / "package.json").read_text())
    declared = {**manifest["dependencies"], **manifest["devDependencies"]}
    assert set(declared) == {"esbuild", "htmx.org", "@alpinejs/csp"}
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", version) for version in declared.values()), declared
    assert declared["esbuild"].startswith("0.28.")
    assert declared["@alpinejs/csp"].startswith("3.")
    lock = json.loads((assets / "package-lock.json").read_text())
    for name, version in declared.items():
        entry = lock["packages"][f"node_modules/{name}"]
        assert entry["version"] == version
        assert entry["integrity"].startswith("sha512-")


def test_bundles_are_minified_without_source_maps(frontend):
    """It bundles htmx and Alpine into one minified script and one stylesheet, no maps."""
    root, package = frontend
    static = root / package / "static"
    assert not list(static.glob("*.map"))
    script = (static / "app.js").read_text()
    assert "sourceMappingURL" not in script
    assert "The pages' behaviour" not in script  # comments stripped
    assert len(script.splitlines()) < 20
    assert "htmx" in script and "window.Alpine" in script and "charCounter" in script
    # htmx must not add its indicator <style>: the policy has no 'unsafe-inline'.
    assert "includeIndicatorStyles:!1" in script
    assert "request-error" in script  # refused HTMX requests are reported on the page
    assert "[x-cloak]{display:none}" in (static / "style.css").read_text()


def test_digest_writes_hashed_files_with_gzip_variants(frontend):
    """It writes a content-hashed copy of each bundle, a manifest, and a .gz variant (no .br) for
    nginx to send (this bake has nginx)."""
    assert FRONTEND.selected("use_nginx")
    root, package = frontend
    static = root / package / "static"
    manifest = json.loads((static / "cache_manifest.json").read_text())
    assert set(manifest) == {"app.js", "style.css"}
    for plain, digested in manifest.items():
        assert DIGESTED.match(digested), digested
        assert (static / digested).read_bytes() == (static / plain).read_bytes()
        assert (static / f"{digested}.gz").stat().st_size > 0
        assert not (static / f"{digested}.br").exists()


def test_page_links_the_digested_files_cached_a_year(frontend, clean_env):
    """It links the built, digested files from the page, and serves them cached a year."""
    root, package = frontend
    result = subprocess.run(
        [sys.executable, "-c", PAGE_CHECK.format(package=package)],
        cwd=root,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert {link.rsplit("/", 1)[1].split("-")[0] for link in served} == {"app", "style"}
    for link, cache_control in served.items():
        assert DIGESTED.match(link.removeprefix("/static/")), link
        assert cache_control == "public, max-age=31536000, immutable"
