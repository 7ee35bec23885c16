"""Document embeddings cached on disk by content, so retraining only embeds what is new."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.arrays import save_array
from core.classify.encoder import EMBEDDING_DIM, TextEncoder


class CachedEncoder:
    """A TextEncoder whose results are remembered per text (keyed by the text's sha256).

    The cache is a local directory: losing it only costs time, and each machine fills its own.
    """

    def __init__(self, encoder: TextEncoder, root: Path | None) -> None:
        self.encoder = encoder
        self.root = root

    def static(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.static(texts)

    def static_parts(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        return self.encoder.static_parts(texts, spans)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.root is None:
            return self.encoder.embed(texts)
        keys = [hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() for text in texts]
        result = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            vector = self._load(key)
            if vector is None:
                missing.setdefault(key, []).append(i)
            else:
                result[i] = vector
        if missing:
            fresh = self.encoder.embed([texts[rows[0]] for rows in missing.values()])
            for (key, rows), vector in zip(missing.items(), fresh, strict=True):
                result[rows] = vector
                self._save(key, vector)
        return result

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.npy"

    def _load(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        try:
            vector = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None
        return vector if vector.shape == (EMBEDDING_DIM,) else None

    def _save(self, key: str, vector: np.ndarray) -> None:
        save_array(self._path(key), vector.astype(np.float32))
