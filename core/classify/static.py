"""Static document vectors: MiniLM's knowledge of words, without running MiniLM on each document.

The fast tier needs features that still mean something on documents unlike its training data.
Hashed words do not: a word the training set never used carries no weight at all. MiniLM knows
what words mean, but running it costs ~30 ms per document. This module distils MiniLM once into a
table with one vector per vocabulary token (the model's output for that token alone, the recipe of
model2vec), then embeds a document as the weighted mean of its tokens' vectors: all of the
document, at the cost of tokenising it (~1 ms).

Why not the ``model2vec`` package itself: its ``distill`` extra pins ``transformers<5.4`` (we run
5.x) and pulls ``skeletoken``; the part we need is the forward pass below and two lines of weighting.

Measured on industry-real-dev (bench/bench_adaptation.py): a linear model on these vectors scores
about as well as one on MiniLM's own 256-token digest, and far better than hashed words alone.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import sparse

from core.arrays import save_array
from core.classify.weights import packaged_model_path

log = logging.getLogger(__name__)

STATIC_FORMAT = "minilm-static-v1"
# Characters of a document read for its static vector and hashed words: beyond this, evenly spaced
# slices of it (tokenising a million characters would cost half a second for little information).
MAX_CHARS = 100_000
_SLICES = 10
# How many distinct chunks (whitespace-separated runs of characters) each embedder remembers the
# tokens of; past it, it starts over. About 80,000 make up our starter corpus and industry-real-dev (11 MB).
MEMO_CHUNKS = 100_000
# Longer chunks (base64, minified data, OCR noise without spaces) rarely come back: tokenised, not
# remembered, so the memory stays within ~30 MB whatever the documents.
MEMO_CHUNK_CHARS = 64
# Characters str.split() takes for whitespace but the tokenizer deletes as control characters
# ("a\x0cb" is one word to it): removed before splitting, so chunks are the tokenizer's words.
_DELETED = {
    code: None
    for code in range(0x3001)  # every character str.isspace() accepts lies below U+3001
    if chr(code).isspace() and chr(code) not in "\t\n\r" and unicodedata.category(chr(code)).startswith("C")
}
_DELETED_PATTERN = re.compile("[" + "".join(map(chr, _DELETED)) + "]")


def sample_text(text: str, max_chars: int = MAX_CHARS) -> str:
    """The text itself, or for a very long one evenly spaced slices that add up to ``max_chars``."""
    if len(text) <= max_chars:
        return text
    width = max_chars // _SLICES
    starts = np.linspace(0, len(text) - width, _SLICES).astype(int)
    return "\n".join(text[start : start + width] for start in starts)


def zipf_weights(vocabulary_size: int, special_ids: Sequence[int]) -> np.ndarray:
    """Weight of each token: rarer tokens (higher ids in a frequency-ordered vocabulary) count more.

    ``log(1 + rank)`` is model2vec's Zipf weighting; special tokens count for nothing.
    """
    weights = np.log1p(np.arange(1, vocabulary_size + 1, dtype=np.float64))
    weights[list(special_ids)] = 0.0
    return weights


class StaticEmbedder:
    """Weighted mean of distilled token vectors, L2-normalised (384 dimensions).

    Args:
        model_path: the sentence-transformers model directory (absolute) to distil.
        cache_dir: where the distilled table is kept (built once per model, ~20 s on 2 cores).
    """

    def __init__(self, model_path: Path | None = None, *, cache_dir: Path | None = None) -> None:
        self.model_path = model_path
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._table: np.ndarray | None = None
        self._tokenizer = None
        self._memo: dict[str, bytes] = {}

    def _path(self) -> Path:
        return (self.model_path or packaged_model_path()).resolve()

    @property
    def tokenizer(self):  # type: ignore[no-untyped-def]
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(self._path() / "tokenizer.json"))
            tokenizer.no_truncation()
            tokenizer.no_padding()
            self._tokenizer = tokenizer
        return self._tokenizer

    def table(self) -> np.ndarray:
        """The distilled (vocabulary × 384) table, centred and Zipf-weighted; built on first use."""
        with self._lock:
            if self._table is None:
                self._table = self._load_or_build()
            return self._table

    def _cache_file(self) -> Path | None:
        if self.cache_dir is None:
            return None
        weights = self._path() / "model.safetensors"
        stat = weights.stat()
        key = hashlib.sha256(f"{STATIC_FORMAT}:{weights}:{stat.st_size}".encode()).hexdigest()[:16]
        return self.cache_dir / f"{STATIC_FORMAT}-{key}.npy"

    def _load_or_build(self) -> np.ndarray:
        cache = self._cache_file()
        if cache is not None:
            try:
                return np.load(cache, allow_pickle=False)
            except (OSError, ValueError):
                pass
        table = distil_token_vectors(self._path())
        if cache is not None:
            save_array(cache, table)
        return table

    def token_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's token ids, exactly as the tokenizer gives them (no special tokens).

        The tokenizer costs about 0.3 µs a character, a millisecond or two for a page, which made
        it the fast tier's largest cost. Its words never span whitespace, so a text's tokens are
        those of its whitespace-separated chunks in order: each distinct chunk is tokenised once
        (the new ones of a batch in one call) and remembered as bytes. Most of a document's chunks
        were seen before: on industry-real-dev documents never seen, about 1 ms a document against
        1.8 for the tokenizer alone (bench/bench_speed.py)."""
        chunked = [self._chunks(text) for text in texts]
        memo = self._memo
        if len(memo) > MEMO_CHUNKS:
            memo = self._memo = {}  # a thread still reading the old one keeps it whole
        missing = set().union(*(chunks for chunks in chunked if chunks is not None)).difference(memo)
        once: dict[str, bytes] = {}  # the long chunks of this call
        if missing:
            self._learn(memo, once, list(missing))
        recall = (
            memo.__getitem__ if not once else (lambda chunk: memo[chunk] if chunk in memo else once[chunk])
        )
        id_type = self._id_type()
        return [
            np.frombuffer(b"".join(map(recall, chunks)), dtype=id_type)
            if chunks is not None
            else np.asarray(self.tokenizer.encode(text, add_special_tokens=False).ids, dtype=id_type)
            for text, chunks in zip(texts, chunked, strict=True)
        ]

    def _id_type(self) -> type[np.unsignedinteger]:
        """uint16 for MiniLM's 30,522 tokens (half the memory); uint32 for a larger vocabulary."""
        return np.uint16 if self.tokenizer.get_vocab_size() <= 2**16 else np.uint32

    @staticmethod
    def _chunks(text: str) -> list[str] | None:
        """The text's chunks, or None for a text to tokenise whole: the tokenizer matches its special
        tokens before it deletes control characters, so deleting them first could make one
        ("[SE\x0cP]" is five tokens to it, "[SEP]" one)."""
        if _DELETED_PATTERN.search(text):
            if "[" in text:
                return None
            text = text.translate(_DELETED)
        return text.split()

    def _learn(self, memo: dict[str, bytes], once: dict[str, bytes], chunks: list[str]) -> None:
        """Tokenise ``chunks`` in one call (joined by spaces) and file each one's ids under it: in
        ``memo``, or in ``once`` if it is too long to be worth remembering."""
        encoding = self.tokenizer.encode(" ".join(chunks), add_special_tokens=False)
        ids = np.asarray(encoding.ids, dtype=self._id_type())
        starts = np.fromiter((offset[0] for offset in encoding.offsets), dtype=np.int64, count=len(ids))
        lengths = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
        ends = np.cumsum(lengths + 1) - 1  # where the space after each chunk is
        first = 0
        for chunk, cut in zip(chunks, np.searchsorted(starts, ends).tolist(), strict=True):
            (memo if len(chunk) <= MEMO_CHUNK_CHARS else once)[chunk] = ids[first:cut].tobytes()
            first = cut

    def token_counts(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """(documents × vocabulary) token counts of each text (its sample, if very long)."""
        ids = self.token_ids([sample_text(text) for text in texts])
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        columns = np.concatenate(ids).astype(np.int32) if ids else np.zeros(0, np.int32)
        counts = sparse.csr_matrix(
            (np.ones(len(columns), dtype=np.float32), columns, indptr),
            shape=(len(texts), self.tokenizer.get_vocab_size()),
        )
        counts.sum_duplicates()
        return counts

    def embed_parts(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each text's vector and the vectors of its parts (``spans``: (start, end) character
        offsets), each part embedded as it would be alone; in one product, the parts' chunks
        read from memory (the text's own brought them in)."""
        if not texts:
            return self.embed([]), []
        pieces = [text[start:end] for text, found in zip(texts, spans, strict=True) for start, end in found]
        vectors = self.embed([*texts, *pieces])
        bounds = np.cumsum([len(texts), *(len(found) for found in spans)])
        return vectors[: len(texts)], np.split(vectors[len(texts) :], bounds[1:-1] - len(texts))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One vector per text: the direction of its weighted token vectors, with a length between
        0 and 1 that says how much the text says (:func:`strength`); zeros for a text without a
        single token. Normalise them for a pure direction."""
        if not texts:
            return np.zeros((0, self.table().shape[1]), dtype=np.float32)
        return _scaled(np.asarray(self.token_counts(texts) @ self.table(), dtype=np.float32))


def _scaled(vectors: np.ndarray) -> np.ndarray:
    """Summed token vectors scaled to the length :func:`strength` gives them."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    scale = np.divide(strength(norms), norms, out=np.zeros_like(norms), where=norms > 0)
    return vectors * scale


def strength(norm: np.ndarray) -> np.ndarray:
    """How much a text says, from the length of its summed token vectors: ``n / (n + HALF_STRENGTH)``.

    Rare, topical tokens have long vectors and common ones short (the table is centred on the
    vocabulary and Zipf-weighted), so a line of pleasantries measures ~300, a photographed driving
    licence ~950 and a page of prose several thousand: the fast tier takes them at about 0.4, 0.7
    and 0.9 of face value (core.classify.model)."""
    return norm / (norm + HALF_STRENGTH)


HALF_STRENGTH = 450.0


def distil_token_vectors(model_path: Path, *, batch_size: int = 1024) -> np.ndarray:
    """MiniLM's mean-pooled output for each vocabulary token on its own (``[CLS] t [SEP]``), centred
    on the vocabulary mean and scaled by :func:`zipf_weights`. float32 throughout, so every machine
    builds the same table from the same weights (bf16 kernels differ between CPUs)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    log.info("distilling MiniLM's token vectors for the fast tier (once per model; ~20 s)")
    tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
    model = AutoModel.from_pretrained(str(model_path), local_files_only=True).eval()
    size = tokenizer.vocab_size
    vectors = np.zeros((size, model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, size, batch_size):
            ids = torch.arange(start, min(start + batch_size, size))
            inputs = torch.stack(
                [
                    torch.full_like(ids, tokenizer.cls_token_id),
                    ids,
                    torch.full_like(ids, tokenizer.sep_token_id),
                ],
                dim=1,
            )
            hidden = model(input_ids=inputs, attention_mask=torch.ones_like(inputs)).last_hidden_state
            vectors[start : start + len(ids)] = hidden.float().mean(dim=1).numpy()
    special = [
        i for i, token in enumerate(tokenizer.convert_ids_to_tokens(range(size))) if _is_special(token)
    ]
    weights = zipf_weights(size, special)
    return ((vectors - vectors.mean(axis=0)) * weights[:, None]).astype(np.float32)


def _is_special(token: str) -> bool:
    return token.startswith("[") and token.endswith("]")
