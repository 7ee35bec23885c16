"""Several processes starting together on an empty database: one migration, one starter model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlmodel import select

from core.db import make_engine, session_scope
from core.db.tables import ModelVersion, TrainingExample

ROOT = Path(__file__).resolve().parents[2]
START = (
    "import sys; from core.runtime import open_runtime; from tests.conftest import make_settings; "
    "from pathlib import Path; open_runtime(make_settings(Path(sys.argv[1]))).close()"
)


def test_concurrent_starts_train_the_starter_model_once(tmp_path: Path) -> None:
    # Given three processes that start at the same moment on the same empty data dir
    processes = [
        subprocess.Popen([sys.executable, "-c", START, str(tmp_path)], cwd=ROOT, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    # When they have all finished starting
    errors = [p.communicate(timeout=300)[1].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], errors
    # Then exactly one model version exists and the starter corpus was loaded once
    engine = make_engine(f"sqlite:///{tmp_path / 'heron.db'}")
    with session_scope(engine) as session:
        versions = session.exec(select(ModelVersion)).all()
        examples = session.exec(select(TrainingExample)).all()
    assert [v.status for v in versions] == ["active"]
    assert len({e.content_hash for e in examples}) == len(examples)
    assert len(examples) >= 7 * 40
