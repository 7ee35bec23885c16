"""With the in-process queue, a console started beside `heron api` uses the API's workers and model
(one set per machine) and starts its own only when no worker process answers."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.server import free_port
from core.runtime import open_runtime
from core.services import documents, jobs
from tests.conftest import SentWork, make_settings
from tests.documents import FINANCE
from workers import dispatch
from workers.doorbell import DoorbellSender, answers, socket_path

ROOT = Path(__file__).resolve().parents[2]


def test_the_console_hands_its_work_to_the_api_process(prepared_dir: Path) -> None:
    port = free_port()
    api = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "api"],
        # A long lease: its sweeper re-sends a waiting job only after 300 s, so within this test
        # only the doorbell can have brought the console's job to the API's workers.
        env={
            **os.environ,
            "HERON_DATA_DIR": str(prepared_dir),
            "HERON_API_PORT": str(port),
            "HERON_JOB_LEASE_SECONDS": "600",
        },
        cwd=ROOT,
    )
    console = open_runtime(make_settings(prepared_dir))
    try:
        deadline = time.monotonic() + 180
        while not answers(socket_path(prepared_dir)) and time.monotonic() < deadline:
            assert api.poll() is None, "heron api exited"
            time.sleep(0.2)
        # Given `heron api` running on the data directory, the console connects beside it
        dispatch.connect_beside_workers(console)
        assert isinstance(console.work, DoorbellSender)
        # When the console stores an upload, the API's workers classify it
        stored = documents.upload(
            engine=console.engine,
            blobs=console.blobs,
            work=console.work,
            stream=io.BytesIO(FINANCE.encode() + b" Rung."),
            filename="rung.txt",
            max_bytes=10**6,
        )
        job = jobs.wait_for_job(engine=console.engine, job_id=stored.jobs[0].id, seconds=60)
        assert (job.status, job.classification_result) == ("COMPLETED", "finance")
        # ... and the API answers for it as for its own
        seen = httpx.get(f"http://127.0.0.1:{port}/api/jobs/{job.id}", params={"wait": 5}).json()
        assert seen["classification_result"] == "finance"
        # And the console never loaded MiniLM
        assert console.encoder._model is None
    finally:
        api.terminate()
        api.wait(timeout=30)
        console.close()
    # Once the API is gone nobody answers: the socket it listened on is removed
    assert not answers(socket_path(prepared_dir))


def test_heron_up_runs_one_worker_process_with_the_only_minilm(prepared_dir: Path) -> None:
    api_port, ui_port = free_port(), free_port()
    env = {
        **os.environ,
        "HERON_DATA_DIR": str(prepared_dir),
        "HERON_API_PORT": str(api_port),
        "HERON_UI_PORT": str(ui_port),
    }
    up = subprocess.Popen([sys.executable, "-m", "cli.main", "up"], env=env, cwd=ROOT, start_new_session=True)
    base = f"http://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert up.poll() is None, "heron up exited"
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        # A document sent to the API is classified, and the waiting request is answered when it ends
        upload = httpx.post(
            f"{base}/api/classify_file", files={"file": ("up.txt", FINANCE.encode() + b" Up.")}
        )
        job = httpx.get(f"{base}/api/jobs/{upload.json()['job_id']}", params={"wait": 60}, timeout=90).json()
        assert (job["status"], job["classification_result"]) == ("COMPLETED", "finance")
        # The network runs in the worker process only: neither the API nor the console loaded it
        loaded = {name: _runs_minilm(pid) for pid, name in _children(up.pid)}
        assert loaded.get("worker") is True, loaded
        assert loaded.get("api") is False and loaded.get("console") is False, loaded
    finally:
        os.killpg(up.pid, 15)
        up.wait(timeout=60)


def _children(root: int) -> list[tuple[int, str]]:
    """The processes `heron up` started (and itself), named by role."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            words = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if int(entry.name) != root and int(stat[1]) != root:
            continue
        for role, word in (("console", "streamlit"), ("worker", "worker"), ("api", "up")):
            if word in words:
                found.append((int(entry.name), role))
                break
    return found


def _runs_minilm(pid: int) -> bool:
    """Whether the process has loaded MiniLM: OpenVINO's CPU plugin (mapped when a network is
    compiled) or ONNX Runtime (imported only to open its session) is mapped."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "openvino_intel_cpu_plugin" in maps or "onnxruntime_pybind11_state" in maps


def test_work_goes_to_this_process_when_no_worker_process_answers(tmp_path: Path) -> None:
    started: list[SentWork] = []

    def start_own() -> SentWork:
        started.append(SentWork())
        return started[-1]

    sender = DoorbellSender(socket_path(tmp_path), start_own)
    sender.send_classify("job-1")
    sender.send_task("task-1", "training")
    sender.send_classify("job-2")
    # The workers start once, and every message reaches them
    assert len(started) == 1
    assert started[0].jobs == ["job-1", "job-2"] and started[0].tasks == [("task-1", "training")]


def test_a_stale_socket_file_does_not_answer(tmp_path: Path) -> None:
    path = socket_path(tmp_path)
    path.parent.mkdir(parents=True)
    gone = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    gone.bind(str(path))
    gone.close()  # a worker process that died without removing its socket
    assert path.exists() and not answers(path)
