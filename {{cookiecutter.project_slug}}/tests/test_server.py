"""The app server is sized from the CPUs really available and configured from the environment."""

import pytest

from {{ cookiecutter.package_name }}.server import ServerSettings, available_cpus, cgroup_cpu_limit
from {{ cookiecutter.package_name }}.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_cpu_limit(tmp_path, files, limit):
    """It reads the quota from cgroup v2's cpu.max, and None when unlimited or absent."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_limit(tmp_path) == limit


def test_quota_caps_the_affinity(tmp_path, monkeypatch):
    """It takes the smaller of the CPU affinity and the rounded-up quota."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert available_cpus(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == 8


def test_web_concurrency_overrides(monkeypatch):
    """It lets WEB_CONCURRENCY set the worker count."""
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert load_settings(model=ServerSettings).workers() == 3


@pytest.mark.parametrize(
    ("name", "value"),
    [("PORT", "eighty"), ("PORT", "70000"), ("WEB_THREADS", "0"), ("WEB_CONCURRENCY", "0")],
)
def test_invalid_server_setting_names_the_variable(monkeypatch, name, value):
    """It fails at start-up naming the bad variable."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"{name}='{value}'"):
        load_settings(model=ServerSettings)


def test_server_binds_loopback_unless_told_otherwise(monkeypatch):
    """It listens on 127.0.0.1 by default; the image sets HOST=0.0.0.0 for containers."""
    monkeypatch.delenv("HOST", raising=False)
    assert load_settings(model=ServerSettings).host == "127.0.0.1"
