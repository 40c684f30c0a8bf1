"""The server empties the workers' metrics folder at start, or makes a temporary one."""

import os

from {{ cookiecutter.package_name }} import metrics_folder


def test_start_server_empties_the_folder_and_hands_it_to_the_workers(tmp_path, monkeypatch):
    """It removes an earlier run's files and names the folder in the workers' environment."""
    monkeypatch.setenv(metrics_folder.FOLDER_VARIABLE, "unset-by-the-test")
    (tmp_path / "counter_12.db").write_bytes(b"old counts")
    assert metrics_folder.start_server(tmp_path) == tmp_path
    assert not list(tmp_path.iterdir())
    assert os.environ[metrics_folder.FOLDER_VARIABLE] == str(tmp_path)


def test_start_server_without_a_folder_makes_a_temporary_one(monkeypatch):
    """It makes a private folder when none is set, and stop_server removes it."""
    monkeypatch.setenv(metrics_folder.FOLDER_VARIABLE, "unset-by-the-test")
    folder = metrics_folder.start_server(None)
    assert folder.is_dir() and os.environ[metrics_folder.FOLDER_VARIABLE] == str(folder)
    metrics_folder.stop_server()
    assert not folder.exists()
