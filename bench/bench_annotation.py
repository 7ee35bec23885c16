"""Annotation at the speed of thought: annotator actions vs macro-F1, evidence and label issues.

A simulated annotator who answers truthfully works on ../shared/corpora/industry-real-dev (346 real
documents, 7 industries; not in this repository) through the real use cases, on a copy of a freshly
trained starter database per run. Each split holds out 40% of every industry as the test part
(never uploaded, labelled or trained on: the only documents scored); the rest is the pool, uploaded
and classified (submit_batch + process_job).

  curve      Two ways to spend annotator actions (an action is one submitted decision):
               one-at-a-time  the pool document the active model is least sure of gets its true
                              label (submit_feedback): one action per label;
               more-like-this the same document, and those of its "more like this" list
                              (similar_documents, K=10) the annotator sees are of the same
                              industry, get its label together (submit_feedback_many, as the
                              console's L key does with "Label this document too" on): one
                              action, whatever their number.
             Every 10 actions a reviewer approves what was labelled (decide, 20% of documents
             to the gold set as in production) and the model is updated as the API does
             (train_incremental, then the full run a worker queues once one is due); the pool is
             re-scored. macro-F1 on the test part after 5 to 120
             actions (once the pool is all labelled, later checkpoints repeat the last figure),
             beside the plain baseline (LogisticRegression on chunk-averaged MiniLM embeddings
             of the same starter + approved labels, user labels weighted 5×),
             and the actions more-like-this needs to reach one-at-a-time's F1 at 30, 60 and 120.
  similar    the share of each document's 10 "more like this" that share its industry, beside the
             same neighbour search on the baseline's MiniLM embeddings.
  evidence   test documents classified by the trained model: every passage is checked to be
             ``text[start:end]``; the share of correctly classified documents whose top passage,
             classified alone, gets the same answer, beside a passage taken at random.
  issues     every pool document labelled and approved, 10% of the labels flipped to another
             industry; a full training run (train_full) lists label issues; the share of flipped
             labels among the first 20 (and recall), beside confident learning on the baseline's
             cross-validated probabilities (5-fold LogisticRegression on the same examples).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_annotation.py [--seeds 3] [--only curve,issues]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HERON_CACHE_DIR", str(ROOT / "var" / "cache"))

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import cross_val_predict  # noqa: E402

from bench.bench_adaptation import (  # noqa: E402
    Baseline,
    Doc,
    classify,
    f1,
    follow_up,
    heron,
    mean_sd,
    read_real,
    starter_template,
    trained_examples,
    upload,
)
from core.classify.evidence import passage_spans  # noqa: E402
from core.classify.label_issues import find_label_issues  # noqa: E402
from core.db.tables import ExampleSource  # noqa: E402
from core.runtime import Runtime  # noqa: E402
from core.services.examples import list_examples  # noqa: E402
from core.services.feedback import decide, list_feedback, submit_feedback, submit_feedback_many  # noqa: E402
from core.services.jobs import job_text  # noqa: E402
from core.services.review import label_issue_queue  # noqa: E402
from core.services.similar import similar_documents  # noqa: E402
from core.services.training import USER_WEIGHT, train_full, train_incremental  # noqa: E402

CHECKPOINTS = (5, 10, 15, 20, 30, 40, 60, 90, 120)
ROUND = 10  # actions between approvals and model updates
SIMILAR_K = 10
FLIP_SHARE = 0.1
STRATEGIES = ("one-at-a-time", "more-like-this")


def split(docs: list[Doc], seed: int, test_share: float = 0.4) -> tuple[list[Doc], list[Doc]]:
    rng = np.random.default_rng(seed)
    pool, test = [], []
    for label in sorted({d.label for d in docs}):
        members = [d for d in docs if d.label == label]
        order = rng.permutation(len(members))
        cut = round(len(members) * test_share)
        test += [members[i] for i in order[:cut]]
        pool += [members[i] for i in order[cut:]]
    return pool, test


class Session:
    """One annotator's session on one Heron: labels, approvals, updates and scores."""

    def __init__(self, runtime: Runtime, pool: list[Doc], test: list[Doc], baseline: Baseline) -> None:
        self.runtime = runtime
        self.pool = pool
        self.test = test
        self.baseline = baseline
        self.answers = upload(runtime, [(d.key, d.path.read_bytes()) for d in pool])
        self.by_job = {self.answers[d.key].job_id: d for d in pool}
        self.labelled: set[str] = set()  # job ids
        self.pending: list[int] = []
        self.actions = 0
        self.refused = 0
        self.uncertainty = {d.key: 1.0 - self.answers[d.key].confidence for d in pool}

    def most_uncertain(self) -> Doc | None:
        left = [d for d in self.pool if self.answers[d.key].job_id not in self.labelled]
        return max(left, key=lambda d: (self.uncertainty[d.key], d.key)) if left else None

    def label(self, docs: Sequence[Doc], label: str) -> None:
        ids = [self.answers[d.key].job_id for d in docs]
        if len(ids) == 1:
            self.pending.append(
                submit_feedback(engine=self.runtime.engine, job_id=ids[0], label=label, author="annotator").id
            )
        else:
            made = submit_feedback_many(
                engine=self.runtime.engine, job_ids=ids, label=label, author="annotator"
            )
            self.pending += [row.id for row in made]
        self.labelled.update(ids)
        self.actions += 1

    def update(self) -> None:
        """A reviewer approves what is pending; the model updates; the pool is re-scored."""
        if not self.pending:
            return
        decide(engine=self.runtime.engine, feedback_ids=self.pending, approve=True, reviewer="reviewer")
        self.pending = []
        outcome = train_incremental(
            engine=self.runtime.engine,
            policy=self.runtime.policy,
            encoder=self.runtime.training_encoder,
            actor="reviewer",
        )
        self.refused += not outcome.activated
        follow_up(self.runtime)
        verdicts = classify(self.runtime, [d.text for d in self.pool])
        self.uncertainty = {d.key: 1.0 - v.confidence for d, v in zip(self.pool, verdicts, strict=True)}

    def scores(self) -> tuple[float, float, int]:
        """Heron's and the baseline's test macro-F1, and how many labels were approved so far."""
        truth = [d.label for d in self.test]
        ours = f1(truth, [v.label for v in classify(self.runtime, [d.text for d in self.test])])
        texts, labels, sources = trained_examples(
            self.runtime, [ExampleSource.starter, ExampleSource.feedback]
        )
        weights = [USER_WEIGHT if s == ExampleSource.feedback else 1.0 for s in sources]
        theirs = f1(
            truth, self.baseline.fit_predict(texts, labels, [d.text for d in self.test], weights=weights)[0]
        )
        approved = list_feedback(engine=self.runtime.engine, status="approved", limit=1)[1]
        return ours, theirs, approved


