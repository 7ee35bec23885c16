"""Human-in-the-loop learning curve: industry-dev macro-F1 after N approved corrections per industry.

For each of ``--seeds`` deterministic splits, ../shared/corpora/industry-dev (70 documents from
another source, 10 per industry) is split per industry into a pool (documents people would label)
and a test part (never uploaded, labelled or trained on: the only documents scored). Every run
starts from a copy of one starter-model database in a fresh data dir and goes through the real use
cases in process: the pool is uploaded and classified (submit_batch + process_job); then for
N = 1, 2, 3, 4 (cumulative) people label pool documents until N per industry are approved
(submit_feedback with the true label, decide(approve=True)) and the model is updated
(train_incremental, as the API does after an approval). Two ways of choosing what to label:

  * uncertainty: the pool documents the active model is least sure about (least_confidence over
    its scores, re-scored every round), at most N per industry in total (the annotator sees the
    true label, so capping by it is fair);
  * random: random pool documents, the same counts per industry.

Every point scores the candidate that round trained, whether or not the promotion gate activated
it; the tables say how many were promoted. In production a fixed 20% of approved documents (by
hash) goes to the gold set and never trains, so N counts approved corrections and the trained
examples behind each point are printed next to it. Because that makes the trained counts uneven,
every split is also run with decide(gold_share=0), where every approval trains. On the first
``--full-seeds`` splits the production runs end with a full retrain (train_full) on the same labels.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_learning_curve.py [--seeds 10] [--full-seeds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binomtest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Embeddings are a pure function of the text: share the cache bench_loop and bench_accuracy fill.
os.environ.setdefault("HERON_CACHE_DIR", str(ROOT / "var" / "cache"))

from sqlmodel import func, select  # noqa: E402

from core.classify.model import HeronModel  # noqa: E402
from core.corpus import read_text_corpus  # noqa: E402
from core.db import session_scope  # noqa: E402
from core.db.tables import ExampleSource, ModelVersion, TrainingExample  # noqa: E402
from core.errors import Invalid  # noqa: E402
from core.evaluation import evaluation_report  # noqa: E402
from core.extract import extract  # noqa: E402
from core.runtime import Runtime, open_runtime  # noqa: E402
from core.services.datasets import labelled_files  # noqa: E402
from core.services.documents import submit_batch  # noqa: E402
from core.services.feedback import decide, submit_feedback  # noqa: E402
from core.services.industries import active_industry_names  # noqa: E402
from core.services.jobs import process_job  # noqa: E402
from core.services.models import ModelCache  # noqa: E402
from core.services.training import TrainingOutcome, train_full, train_incremental  # noqa: E402
from core.settings import Settings, load_settings  # noqa: E402
from core.uncertainty import uncertainty  # noqa: E402

DEV = ROOT.parent / "shared" / "corpora" / "industry-dev"
SCHEDULE = (1, 2, 3, 4)
STRATEGIES = ("uncertainty", "random")


@dataclass(frozen=True)
class DevDocument:
    path: Path
    label: str
    text: str


@dataclass(frozen=True)
class Point:
    """One model scored on the test part, and what it was trained from."""

    approved: int  # approved corrections per industry (N)
    macro_f1: float
    accuracy: float
    trained: int  # approved examples in the training split, all industries
    gold: int  # approved examples the gate judges on and nothing trains on
    promoted: bool | None  # None: the starter model, or no new training example this round
    seconds: float


def load_dev() -> list[DevDocument]:
    """industry-dev as Heron reads it: every file, its folder as the label, text from core.extract."""
    return [
        DevDocument(path=item.path, label=item.label, text=extract(item.path, filename=item.path.name).text)
        for item in labelled_files(DEV)
    ]


def split(
    documents: list[DevDocument], seed: int, pool_size: int
) -> tuple[list[DevDocument], list[DevDocument]]:
    """Per industry, ``pool_size`` random documents for people to label; the rest is the test part."""
    rng = np.random.default_rng(seed)
    pool, test = [], []
    for label in sorted({d.label for d in documents}):
        members = [d for d in documents if d.label == label]
        order = rng.permutation(len(members))
        pool += [members[i] for i in order[:pool_size]]
        test += [members[i] for i in order[pool_size:]]
    return pool, test


def settings_for(data_dir: Path) -> Settings:
    return load_settings(data_dir=data_dir, database_url="", broker_url="")


def starter_template(workdir: Path) -> Path:
    """Migrate a database and train the starter model once; every run starts from a copy of it."""
    runtime = open_runtime(settings_for(workdir / "template"))
    runtime.close()
    return workdir / "template" / "heron.db"


def fresh_runtime(template: Path, data_dir: Path) -> Runtime:
    data_dir.mkdir(parents=True)
    # SQLite's backup API: a consistent copy whatever the WAL holds.
    with (
        closing(sqlite3.connect(template)) as source,
        closing(sqlite3.connect(data_dir / "heron.db")) as target,
    ):
        source.backup(target)
    return open_runtime(settings_for(data_dir))


def score(model: HeronModel, runtime: Runtime, documents: Sequence[DevDocument]) -> dict[str, Any]:
    """Classify exactly as production does (the configured routing, active industries) and score."""
    with session_scope(runtime.engine) as session:
        allowed = active_industry_names(session)
    verdicts = model.classify(
        [d.text for d in documents], runtime.policy, encoder=runtime.training_encoder, allowed=allowed
    )
    return evaluation_report(
        [d.label for d in documents],
        [v.label for v in verdicts],
        [v.confidence for v in verdicts],
        labels=allowed,
    )


def stored_model(runtime: Runtime, version_id: int) -> HeronModel:
    with session_scope(runtime.engine) as session:
        return HeronModel.from_bytes(session.get(ModelVersion, version_id).artifact)


def feedback_examples(runtime: Runtime) -> Counter[str]:
    """Approved corrections stored as examples, by split (train / holdout = the gold set)."""
    with session_scope(runtime.engine) as session:
        rows = session.exec(
            select(TrainingExample.split, func.count())
            .where(TrainingExample.source == ExampleSource.feedback)
            .group_by(TrainingExample.split)
        ).all()
    return Counter({str(split_name): int(count) for split_name, count in rows})


def upload(runtime: Runtime, models: ModelCache, documents: Sequence[DevDocument]) -> dict[Path, str]:
    """Upload and classify each document as the API and a worker would; returns job ids by path."""
    settings = runtime.settings
    jobs = {}
    for document in documents:
        job = submit_batch(
            engine=runtime.engine,
            blobs=runtime.blobs,
            chunks=[document.path.read_bytes()],
            filename=document.path.name,
            max_bytes=settings.max_upload_bytes,
            submitted_by="bench",
            limits=runtime.extraction_limits,
        ).jobs[0]
        process_job(
            engine=runtime.engine,
            blobs=runtime.blobs,
            models=models,
            job_id=job.id,
            policy=runtime.policy,
            lease_seconds=settings.job_lease_seconds,
            max_attempts=settings.max_attempts,
            limits=runtime.extraction_limits,
        )
        jobs[document.path] = job.id
    return jobs


def choose(
    strategy: str,
    unlabelled: list[DevDocument],
    wanted: dict[str, int],
    runtime: Runtime,
    models: ModelCache,
) -> list[DevDocument]:
    """The next documents people label: ``wanted[label]`` more of each industry.

    ``unlabelled`` is in a random order fixed per run, which is the random strategy's order and
    the uncertainty strategy's tie-break.
    """
    ranked = unlabelled
    if strategy == "uncertainty":
        _, model = models.active(runtime.engine)
        with session_scope(runtime.engine) as session:
            allowed = active_industry_names(session)
        verdicts = model.classify(
            [d.text for d in unlabelled], runtime.policy, encoder=models.encoder, allowed=allowed
        )
        doubt = [uncertainty(v.scores, "least_confidence") for v in verdicts]
        ranked = [unlabelled[i] for i in sorted(range(len(unlabelled)), key=lambda i: -doubt[i])]
    chosen, taken = [], Counter[str]()
    for document in ranked:
        if taken[document.label] < wanted.get(document.label, 0):
            chosen.append(document)
            taken[document.label] += 1
    return chosen


def run_loop(
    runtime: Runtime,
    pool: list[DevDocument],
    test: list[DevDocument],
    *,
    strategy: str,
    seed: int,
    gold: bool,
    full: bool,
) -> tuple[list[Point], Point | None]:
    """Starter model, then one labelling round per N; optionally a full retrain on the final labels."""
    # The serving cache re-reads the active version on every call (a promotion shows at once), and
    # shares the embedding cache: the vectors are the ones TextEncoder would compute.
    models = ModelCache(runtime.training_encoder, refresh_seconds=0.0)
    jobs = upload(runtime, models, pool)
    _, starter = models.active(runtime.engine)
    first = score(starter, runtime, test)
    points = [Point(0, first["macro_f1"], first["accuracy"], 0, 0, None, 0.0)]
    unlabelled = [pool[i] for i in np.random.default_rng([seed, 1]).permutation(len(pool))]
    labelled: Counter[str] = Counter()
    last = starter
    # Without ``gold`` every approval trains (decide's gold_share=0); the API uses the default.
    gold_share = {} if gold else {"gold_share": 0.0}
    for n in SCHEDULE:
        wanted = {label: n - labelled[label] for label in {d.label for d in pool}}
        chosen = choose(strategy, unlabelled, wanted, runtime, models)
        feedback_ids = [
            submit_feedback(engine=runtime.engine, job_id=jobs[d.path], label=d.label, author="annotator").id
            for d in chosen
        ]
        decide(
            engine=runtime.engine, feedback_ids=feedback_ids, approve=True, reviewer="reviewer", **gold_share
        )
        labelled.update(d.label for d in chosen)
        unlabelled = [d for d in unlabelled if d not in chosen]
        try:
            outcome: TrainingOutcome | None = train_incremental(
                engine=runtime.engine,
                policy=runtime.policy,
                encoder=runtime.training_encoder,
                actor="reviewer",
            )
        except Invalid:  # every document of this round went to the gold set: nothing new to learn
            outcome = None
        if outcome is not None:
            last = stored_model(runtime, outcome.version_id)
        report = score(last, runtime, test)
        examples = feedback_examples(runtime)
        points.append(
            Point(
                n,
                report["macro_f1"],
                report["accuracy"],
                examples["train"],
                examples["holdout"],
                outcome.activated if outcome else None,
                outcome.seconds if outcome else 0.0,
            )
        )
    if not full:
        return points, None
    outcome = train_full(
        engine=runtime.engine, policy=runtime.policy, encoder=runtime.training_encoder, actor="reviewer"
    )
    report = score(stored_model(runtime, outcome.version_id), runtime, test)
    final = points[-1]
    return points, replace(
        final,
        macro_f1=report["macro_f1"],
        accuracy=report["accuracy"],
        promoted=outcome.activated,
        seconds=outcome.seconds,
    )


def mean_sd(values: Sequence[float]) -> str:
    array = np.asarray(values, dtype=float)
    sd = array.std(ddof=1) if len(array) > 1 else 0.0
    return f"{array.mean():.3f} ± {sd:.3f}"


def standard_error(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def table_row(name: str, points: Sequence[Point], starters: Sequence[Point], industries: int) -> str:
    """Mean ± sd over seeds, and the change from the starter model on the same split (± standard error)."""
    change = np.array([p.macro_f1 - s.macro_f1 for p, s in zip(points, starters, strict=True)])
    if points[0].approved == 0:
        gate, versus = "—", "—"
    else:
        decided = [p.promoted for p in points if p.promoted is not None]
        gate = f"{sum(decided)}/{len(decided)}"
        if len(decided) < len(points):
            gate += f" ({len(points) - len(decided)} rounds had nothing new to train)"
        versus = f"{change.mean():+.3f} ± {standard_error(change):.3f}"
    trained = np.mean([p.trained for p in points]) / industries
    f1, accuracy = mean_sd([p.macro_f1 for p in points]), mean_sd([p.accuracy for p in points])
    gold = np.mean([p.gold for p in points])
    return f"  {name:<24} {f1:>13}  {versus:>14}  {accuracy:>13}  {trained:>12.2f}  {gold:>5.1f}  {gate}"


def print_curve(
    title: str, curves: dict[str, list[list[Point]]], fulls: dict[str, list[Point]], industries: int
) -> None:
    print(f"\n{title}")
    columns = (
        f"{'macro-F1':>13}  {'vs starter':>14}  {'accuracy':>13}  {'trained/ind.':>12}  {'gold':>5}  promoted"
    )
    print(f"  {'N per industry':<24} {columns}")
    starters = [curve[0] for curve in curves[STRATEGIES[0]]]
    print(table_row("0  starter model", starters, starters, industries))
    for step, n in enumerate(SCHEDULE, start=1):
        for strategy in STRATEGIES:
            points = [curve[step] for curve in curves[strategy]]
            print(table_row(f"{n}  {strategy}", points, starters, industries))
    for strategy in STRATEGIES:
        if fulls[strategy]:
            seeds = len(fulls[strategy])
            incremental = [curve[-1] for curve in curves[strategy][:seeds]]
            print(table_row(f"{SCHEDULE[-1]}  {strategy}, incr.*", incremental, starters[:seeds], industries))
            print(
                table_row(f"{SCHEDULE[-1]}  {strategy}, full*", fulls[strategy], starters[:seeds], industries)
            )
    if any(fulls.values()):
        seeds = len(fulls[STRATEGIES[0]])
        print(
            f"  * first {seeds} seeds only: train_incremental vs train_full on the same labels "
            f"(N={SCHEDULE[-1]})"
        )
    print("  paired difference uncertainty − random in macro-F1 (same split, same starter model):")
    for step, n in enumerate(SCHEDULE, start=1):
        diffs = np.array(
            [
                u[step].macro_f1 - r[step].macro_f1
                for u, r in zip(curves["uncertainty"], curves["random"], strict=True)
            ]
        )
        ahead, behind = int((diffs > 0).sum()), int((diffs < 0).sum())
        error = standard_error(diffs)
        sign = binomtest(ahead, ahead + behind).pvalue if ahead + behind else 1.0
        print(
            f"    N={n}: {diffs.mean():+.3f} (standard error {error:.3f}); uncertainty ahead in {ahead}, "
            f"behind in {behind}, tied in {len(diffs) - ahead - behind} of {len(diffs)} seeds "
            f"(sign test p={sign:.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="repeated splits (default 10)")
    parser.add_argument("--pool", type=int, default=5, help="pool documents per industry (default 5)")
    parser.add_argument(
        "--full-seeds", type=int, default=3, help="seeds that also get a full retrain (default 3; 0: none)"
    )
    args = parser.parse_args()
    if not DEV.is_dir():
        print(f"{DEV} is absent; nothing to measure.")
        return
    if args.pool < max(SCHEDULE):
        parser.error(f"--pool must be at least {max(SCHEDULE)} (the largest N)")
    import torch

    started = time.perf_counter()
    documents = load_dev()
    industries = sorted({d.label for d in documents})
    test_size = len(documents) - args.pool * len(industries)
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    print(
        f"industry-dev: {len(documents)} documents, {len(industries)} industries; per seed and industry "
        f"{args.pool} go to the pool and the rest to the test part (pool {args.pool * len(industries)}, "
        f"test {test_size} documents)"
    )
    print(
        f"{args.seeds} seeds × {len(STRATEGIES)} strategies × 2 gold settings; N = "
        f"{', '.join(map(str, SCHEDULE))} approved corrections per industry (cumulative), "
        "one train_incremental per N"
    )
    variants = {True: "production", False: "every approval trains"}
    curves = {gold: {strategy: [] for strategy in STRATEGIES} for gold in variants}
    fulls: dict[str, list[Point]] = {strategy: [] for strategy in STRATEGIES}
    with tempfile.TemporaryDirectory(prefix="heron-curve-") as scratch:
        workdir = Path(scratch)
        clock = time.perf_counter()
        template = starter_template(workdir)
        print(
            f"starter model trained once in {time.perf_counter() - clock:.1f} s; each run starts from a copy"
        )
        check = fresh_runtime(template, workdir / "check")
        # Embed industry-dev and the whole starter corpus once, up front. Otherwise each run's first
        # cache miss (the gate re-scores starter holdout documents whenever a candidate escalates a
        # new one) loads MiniLM again, as every runtime has its own TextEncoder, and the retrain
        # seconds below would measure that.
        clock = time.perf_counter()
        starter_texts = [item.text for item in read_text_corpus(check.settings.starter_dir / "starter")]
        check.training_encoder.embed([d.text for d in documents] + starter_texts)
        print(
            f"embeddings of industry-dev and the starter corpus ready in {time.perf_counter() - clock:.1f} s"
        )
        _, starter = ModelCache(check.training_encoder).active(check.engine)
        everything = score(starter, check, documents)
        check.close()
        print(
            f"starter model on all {len(documents)} industry-dev documents: macro-F1 "
            f"{everything['macro_f1']:.3f}, accuracy {everything['accuracy']:.3f}"
        )
        for seed in range(args.seeds):
            clock = time.perf_counter()
            pool, test = split(documents, seed, args.pool)
            for gold in variants:
                for strategy in STRATEGIES:
                    full = gold and seed < args.full_seeds
                    runtime = fresh_runtime(template, workdir / f"{seed}-{strategy}-{gold}")
                    try:
                        points, retrained = run_loop(
                            runtime, pool, test, strategy=strategy, seed=seed, gold=gold, full=full
                        )
                    finally:
                        runtime.close()
                    curves[gold][strategy].append(points)
                    if retrained:
                        fulls[strategy].append(retrained)
            print(f"  seed {seed} done in {time.perf_counter() - clock:.0f} s", file=sys.stderr)
    note = (
        f"macro-F1 / accuracy on the test part ({test_size} documents per seed, never uploaded, labelled or "
        f"trained on), mean ± sd over {args.seeds} seeds. Each point scores the candidate the round "
        "trained, promoted or not; vs starter = paired change in macro-F1 from the starter model on the "
        "same split (± standard error); trained/ind. = approved examples in the training split per industry; "
        "gold = approved examples in the gold set (all industries); promoted = candidates the gate activated."
    )
    print("\n" + note)
    print_curve(
        "PRODUCTION: decide() as the API calls it; 20% of approved documents (by hash) go to the gold set, "
        "never trained on; the gate judges on starter holdout + gold set",
        curves[True],
        fulls,
        len(industries),
    )
    print_curve(
        "EVERY APPROVAL TRAINS: decide(gold_share=0); trained/ind. is exactly N; the gate judges on the "
        "starter holdout alone",
        curves[False],
        {strategy: [] for strategy in STRATEGIES},
        len(industries),
    )
    incremental = [
        p.seconds
        for by_strategy in curves.values()
        for c in by_strategy.values()
        for run in c
        for p in run[1:]
        if p.seconds
    ]
    full_seconds = [p.seconds for points in fulls.values() for p in points]
    print(
        "\nseconds per retrain (including the gate's evaluation): "
        f"train_incremental {np.mean(incremental):.2f} s (min {min(incremental):.2f}, "
        f"max {max(incremental):.2f}, {len(incremental)} runs)"
        + (f"; train_full {np.mean(full_seconds):.1f} s ({len(full_seconds)} runs)" if full_seconds else "")
    )
    print(f"total wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
