"""The transformer tier's encoder: the real MiniLM, offline."""

from __future__ import annotations

import numpy as np
import pytest

from core.classify.encoder import TextEncoder, native_bf16
from tests.documents import OBVIOUS

LONG_OPENING = "Minutes of the committee meeting. " + "The members discussed the agenda at length. " * 120


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder()


def test_the_backends_give_the_same_vectors(encoder: TextEncoder, tmp_path, monkeypatch) -> None:
    # OpenVINO is only worth its speed if the vectors stay torch's: the model's training cache is
    # shared between them. bf16 only runs where the CPU has it natively (elsewhere it is slower),
    # and falls back to fp32 when it disagrees (OMP_THREAD_LIMIT=1 set for the whole process).
    texts = list(OBVIOUS.values())
    served = encoder.embed(texts)
    exact = TextEncoder(backend="torch", precision="fp32").embed(texts)
    assert encoder.backend == "openvino"
    assert np.allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-3)
    assert np.sum(served * exact, axis=1).min() > 0.999
    if not native_bf16():
        assert encoder.precision == "fp32"
    # Converted once, without reporting to OpenVINO's telemetry: a second encoder on the same
    # cache reads the saved network
    import openvino_telemetry

    def no_reporting(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("OpenVINO telemetry was started")

    monkeypatch.setattr(openvino_telemetry.Telemetry, "__init__", no_reporting)
    monkeypatch.setattr(openvino_telemetry.Telemetry, "send_event", no_reporting)
    first = TextEncoder(cache_dir=tmp_path)
    vectors = first.embed(texts[:2])
    saved = list(tmp_path.glob("minilm-ir-*/minilm.xml"))
    assert len(saved) == 1
    assert np.allclose(TextEncoder(cache_dir=tmp_path).embed(texts[:2]), vectors, atol=1e-5)


def test_the_digest_sees_the_end_of_a_long_document(encoder: TextEncoder) -> None:
    # Given a long document whose opening is generic and whose subject appears only near the end
    ending = " The tribunal dismissed the appeal and ordered the appellant to pay costs under the statute."
    digest = encoder.digest(LONG_OPENING + ending)
    # Then the single window MiniLM reads includes text from the end, and fits in the window
    assert "appeal" in digest
    assert len(encoder.token_offsets(digest)) <= 256


def test_short_documents_are_read_whole(encoder: TextEncoder) -> None:
    text = OBVIOUS["finance"]
    assert encoder.digest(text) == text
