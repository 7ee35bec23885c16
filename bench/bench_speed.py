"""Speed of each tier and of the routed pipeline, each beside its baseline measured in the same run.

* fast tier on 300-word texts, one core, vs a plain scikit-learn HashingVectorizer + SGDClassifier
* its tokenising of real documents it never saw (../shared/corpora/industry-real-dev), vs the
  tokenizer alone
* transformer tier (its backend and precision, one digest) vs plain `SentenceTransformer.encode` on
  the same texts, and
  the macro-F1 of the transformer tier on the starter holdout with each set of embeddings
* the whole routed pipeline (default thresholds) in one worker process, and its peak RSS

  .venv/bin/python bench/bench_speed.py
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sklearn.feature_extraction.text import HashingVectorizer  # noqa: E402
from sklearn.linear_model import SGDClassifier  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

from bench.starter import fit_starter  # noqa: E402
from core.classify.encoder import TextEncoder, packaged_model_path  # noqa: E402
from core.classify.model import HeronModel, RoutingPolicy  # noqa: E402
from core.classify.static import StaticEmbedder  # noqa: E402
from core.corpus import read_text_corpus, stratified_holdout  # noqa: E402
from core.embeddings import CachedEncoder  # noqa: E402

CACHE = ROOT / "var" / "cache" / "embeddings"
REAL = ROOT.parent / "shared" / "corpora" / "industry-real-dev"


def rate(fn, n: int, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return n / best


def three_hundred_words(items, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    words = " ".join(item.text for item in items).split()
    return [" ".join(words[(i * 300) % (len(words) - 300) :][:300]) for i in range(n)]


def main() -> None:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    text_encoder = TextEncoder(cache_dir=ROOT / "var" / "cache" / "static")
    encoder = CachedEncoder(text_encoder, CACHE / text_encoder.identity)
    fit, train, holdout, industries = fit_starter(encoder)
    items = read_text_corpus(ROOT / "data" / "starter")
    train_texts = [i.text for i in train]
    model = fit.model
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")

    # 1. Fast tier, one core.
    texts = three_hundred_words(items, 5000)
    vectorizer = HashingVectorizer(n_features=2**18, alternate_sign=False)
    sgd = SGDClassifier(loss="log_loss").fit(vectorizer.transform(train_texts), [i.label for i in train])
    baseline = rate(lambda: sgd.predict_proba(vectorizer.transform(texts)), len(texts))
    ours = rate(lambda: model.fast_logits(texts, text_encoder.static(texts), industries), len(texts))
    print(
        f"fast tier (hashed words + distilled word vectors), 300-word texts: {ours:,.0f} docs/s; "
        f"plain HashingVectorizer+SGD {baseline:,.0f} docs/s; ratio {ours / baseline:.2f}"
    )

    # 1b. The fast tier's tokenising (static vectors) of real documents it never saw, its chunk
    # memory warmed on other documents (the starter corpus, half of industry-real-dev), as a
    # worker's is after a while; beside the tokenizer alone on the same documents.
    if REAL.is_dir():
        real = [item.text for item in read_text_corpus(REAL)]
        seen, unseen = real[0::2], real[1::2]
        statics = StaticEmbedder(cache_dir=ROOT / "var" / "cache" / "static")  # an empty memory
        statics.embed(train_texts + seen)
        pairs = [unseen[i : i + 2] for i in range(0, len(unseen), 2)]  # a worker's usual batch
        started = time.perf_counter()
        for pair in pairs:
            statics.embed(pair)
        memo_ms = (time.perf_counter() - started) * 1000 / len(unseen)
        started = time.perf_counter()
        for pair in pairs:
            statics.tokenizer.encode_batch(pair, add_special_tokens=False)
        tokenizer_ms = (time.perf_counter() - started) * 1000 / len(unseen)
        print(
            f"static vectors of {len(unseen)} unseen real documents (industry-real-dev), in pairs: "
            f"{memo_ms:.2f} ms/doc; the tokenizer alone on them {tokenizer_ms:.2f} ms/doc"
        )

    # 2. Transformer tier vs plain encode, same texts (the holdout: real lengths).
    from sentence_transformers import SentenceTransformer

    plain = SentenceTransformer(str(packaged_model_path()), device="cpu", local_files_only=True)
    docs = [d.text for d in holdout]
    plain.encode(docs[:8], show_progress_bar=False)
    text_encoder.embed(docs[:8])
    plain_rate = rate(lambda: plain.encode(docs, batch_size=32, show_progress_bar=False), len(docs), 2)
    ours_rate = rate(lambda: text_encoder.embed(docs), len(docs), 2)
    fp32 = TextEncoder(precision="fp32", cache_dir=ROOT / "var" / "cache" / "static")
    truth = [d.label for d in holdout]

    def semantic_f1(embeddings: np.ndarray) -> float:
        logits = model.semantic_logits(embeddings, industries)
        return f1_score(truth, [industries[i] for i in logits.argmax(axis=1)], average="macro")

    plain_vectors = plain.encode(docs, normalize_embeddings=True, show_progress_bar=False)
    print(
        f"transformer tier on {len(docs)} holdout documents: {ours_rate:.1f} docs/s "
        f"({text_encoder.backend} {text_encoder.precision}, one 132-token digest of the whole document); "
        f"plain SentenceTransformer.encode {plain_rate:.1f} docs/s (fp32, first 256 tokens); "
        f"speed-up {ours_rate / plain_rate:.2f}x"
    )
    print(
        f"  transformer-tier macro-F1 with: ours {semantic_f1(text_encoder.embed(docs)):.3f}, "
        f"digest in fp32 {semantic_f1(fp32.embed(docs)):.3f}, plain encode {semantic_f1(plain_vectors):.3f}"
    )

    # 3. The routed pipeline as a worker runs it: a fresh process holding only the model and
    # the encoder (no embedding cache), default thresholds, so its peak RSS is a worker's.
    model_file = CACHE.parent / "bench-model.bin"
    model_file.parent.mkdir(parents=True, exist_ok=True)
    model_file.write_bytes(model.to_bytes())
    subprocess.run([sys.executable, __file__, "--worker", str(model_file)], check=True)


def worker(model_file: Path) -> None:
    """Classify never-trained-on documents as a worker would; report docs/s and peak RSS."""
    items = read_text_corpus(ROOT / "data" / "starter")
    unseen = [item.text for item, held in zip(items, stratified_holdout(items), strict=True) if held]
    dev = ROOT.parent / "shared" / "corpora" / "industry-dev"
    if dev.is_dir():
        unseen += [item.text for item in read_text_corpus(dev)]
    docs = (unseen * (1 + 500 // len(unseen)))[:500]
    model = HeronModel.from_bytes(model_file.read_bytes())
    encoder = TextEncoder(cache_dir=ROOT / "var" / "cache" / "static")
    encoder.embed(["warm-up"])
    encoder.static(["warm-up"])
    policy = RoutingPolicy()
    started = time.perf_counter()
    verdicts = []
    for start in range(0, len(docs), 32):
        verdicts += model.classify(docs[start : start + 32], policy, encoder=encoder)
    elapsed = time.perf_counter() - started
    escalated = np.mean([v.escalated for v in verdicts])
    # VmHWM, not ru_maxrss: on Linux a child inherits its parent's ru_maxrss across fork+exec.
    status = Path("/proc/self/status").read_text()
    rss_mb = int(status.split("VmHWM:")[1].split()[0]) / 1024
    print(
        f"pipeline, {len(docs)} never-trained-on documents (starter holdout + industry-dev), "
        f"default routing (escalate < "
        f"{policy.escalation_threshold}), batches of 32: {len(docs) / elapsed:.1f} docs/s, "
        f"{escalated:.0%} escalated; worker peak RSS {rss_mb:.0f} MB"
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(Path(sys.argv[2]))
    else:
        main()
