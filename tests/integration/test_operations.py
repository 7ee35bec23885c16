"""Operations and hostile input: JSON logs with job ids and no secrets; random uploads never 5xx."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import wait_for_job
from tests.documents import FINANCE

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "k3y-that-must-never-be-logged"
LLM_KEY = "sk-also-never-logged-0123456789"


def test_json_logs_carry_job_ids_and_never_a_secret(prepared_dir: Path) -> None:
    # Given `heron api` with JSON logs at DEBUG, an API key and an LLM key
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    environment = {
        **os.environ,
        "HERON_DATA_DIR": str(prepared_dir),
        "HERON_API_PORT": str(port),
        "HERON_LOG_FORMAT": "json",
        "HERON_LOG_LEVEL": "DEBUG",
        "HERON_API_KEYS": f"{API_KEY}:admin",
        "OPENAI_API_KEY": LLM_KEY,
        "HF_HUB_OFFLINE": "1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "api"],
        env=environment,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(1800):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            # When a client uploads with the key, polls the job, and another sends a wrong key
            headers = {"Authorization": f"Bearer {API_KEY}"}
            job_id = client.post(
                "/api/classify_file", files={"file": ("q.txt", FINANCE.encode())}, headers=headers
            ).json()["job_id"]
            for _ in range(300):
                if client.get(f"/api/jobs/{job_id}", headers=headers).json()["status"] == "COMPLETED":
                    break
                time.sleep(0.1)
            assert client.get("/api/jobs", headers={"X-API-Key": API_KEY + "x"}).status_code == 401
            time.sleep(0.5)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    # Then every log line is a JSON object, the job's completion is logged with its id,
    # and neither secret appears anywhere
    lines = [line for line in output.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records and len(records) >= 0.9 * len(lines), output[-2000:]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(record.get("job_id") == job_id for record in records), output[-2000:]
    assert API_KEY not in output and LLM_KEY not in output


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    data=st.one_of(
        st.binary(max_size=4096),
        st.sampled_from(
            [b"%PDF-1.7\n", b"PK\x03\x04", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a"]
        ).flatmap(lambda head: st.binary(max_size=2048).map(lambda tail: head + tail)),
    ),
    name=st.text(max_size=300),
    content_type=st.one_of(st.none(), st.text(max_size=60)),
)
def test_random_uploads_never_get_a_server_error_and_never_stick(client, data, name, content_type) -> None:  # type: ignore[no-untyped-def]
    # Given any bytes under any name and claimed type
    files = {"file": (name, data, content_type) if content_type is not None else (name, data)}
    try:
        response = client.post("/api/classify_file", files=files)
    except (UnicodeEncodeError, ValueError):
        return  # the test client itself cannot put this name or type into a multipart header
    # Then the answer is a job or a 4xx with a code, and the job ends COMPLETED or FAILED
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code >= 400:
        assert {"code", "message"} <= set(body)
        return
    for job_id in body["job_ids"]:
        assert wait_for_job(client, job_id, timeout=60)["status"] in ("COMPLETED", "FAILED")
