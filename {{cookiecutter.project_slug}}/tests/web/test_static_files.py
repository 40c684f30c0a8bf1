"""Static files are digested, referenced by their digested names and cached a year."""

import gzip
import json
import re

import pytest
from flask_static_digest.cli import digest

from {{ cookiecutter.package_name }}.web.static_files import IMMUTABLE, digest_app

SCRIPT = "document.documentElement.dataset.ready = 'yes';\n"
STYLE = "body { margin: 0; }\n"
# Gzip variants are written only for a proxy in front to send; Flask itself sends none.
GZIP_VARIANTS = {{ "True" if cookiecutter.use_nginx == "yes" else "False" }}


@pytest.fixture
def digested(tmp_path):
    """Return a static folder holding a script and a style, digested by `flask digest compile`."""
    (tmp_path / "app.js").write_text(SCRIPT)
    (tmp_path / "style.css").write_text(STYLE)
    app = digest_app()
    app.static_folder = str(tmp_path)
    result = app.test_cli_runner().invoke(digest, ["compile"])
    assert result.exit_code == 0, result.output
    return tmp_path


@pytest.fixture
def digested_app(make_app, digested):
    """Return an app serving the digested folder, its manifest read as at start-up."""
    app = make_app()
    app.static_folder = str(digested)
    app.extensions["static_digest"].init_app(app)
    return app


def test_digest_writes_hashed_copies_and_a_manifest(digested):
    """It copies each file under a content-hashed name, a gzip variant only for a proxy to send."""
    manifest = json.loads((digested / "cache_manifest.json").read_text())
    assert set(manifest) == {"app.js", "style.css"}
    script = digested / manifest["app.js"]
    assert re.fullmatch(r"app-[0-9a-f]{32}\.js", script.name)
    assert script.read_text() == SCRIPT
    gzipped = digested / f"{script.name}.gz"
    assert gzipped.exists() is GZIP_VARIANTS
    if GZIP_VARIANTS:
        assert gzip.decompress(gzipped.read_bytes()).decode() == SCRIPT
    assert not (digested / f"{script.name}.br").exists()


def test_page_references_the_digested_names(digested_app, digested):
    """It links the page's script and style by the names the manifest gives."""
    manifest = json.loads((digested / "cache_manifest.json").read_text())
    page = digested_app.test_client().get("/").text
    assert f'src="/static/{manifest["app.js"]}"' in page
    assert f'href="/static/{manifest["style.css"]}"' in page
    assert 'src="/static/app.js"' not in page


def test_digested_files_are_cached_a_year(digested_app, digested):
    """It serves a digested file with the immutable one-year Cache-Control."""
    manifest = json.loads((digested / "cache_manifest.json").read_text())
    client = digested_app.test_client()
    url = f"/static/{manifest['app.js']}"
    with client.get(url) as response:
        assert response.status_code == 200
        assert response.text == SCRIPT
        assert response.headers["Cache-Control"] == IMMUTABLE
    with client.get(url, headers={"If-None-Match": response.headers["ETag"]}) as again:
        assert again.status_code == 304
        assert again.headers["Cache-Control"] == IMMUTABLE


def test_undigested_files_are_revalidated(digested_app):
    """It does not let browsers keep a file whose name does not change with its content."""
    with digested_app.test_client().get("/static/app.js") as response:
        assert response.status_code == 200
        assert "immutable" not in response.headers["Cache-Control"]


def test_unknown_digested_file_is_404(digested_app):
    """It answers 404 for a digested name that does not exist, without the cache header."""
    response = digested_app.test_client().get(f"/static/app-{'0' * 32}.js")
    assert response.status_code == 404
    assert response.headers.get("Cache-Control") != IMMUTABLE


{%- if cookiecutter.use_nginx == "no" %}


@pytest.mark.parametrize("suffix", [".gz", ".br"])
def test_compressed_variants_are_not_served(digested_app, digested, suffix):
    """It answers 404 for a compressed variant's name: the digest writes none (sent, it would be
    CSS in gzip or brotli whatever encodings the client accepts)."""
    manifest = json.loads((digested / "cache_manifest.json").read_text())
    response = digested_app.test_client().get(f"/static/{manifest['style.css']}{suffix}")
    assert response.status_code == 404, response.headers
    assert response.json["error"]["status"] == 404
{%- endif %}


def test_without_a_manifest_pages_link_the_plain_names(make_app, tmp_path):
    """It links the undigested names when no digest ran (development, assets-watch)."""
    app = make_app()
    app.static_folder = str(tmp_path)
    app.extensions["static_digest"].init_app(app)
    page = app.test_client().get("/").text
    assert 'src="/static/app.js"' in page
    assert 'href="/static/style.css"' in page