def run_curve(session: Session, strategy: str) -> dict[int, tuple[float, float, int]]:
    points: dict[int, tuple[float, float, int]] = {}
    next_update = ROUND
    while session.actions < max(CHECKPOINTS):
        doc = session.most_uncertain()
        if doc is None:
            break
        if strategy == "more-like-this":
            # The console's L: the document in front of the annotator and the ticked ones it lists.
            found = similar_documents(
                engine=session.runtime.engine, job_id=session.answers[doc.key].job_id, limit=SIMILAR_K
            )
            same = [
                session.by_job[item.job_id]
                for item in found
                if session.by_job[item.job_id].label == doc.label
            ]
            session.label([doc, *same], doc.label)
        else:
            session.label([doc], doc.label)
        if session.actions >= next_update:
            session.update()
            next_update = session.actions + ROUND
        for checkpoint in CHECKPOINTS:
            if checkpoint not in points and session.actions >= checkpoint:
                session.update()
                points[checkpoint] = session.scores()
    # The pool ran out (every document labelled): more actions would change nothing.
    session.update()
    last = session.scores()
    for checkpoint in CHECKPOINTS:
        points.setdefault(checkpoint, last)
    if session.actions < max(CHECKPOINTS):
        print(f"    {strategy}: every pool document labelled after {session.actions} actions")
    return points


