"""Content-addressed store for uploaded originals: same bytes, same key, stored once."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.errors import EmptyFile, NotFound, TooLarge

CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    key: str


class BlobStore:
    """Originals on a local (or shared, mounted) directory, keyed by their sha256."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put_stream(self, chunks: Iterable[bytes], *, max_bytes: int | None = None) -> StoredBlob:
        """Store bytes streamed in chunks, hashing as they arrive (one chunk in memory at a time).

        Raises:
            EmptyFile: no bytes arrived.
            TooLarge: more than ``max_bytes`` arrived; nothing is kept.
        """
        incoming = self.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        handle, temp_name = tempfile.mkstemp(dir=incoming)
        try:
            with os.fdopen(handle, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise TooLarge(
                            f"The upload is larger than the limit of {max_bytes // (1024 * 1024)} MB."
                        )
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if size == 0:
                raise EmptyFile("The file is empty (0 bytes); there is nothing to classify.")
            key = digest.hexdigest()
            final = self.path(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp_name, final)
            return StoredBlob(sha256=key, size=size, key=key)
        finally:
            if os.path.exists(temp_name):
                os.unlink(temp_name)

    def put_file(self, source: BinaryIO, *, max_bytes: int | None = None) -> StoredBlob:
        return self.put_stream(iter(lambda: source.read(CHUNK_SIZE), b""), max_bytes=max_bytes)

    def path(self, key: str) -> Path:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise NotFound(f"Blob key {key!r} is not a sha256 hex digest.")
        return self.root / key[:2] / key[2:4] / key
