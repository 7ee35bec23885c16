"""Arrays kept on disk (embedding caches, the distilled word-vector table)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def save_array(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` (.npy) atomically: a concurrent reader, or another process
    writing the same file, sees the old file or a whole new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "wb") as out:
        np.save(out, array)
    os.replace(temp, path)
