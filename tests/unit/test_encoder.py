"""The transformer tier's encoder: the real MiniLM, offline."""

from __future__ import annotations

import numpy as np
import pytest

from core.classify.encoder import TextEncoder, native_bf16
from tests.conftest import SHARED_CACHE
from tests.documents import OBVIOUS

# The suite's shared cache: the networks are converted once per session.
NETWORKS = SHARED_CACHE / "static"
LONG_OPENING = "Minutes of the committee meeting. " + "The members discussed the agenda at length. " * 120


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(cache_dir=NETWORKS)


@pytest.fixture(scope="module")
def exact() -> np.ndarray:
    return TextEncoder(backend="torch", precision="fp32").embed(list(OBVIOUS.values()))


def test_openvino_gives_torchs_vectors(exact: np.ndarray, tmp_path, monkeypatch) -> None:
    # OpenVINO is only worth its speed if the vectors stay torch's: the model's training cache is
    # shared between them. bf16 only runs where the CPU has it natively (elsewhere it is slower),
    # and falls back to fp32 when it disagrees (OMP_THREAD_LIMIT=1 set for the whole process).
    texts = list(OBVIOUS.values())
    encoder = TextEncoder(backend="openvino", cache_dir=NETWORKS)
    served = encoder.embed(texts)
    assert np.allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-3)
    assert np.sum(served * exact, axis=1).min() > 0.999
    if not native_bf16():
        assert encoder.precision == "fp32"
    assert encoder.identity == TextEncoder(backend="torch").identity
    # Converted once, without reporting to OpenVINO's telemetry: a second encoder on the same
    # cache reads the saved network
    import openvino_telemetry

    def no_reporting(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("OpenVINO telemetry was started")

    monkeypatch.setattr(openvino_telemetry.Telemetry, "__init__", no_reporting)
    monkeypatch.setattr(openvino_telemetry.Telemetry, "send_event", no_reporting)
    first = TextEncoder(backend="openvino", cache_dir=tmp_path)
    vectors = first.embed(texts[:2])
    saved = list(tmp_path.glob("minilm-ir-*/minilm.xml"))
    assert len(saved) == 1
    again = TextEncoder(backend="openvino", cache_dir=tmp_path)
    assert np.allclose(again.embed(texts[:2]), vectors, atol=1e-5)


def test_onnx_int8_stays_close_to_torch_and_keeps_its_own_cache(exact: np.ndarray, tmp_path) -> None:
    # int8 trades a little agreement (a cosine of 0.992 on average on real documents) for speed
    # on CPUs without bf16; its vectors are not fp32's, so they are cached apart.
    texts = list(OBVIOUS.values())
    first = TextEncoder(backend="onnx", cache_dir=tmp_path)
    served = first.embed(texts)
    assert first.precision == "int8"
    assert np.allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-3)
    cosines = np.sum(served * exact, axis=1)
    assert cosines.min() > 0.97 and cosines.mean() > 0.985
    assert first.identity != TextEncoder(backend="torch").identity
    # Exported once: a second encoder on the same cache reads the saved network, and a text gets
    # the same vector whatever it is read with (activations are quantised per call)
    assert len(list(tmp_path.glob("minilm-onnx-int8-*/minilm.onnx"))) == 1
    again = TextEncoder(backend="onnx", cache_dir=tmp_path)
    assert np.array_equal(again.embed(texts[:1]), served[:1])
    assert np.array_equal(again.embed(texts[::-1])[::-1], served)


def test_a_deployment_asks_for_int8_and_keeps_its_vectors_apart(tmp_path) -> None:
    # HERON_ENCODER_BACKEND=onnx: the runtime's encoder runs int8, and the training cache it fills
    # is not the one fp32 deployments on the same cache directory read
    from core.runtime import open_runtime
    from tests.conftest import make_settings

    cache = tmp_path / "cache"
    int8 = open_runtime(make_settings(tmp_path / "a", cache_dir=cache, encoder_backend="onnx"), prepare=False)
    fp32 = open_runtime(make_settings(tmp_path / "b", cache_dir=cache), prepare=False)
    try:
        assert (int8.encoder.backend, int8.encoder.precision) == ("onnx", "int8")
        assert int8.training_encoder.root.parent == fp32.training_encoder.root.parent
        assert int8.training_encoder.root != fp32.training_encoder.root
    finally:
        int8.close()
        fp32.close()


def test_the_default_backend_follows_the_cpu() -> None:
    # OpenVINO, in bf16 only where the CPU computes it natively; int8 only when asked for
    encoder = TextEncoder()
    assert (encoder.backend, encoder.precision) == ("openvino", "bf16" if native_bf16() else "fp32")


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
