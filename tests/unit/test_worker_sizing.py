"""`heron worker --processes N` on a broker: the processes share the machine's cores."""

from __future__ import annotations

from pathlib import Path

from cli.main import worker_environment
from core.settings import load_settings


def _settings(tmp_path: Path, **overrides: object):  # type: ignore[no-untyped-def]
    # The defaults spelt out: the test processes set HERON_TORCH_THREADS=1 in their environment.
    overrides = {"worker_threads": 2, "torch_threads": 0, **overrides}
    return load_settings(
        data_dir=tmp_path, database_url="", broker_url="redis://127.0.0.1:6379/0", **overrides
    )


def test_two_processes_on_two_cores_each_get_one_worker_thread_and_one_inference_thread(
    tmp_path: Path,
) -> None:
    environment = worker_environment(_settings(tmp_path), 2, {"PATH": "/usr/bin"}, cores=2)
    assert (environment["HERON_WORKER_THREADS"], environment["HERON_TORCH_THREADS"]) == ("1", "1")
    assert environment["PATH"] == "/usr/bin"


def test_one_process_keeps_the_configured_threads(tmp_path: Path) -> None:
    environment = worker_environment(_settings(tmp_path), 1, {}, cores=2)
    assert (environment["HERON_WORKER_THREADS"], environment["HERON_TORCH_THREADS"]) == ("2", "2")


def test_threads_the_operator_set_are_kept(tmp_path: Path) -> None:
    settings = _settings(tmp_path, worker_threads=4, torch_threads=3)
    environment = worker_environment(settings, 2, {"HERON_WORKER_THREADS": "4"}, cores=2)
    assert environment["HERON_WORKER_THREADS"] == "4"
    assert "HERON_TORCH_THREADS" not in environment  # each process reads its own from the settings
