"""The app server is sized from the CPUs really available and configured from the environment."""

import pytest

from {{ cookiecutter.package_name }}.settings import SettingsError, load_settings
from {{ cookiecutter.package_name }}.settings.server import ServerSettings, available_cpus


@pytest.mark.parametrize(
    ("cpu_max", "cpus"),
    [("150000 100000\n", 2), ("50000 100000\n", 1), ("max 100000\n", 8), (None, 8)],
)
def test_the_cgroup_quota_caps_the_affinity(tmp_path, monkeypatch, cpu_max, cpus):
    """It takes the smaller of the CPU affinity and cgroup v2's quota, rounded up to whole CPUs."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    if cpu_max is not None:
        (tmp_path / "cpu.max").write_text(cpu_max)
    assert available_cpus(tmp_path) == cpus


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
