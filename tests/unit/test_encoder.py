"""The transformer tier's encoder: the real MiniLM, offline."""

from __future__ import annotations

import numpy as np
import pytest

from core.classify.encoder import TextEncoder
from tests.documents import OBVIOUS

LONG_OPENING = "Minutes of the committee meeting. " + "The members discussed the agenda at length. " * 120


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder()


def test_bf16_embeddings_match_fp32(encoder: TextEncoder) -> None:
    # bf16 is only worth its speed if the vectors stay the same. With OMP_THREAD_LIMIT=1 set for
    # the whole process, torch's bf16 kernels return wrong vectors; the encoder then checks itself
    # at load time and falls back to fp32, so the answer must hold either way.
    texts = list(OBVIOUS.values())
    fast = encoder.embed(texts)
    exact = TextEncoder(precision="fp32").embed(texts)
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-3)
    assert np.sum(fast * exact, axis=1).min() > 0.99


def test_the_digest_sees_the_end_of_a_long_document(encoder: TextEncoder) -> None:
    # Given a long document whose opening is generic and whose subject appears only near the end
    ending = " The tribunal dismissed the appeal and ordered the appellant to pay costs under the statute."
    digest = encoder.digest(LONG_OPENING + ending)
    # Then the single window MiniLM reads includes text from the end, and fits in the window
    assert "appeal" in digest
    assert len(encoder.model.tokenizer(digest)["input_ids"]) <= 256


def test_short_documents_are_read_whole(encoder: TextEncoder) -> None:
    text = OBVIOUS["finance"]
    assert encoder.digest(text) == text
