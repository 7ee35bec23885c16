"""`heron` from a shell: works in-process on the configured database, no server needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.documents import EDUCATION, TECHNOLOGY, pdf_bytes

ROOT = Path(__file__).resolve().parents[2]


def heron(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HERON_DATA_DIR": str(data_dir), "HERON_DATABASE_URL": "", "HERON_BROKER_URL": ""}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_classify_prints_one_json_object_per_file(tmp_path: Path) -> None:
    # Given a fresh data dir (no model yet) and a folder of documents, one of them unreadable
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "syllabus.pdf").write_bytes(pdf_bytes(EDUCATION))
    (docs / "notes.txt").write_text(TECHNOLOGY)
    (docs / "empty.docx").write_bytes(b"")
    # When heron classify runs on it
    result = heron(tmp_path / "state", "classify", str(docs))
    # Then it trained the starter model itself and printed a line per file
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_name = {Path(line["path"]).name: line for line in lines}
    assert set(by_name) == {"syllabus.pdf", "notes.txt", "empty.docx"}, result.stderr
    assert by_name["syllabus.pdf"]["label"] == "education"
    assert by_name["notes.txt"]["label"] == "technology"
    for line in (by_name["syllabus.pdf"], by_name["notes.txt"]):
        assert set(line) == {"path", "label", "confidence", "tier", "escalated", "needs_review"}
        assert 0 < line["confidence"] <= 1
    assert by_name["empty.docx"]["error"]["code"] == "empty"
    assert result.returncode == 1  # some file failed


def test_train_adds_a_version_and_reports_its_evaluation(tmp_path: Path) -> None:
    result = heron(tmp_path, "train")
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["version_id"] == 2  # the starter model was version 1
    assert outcome["metrics"]["n"] > 0 and 0 <= outcome["metrics"]["macro_f1"] <= 1
