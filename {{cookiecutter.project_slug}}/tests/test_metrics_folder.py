"""The server empties the workers' metrics folder at start and drops an exited worker's gauges."""

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


def test_an_exited_worker_loses_its_live_gauges_not_its_counts(tmp_path, monkeypatch):
    """It deletes the exited worker's live-gauge files and keeps its counter files."""
    monkeypatch.setenv(metrics_folder.FOLDER_VARIABLE, str(tmp_path))
    for name in ("gauge_livesum_41.db", "gauge_livesum_42.db", "counter_42.db"):
        (tmp_path / name).write_bytes(b"")
    metrics_folder.worker_exited(42)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "counter_42.db",
        "gauge_livesum_41.db",
    ]