def curve(template: Path, workdir: Path, docs: list[Doc], baseline: Baseline, seeds: int) -> None:
    print(
        f"\n== actions vs macro-F1 on held-out documents ({seeds} splits, 40% of each industry held out) =="
    )
    results: dict[str, dict[int, list[tuple[float, float, int]]]] = {
        s: {c: [] for c in CHECKPOINTS} for s in STRATEGIES
    }
    seconds: dict[str, float] = dict.fromkeys(STRATEGIES, 0.0)
    refused: dict[str, int] = dict.fromkeys(STRATEGIES, 0)
    for seed in range(seeds):
        pool, test = split(docs, seed)
        for strategy in STRATEGIES:
            started = time.perf_counter()
            with heron(template, workdir, f"curve-{seed}-{strategy}") as runtime:
                session = Session(runtime, pool, test, baseline)
                points = run_curve(session, strategy)
                refused[strategy] += session.refused
            seconds[strategy] += time.perf_counter() - started
            for checkpoint, point in points.items():
                results[strategy][checkpoint].append(point)
            print(
                f"  split {seed} {strategy:<15}"
                + "  ".join(f"{c}: {p[0]:.3f}/{p[1]:.3f} ({p[2]} labels)" for c, p in sorted(points.items()))
            )
    print(f"  pool {len(pool)} documents, test {len(test)}; Heron / baseline macro-F1; mean ± sd over splits")
    print(
        f"  {'actions':>8} | {'one-at-a-time: Heron':>22} {'baseline':>15} {'labels':>7} | "
        f"{'more-like-this: Heron':>22} {'baseline':>15} {'labels':>7}"
    )
    for checkpoint in CHECKPOINTS:
        row = [f"  {checkpoint:>8}"]
        for strategy in STRATEGIES:
            points = results[strategy][checkpoint]
            row.append(
                f"| {mean_sd([p[0] for p in points]):>22} {mean_sd([p[1] for p in points]):>15} "
                f"{np.mean([p[2] for p in points]):>7.0f} "
            )
        print("".join(row))
    for target in (30, 60, 120):
        goal = float(np.mean([p[0] for p in results["one-at-a-time"][target]]))
        reached = [c for c in CHECKPOINTS if np.mean([p[0] for p in results["more-like-this"][c]]) >= goal]
        needed = f"{min(reached)} actions" if reached else f"more than {max(CHECKPOINTS)} actions"
        verdict = "at most half" if reached and min(reached) <= target / 2 else "MORE THAN HALF"
        print(
            f"  one-at-a-time's F1 after {target} actions ({goal:.3f}): "
            f"more-like-this reaches it in {needed} ({verdict})"
        )
    print(
        "  seconds per session (upload, labels, updates, scoring): "
        + ", ".join(f"{s} {seconds[s] / seeds:.0f}" for s in STRATEGIES)
        + "; candidates refused by the promotion gate: "
        + ", ".join(f"{s} {refused[s]}" for s in STRATEGIES)
    )


def similar_and_evidence(template: Path, workdir: Path, docs: list[Doc], baseline: Baseline) -> None:
    print("\n== more like this and evidence (split 0, model after the pool's labels are approved) ==")
    pool, test = split(docs, 0)
    with heron(template, workdir, "similar") as runtime:
        session = Session(runtime, pool, test, baseline)
        precision = []
        for doc in pool:
            found = similar_documents(
                engine=runtime.engine, job_id=session.answers[doc.key].job_id, limit=SIMILAR_K
            )
            precision.append(np.mean([session.by_job[item.job_id].label == doc.label for item in found]))
        vectors = baseline.vectors([d.text for d in pool])
        similarity = vectors @ vectors.T
        np.fill_diagonal(similarity, -np.inf)
        theirs = [
            np.mean([pool[j].label == pool[i].label for j in np.argsort(-similarity[i])[:SIMILAR_K]])
            for i in range(len(pool))
        ]
        print(
            f"  same industry among the {SIMILAR_K} most similar ({len(pool)} pool documents): "
            f"Heron (static vectors + answers, as stored) {np.mean(precision):.3f}   "
            f"baseline (chunk-averaged MiniLM) {np.mean(theirs):.3f}"
        )
        # Evidence on documents Heron classifies as a worker does (uploaded test documents).
        for doc in pool:
            session.label([doc], doc.label)
        session.update()
        answers = upload(runtime, [(d.key, d.path.read_bytes()) for d in test])
        spans_ok = checked = correct = same = same_random = 0
        rng = np.random.default_rng(0)
        tops, randoms, expected = [], [], []
        for doc in test:
            answer = answers[doc.key]
            text = job_text(engine=runtime.engine, job_id=answer.job_id)
            for passage in text.evidence:
                checked += 1
                spans_ok += passage["text"] == text.text[passage["start"] : passage["end"]]
            if answer.label != doc.label or not text.evidence:
                continue
            correct += 1
            tops.append(text.evidence[0]["text"])
            spans = passage_spans(text.text)
            start, end = spans[int(rng.integers(len(spans)))]
            randoms.append(text.text[start:end])
            expected.append(answer.label)
        if correct:
            same = sum(v.label == e for v, e in zip(classify(runtime, tops), expected, strict=True))
            same_random = sum(v.label == e for v, e in zip(classify(runtime, randoms), expected, strict=True))
        print(f"  evidence passages that are text[start:end]: {spans_ok} of {checked}")
        print(
            f"  correctly classified test documents whose top passage alone gets the same answer: "
            f"{same}/{correct} = {same / max(correct, 1):.3f}   (a random passage of the same documents: "
            f"{same_random / max(correct, 1):.3f})"
        )


