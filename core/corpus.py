"""Labelled text collections on disk (``<label>/<file>``) and the fixed holdout split."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HOLDOUT_SHARE = 0.2


@dataclass(frozen=True)
class LabelledText:
    label: str
    text: str
    origin: str

    @property
    def content_hash(self) -> str:
        return content_hash(self.text)


@dataclass(frozen=True)
class IndustrySpec:
    name: str
    description: str
    catch_all: bool = False


def readable_name(label: str) -> str:
    """An industry's name as words ("real_estate" → "real estate"): what an import describes it by."""
    return label.replace("_", " ").replace("-", " ")


def content_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).lower().encode()).hexdigest()


def read_text_corpus(root: Path) -> list[LabelledText]:
    """Every ``root/<label>/*.txt`` file as a labelled text, in a stable order."""
    items = []
    for path in sorted(root.glob("*/*.txt")):
        text = path.read_text(encoding="utf-8").strip()
        if text:
            items.append(
                LabelledText(label=path.parent.name, text=text, origin=f"{path.parent.name}/{path.name}")
            )
    return items


def read_industries(path: Path) -> list[IndustrySpec]:
    return [
        IndustrySpec(
            name=entry["name"], description=entry["description"], catch_all=bool(entry.get("catch_all"))
        )
        for entry in json.loads(path.read_text())
    ]


def is_holdout(key: str, share: float = HOLDOUT_SHARE) -> bool:
    """Whether the item named ``key`` belongs to the holdout, decided by the item alone.

    A hash of the key (the file's path, the feedback's id …) puts a fixed ``share`` of items aside
    for good: adding files never moves an existing item between training and holdout, so a model
    can never have trained on an item an earlier report counted as held out.
    """
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return bucket < share


def stratified_holdout(items: Sequence[LabelledText], share: float = HOLDOUT_SHARE) -> list[bool]:
    """Per label, the ``share`` of items whose origin hashes lowest: exact proportions per class.

    Used for the shipped starter corpus, which changes only with a release; once an example is
    stored, its split lives in the database and is never recomputed.
    """
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        by_label[item.label].append(i)
    chosen: set[int] = set()
    for indices in by_label.values():
        ranked = sorted(indices, key=lambda i: hashlib.sha256(items[i].origin.encode()).hexdigest())
        chosen.update(ranked[: round(len(ranked) * share)])
    return [i in chosen for i in range(len(items))]
