"""Accuracy of the starter model on documents it never trained on, and how routing trades speed for it.

Trains exactly as `heron` does (starter corpus training split, calibrated on out-of-fold
predictions), then reports macro-F1 / accuracy / ECE / escalation on
  * the starter holdout (a fixed 20% of data/starter, never trained on), and
  * ../shared/corpora/industry-dev (70 documents from another source; skipped when absent),
for the fast tier alone, the transformer tier alone and the hybrid at several escalation
thresholds; plus a learning curve (holdout macro-F1 vs number of training documents).

    .venv/bin/python bench/bench_accuracy.py
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.starter import fit_starter  # noqa: E402
from core.classify.encoder import TextEncoder  # noqa: E402
from core.classify.model import RoutingPolicy  # noqa: E402
from core.corpus import read_text_corpus  # noqa: E402
from core.embeddings import CachedEncoder  # noqa: E402
from core.evaluation import evaluation_report  # noqa: E402

DEV = ROOT.parent / "shared" / "corpora" / "industry-dev"
CACHE = ROOT / "var" / "cache" / "embeddings"


def report(model, texts, labels, policy, encoder, industries):  # type: ignore[no-untyped-def]
    verdicts = model.classify(texts, policy, encoder=encoder, allowed=industries)
    return evaluation_report(
        labels,
        [v.label for v in verdicts],
        [v.confidence for v in verdicts],
        labels=industries,
        escalated=[v.escalated for v in verdicts],
        needs_review=[v.needs_review for v in verdicts],
    )


def line(name: str, r: dict) -> str:
    return (
        f"  {name:<34} macro-F1 {r['macro_f1']:.3f}  acc {r['accuracy']:.3f}  ECE {r['ece']:.3f}  "
        f"escalated {r['escalation_rate']:.0%}  review {r['review_rate']:.0%}"
    )


def main() -> None:
    text_encoder = TextEncoder(cache_dir=ROOT / "var" / "cache" / "static")
    encoder = CachedEncoder(text_encoder, CACHE / text_encoder.identity)
    started = time.perf_counter()
    fit, train, holdout, industries = fit_starter(encoder)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"trained on {len(train)} starter documents in {time.perf_counter() - started:.1f} s "
        f"(temperatures: fast {fit.model.calibration.fast:.2f} (alone {fit.model.calibration.alone:.2f}), "
        f"transformer {fit.model.calibration.semantic:.2f}, combined {fit.model.calibration.combined:.2f})"
    )
    from core.classify.calibration import softmax
    from core.evaluation import routing_curve

    calibration = fit.model.calibration
    fast_oof = softmax(fit.oof_fast / calibration.alone)
    transformer_oof = softmax(
        (fit.oof_fast / calibration.fast + fit.oof_semantic / calibration.semantic) / calibration.combined
    )
    print("routing on genre-held-out predictions of the training split (fast alone, or both combined):")
    for point in routing_curve(fast_oof, transformer_oof, fit.targets):
        print(
            f"  escalate < {point['threshold']:<5} macro-F1 {point['macro_f1']:.3f}  "
            f"acc {point['accuracy']:.3f}  escalated {point['escalation_rate']:.0%}"
        )
    default = RoutingPolicy()
    sets = {"starter holdout": holdout}
    if DEV.is_dir():
        sets["industry-dev"] = read_text_corpus(DEV)
    from sklearn.metrics import f1_score

    from bench.bench_adaptation import Baseline

    baseline = Baseline(ROOT / "var" / "cache" / "bench-chunk-embeddings")
    for name, docs in sets.items():
        texts, labels = [d.text for d in docs], [d.label for d in docs]
        print(f"{name} ({len(docs)} documents, never trained on):")
        predicted, _ = baseline.fit_predict([i.text for i in train], [i.label for i in train], texts)
        print(
            "  plain baseline (LogisticRegression on chunk-averaged MiniLM, same training split) "
            f"macro-F1 {f1_score(labels, predicted, average='macro'):.3f}"
        )
        for label, threshold in (("fast tier alone", 0.0), ("transformer tier alone", 1.01)):
            policy = RoutingPolicy(escalation_threshold=threshold)
            print(line(label, report(fit.model, texts, labels, policy, encoder, industries)))
        for threshold in (0.5, 0.55, 0.6, 0.7, 0.8, 0.9):
            policy = RoutingPolicy(escalation_threshold=threshold)
            tag = " (default)" if threshold == default.escalation_threshold else ""
            print(
                line(
                    f"hybrid, escalate < {threshold}{tag}",
                    report(fit.model, texts, labels, policy, encoder, industries),
                )
            )
    print("learning curve (starter holdout macro-F1, default routing):")
    rng = np.random.default_rng(0)
    for share in (0.1, 0.25, 0.5, 1.0):
        keep = sorted(rng.choice(len(train), max(14, int(share * len(train))), replace=False))
        sub, _, _, _ = fit_starter(encoder, [train[i] for i in keep])
        r = report(
            sub.model, [d.text for d in holdout], [d.label for d in holdout], default, encoder, industries
        )
        print(f"  {len(keep):>4} training documents: macro-F1 {r['macro_f1']:.3f}")


if __name__ == "__main__":
    main()
