"""How annotators agree with each other and with the gold documents.

- Agreement: Cohen's kappa for each pair of annotators over the documents both labelled (each
  annotator's latest label per document, whatever a reviewer later decided: it is what they said).
- Accuracy on gold: the share of an annotator's labels that match a gold document's approved label
  (gold: the approved corrections set aside to judge models, core.services.feedback). The label
  that made a document gold is not counted for its own author.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from sqlalchemy import Engine
from sqlmodel import select

from core.db import session_scope
from core.db.tables import ExampleStatus, Feedback, Job, Split, TrainingExample


@dataclass(frozen=True)
class AnnotatorView:
    name: str
    labels: int
    documents: int
    gold_n: int
    gold_accuracy: float | None


@dataclass(frozen=True)
class AgreementView:
    annotator_a: str
    annotator_b: str
    documents: int
    agreement: float
    kappa: float | None


@dataclass(frozen=True)
class AnnotatorsReport:
    annotators: list[AnnotatorView]
    agreement: list[AgreementView]


def annotator_report(*, engine: Engine) -> AnnotatorsReport:
    with session_scope(engine) as session:
        said = session.exec(
            select(Feedback.id, Feedback.author, Job.document_id, Feedback.label)
            .join(Job, Job.id == Feedback.job_id)
            .where(Feedback.author.is_not(None))
            .order_by(Feedback.id)
        ).all()
        gold_rows = session.exec(  # with the author of the correction that made it gold
            select(TrainingExample.document_id, TrainingExample.label, Feedback.author)
            .join(Feedback, Feedback.id == TrainingExample.feedback_id, isouter=True)
            .where(
                TrainingExample.split == Split.holdout,
                TrainingExample.status == ExampleStatus.approved,
                TrainingExample.document_id.is_not(None),
            )
        ).all()
    labels: dict[str, dict[int, tuple[int, str]]] = {}  # author -> document -> (feedback id, label)
    counts: dict[str, int] = {}
    for feedback_id, author, document_id, label in said:
        labels.setdefault(author, {})[document_id] = (feedback_id, label)
        counts[author] = counts.get(author, 0) + 1
    gold = {document_id: (label, made_by) for document_id, label, made_by in gold_rows}
    annotators = []
    for author in sorted(labels):
        scored = [
            label == gold[document_id][0]
            for document_id, (_, label) in labels[author].items()
            # Not the document whose gold label the annotator gave: that is no test of them,
            # however often they say it again.
            if document_id in gold and gold[document_id][1] != author
        ]
        annotators.append(
            AnnotatorView(
                name=author,
                labels=counts[author],
                documents=len(labels[author]),
                gold_n=len(scored),
                gold_accuracy=round(sum(scored) / len(scored), 4) if scored else None,
            )
        )
    agreement = []
    for a, b in combinations(sorted(labels), 2):
        shared = sorted(set(labels[a]) & set(labels[b]))
        if not shared:
            continue
        pairs = [(labels[a][d][1], labels[b][d][1]) for d in shared]
        observed, kappa = cohen_kappa(pairs)
        agreement.append(
            AgreementView(
                annotator_a=a,
                annotator_b=b,
                documents=len(shared),
                agreement=round(observed, 4),
                kappa=None if kappa is None else round(kappa, 4),
            )
        )
    return AnnotatorsReport(annotators=annotators, agreement=agreement)


def cohen_kappa(pairs: list[tuple[str, str]]) -> tuple[float, float | None]:
    """Observed agreement and Cohen's kappa of two raters' labels for the same items.

    Kappa is None when chance agreement is already perfect (both gave one and the same label to
    everything): agreement beyond chance is then undefined.
    """
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first: dict[str, int] = {}
    second: dict[str, int] = {}
    for a, b in pairs:
        first[a] = first.get(a, 0) + 1
        second[b] = second.get(b, 0) + 1
    chance = sum(first[label] * second.get(label, 0) for label in first) / (n * n)
    if chance >= 1.0:
        return observed, None
    return observed, (observed - chance) / (1.0 - chance)
