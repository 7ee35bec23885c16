"""The starter model as `heron` fits it, for benchmarks that want the pure fit without a database."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.classify.training import FitResult, TrainingSet, fit_hybrid, origin_group
from core.corpus import LabelledText, read_industries, read_text_corpus, stratified_holdout
from core.services.models import industry_prototypes

ROOT = Path(__file__).resolve().parent.parent


def fit_starter(
    encoder, items: list[LabelledText] | None = None
) -> tuple[FitResult, list[LabelledText], list[LabelledText], list[str]]:  # type: ignore[no-untyped-def]
    """Fit on the starter corpus' training split (or on ``items``); returns the fit, the training
    items, the holdout items and the industries."""
    specs = read_industries(ROOT / "data" / "industries.json")
    industries = [spec.name for spec in specs]
    corpus = read_text_corpus(ROOT / "data" / "starter")
    held = stratified_holdout(corpus)
    train = items if items is not None else [item for item, h in zip(corpus, held, strict=True) if not h]
    holdout = [item for item, h in zip(corpus, held, strict=True) if h]
    texts = [item.text for item in train]
    data = TrainingSet(
        texts=texts,
        labels=[item.label for item in train],
        weights=np.ones(len(train)),
        groups=[origin_group(item.origin, str(i)) for i, item in enumerate(train)],
        embeddings=encoder.embed(texts),
        static=encoder.static(texts),
    )
    prototypes = industry_prototypes(encoder, {spec.name: spec.description for spec in specs})
    return fit_hybrid(data, prototypes, industries=industries), train, holdout, industries