def issues(template: Path, workdir: Path, docs: list[Doc], baseline: Baseline, seeds: int) -> None:
    print(
        f"\n== label issues: every pool label approved, {FLIP_SHARE:.0%} flipped, "
        f"full retrain ({seeds} splits) =="
    )
    labels = sorted({d.label for d in docs})
    ours, theirs, recall = [], [], []
    for seed in range(seeds):
        pool, _ = split(docs, seed)
        rng = np.random.default_rng(100 + seed)
        flipped = set(rng.choice(len(pool), size=round(FLIP_SHARE * len(pool)), replace=False).tolist())
        given = {
            d.key: (str(rng.choice([x for x in labels if x != d.label])) if i in flipped else d.label)
            for i, d in enumerate(pool)
        }
        with heron(template, workdir, f"issues-{seed}") as runtime:
            session = Session(runtime, pool, [], baseline)
            for doc in pool:
                session.label([doc], given[doc.key])
            decide(engine=runtime.engine, feedback_ids=session.pending, approve=True, reviewer="reviewer")
            train_full(
                engine=runtime.engine, policy=runtime.policy, encoder=runtime.training_encoder, actor="bench"
            )
            found, total = label_issue_queue(engine=runtime.engine, limit=1000)
            by_text = {d.text: d for d in pool}
            rows = list_examples(engine=runtime.engine, source="feedback", limit=1000)[0]
            texts = {e.id: e.text for e in rows}
            trained = {e.text for e in rows if e.split == "train"}
            wrong = [by_text[texts[i.example_id]].label != i.label for i in found]
            trained_flipped = sum(given[d.key] != d.label for d in pool if d.text in trained)
            ours.append(float(np.mean(wrong[:20])) if wrong else 0.0)
            recall.append(sum(wrong) / max(trained_flipped, 1))
            # Baseline: confident learning on 5-fold LogisticRegression probabilities of the same examples.
            example_texts, example_labels, sources = trained_examples(
                runtime, [ExampleSource.starter, ExampleSource.feedback]
            )
            x = baseline.vectors(example_texts)
            weights = np.array([USER_WEIGHT if s == ExampleSource.feedback else 1.0 for s in sources])
            probabilities = cross_val_predict(
                LogisticRegression(C=1.0, max_iter=5000),
                x,
                example_labels,
                cv=5,
                method="predict_proba",
                params={"sample_weight": weights},
            )
            classes = sorted(set(example_labels))
            targets = np.array([classes.index(label) for label in example_labels])
            user = [i for i, s in enumerate(sources) if s == ExampleSource.feedback]
            candidates = [
                issue for issue in find_label_issues(probabilities, targets) if issue.index in set(user)
            ]
            theirs.append(
                float(
                    np.mean(
                        [
                            by_text[example_texts[c.index]].label != example_labels[c.index]
                            for c in candidates[:20]
                        ]
                    )
                )
                if candidates
                else 0.0
            )
        print(
            f"  split {seed}: {len(flipped)} flipped of {len(pool)} "
            f"({trained_flipped} in the training split); issues listed {total}; "
            f"flipped among the first 20: Heron {ours[-1]:.2f}, baseline {theirs[-1]:.2f}; "
            f"recall {recall[-1]:.2f}"
        )
    print(
        f"  flipped among the first 20 label issues: Heron {mean_sd(ours)}   baseline {mean_sd(theirs)}   "
        f"(Heron's recall of flipped training labels {mean_sd(recall)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", default="curve,similar,issues")
    args = parser.parse_args()
    only = set(args.only.split(","))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    docs = read_real()
    baseline = Baseline(ROOT / "var" / "cache" / "baseline")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        template = starter_template(workdir)
        if "similar" in only:
            similar_and_evidence(template, workdir, docs, baseline)
        if "issues" in only:
            issues(template, workdir, docs, baseline, args.seeds)
        if "curve" in only:
            curve(template, workdir, docs, baseline, args.seeds)


if __name__ == "__main__":
    main()
