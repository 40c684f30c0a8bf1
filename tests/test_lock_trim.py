"""Tier 1: each bake's uv.lock, trimmed by the post-gen hook from the template's one lock, is the
file `uv lock` writes for the bake's pyproject.toml.

uv resolves offline from the tests' cache (`python tools/lock.py cache .uvcache` fills it), as of
the moment the universal lock was resolved (`--exclude-newer`: a release since then does not
count), and the two files must be equal byte for byte. The selections are tools/lock.py's CHECKED,
the ones it checks before writing a universal lock.
"""

import json
import sys
from pathlib import Path

import pytest
from combinations import DEFAULTS_COMBO, alone, params
from developer import UV_CACHE

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import lock


def resolved(root: Path) -> str:
    """Return the uv.lock `uv lock` writes for the bake's pyproject.toml, offline from the cache."""
    moment = lock.exclude_newer(lock.UNIVERSAL.read_text())
    return lock.resolve((root / "pyproject.toml").read_text(), moment, UV_CACHE)


@pytest.mark.parametrize("combo", params(lock.CHECKED))
def test_the_trimmed_lock_is_what_uv_lock_writes(bake, combo):
    """It bakes the selection and finds its uv.lock equal to uv's own resolution, file for file."""
    root = bake(combo)
    assert lock.differences((root / "uv.lock").read_text(), resolved(root)) == []


@pytest.mark.xdist_group(DEFAULTS_COMBO.id)
def test_the_comparison_names_each_package_that_differs(bake):
    """It names a package of another version, a changed entry and a changed header, and nothing
    when the files are equal."""
    text = (bake(DEFAULTS_COMBO) / "uv.lock").read_text()
    assert lock.differences(text, text) == []
    planted = text.replace(
        'name = "blinker"\nversion = "1.9.0"', 'name = "blinker"\nversion = "1.9.9"'
    )
    planted = planted.replace(
        '{ name = "itsdangerous" },', '{ name = "itsdangerous", marker = "x" },'
    )
    planted = planted.replace("revision = ", "revision =  ", 1)
    assert lock.differences(planted, text) == [
        "(header): differs",
        "blinker 1.9.0: only in uv's",
        "blinker 1.9.9: only in the trimmed lock",
        "flask 3.1.3: differs",
    ]


def test_lock_py_refuses_a_universal_lock_it_cannot_trim_faithfully():
    """It writes nothing when one checked bake's trim is not uv's: here the forks argon2-cffi
    brings are forgotten, so the bake with users splits Python where uv does not."""
    forks = lock.FORKS.read_text()
    wrong = {name: v for name, v in json.loads(forks).items() if "argon2" not in name}
    checked = [DEFAULTS_COMBO, alone("use_auth")]
    with pytest.raises(SystemExit, match=r"refused: .*'auth': \['\(header\): differs'"):
        lock.checked_write(lock.UNIVERSAL.read_text(), wrong, UV_CACHE, checked)
    assert lock.FORKS.read_text() == forks
    lock.checked_write(lock.UNIVERSAL.read_text(), json.loads(forks), UV_CACHE, checked)
    assert lock.FORKS.read_text() == forks
