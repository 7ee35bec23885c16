"""Heron learns what its users teach it: corrections, new industries and promotion, on real services."""

from __future__ import annotations

import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from core.corpus import content_hash, is_holdout
from core.db import session_scope
from core.db.tables import ExampleSource, ModelVersion, Split, TrainingExample
from core.runtime import open_runtime
from core.services.industries import create_industry
from core.services.models import ModelCache, version_report
from core.services.training import train_incremental
from tests.conftest import make_settings, wait_for_job, wait_for_task

SPORTS = (
    "Sport: match reports, results and sports news about football, cricket, rugby, basketball, tennis and "
    "other games, with their teams, players, coaches, leagues and tournaments."
)
MATCH_REPORTS = [
    "Rovers came from behind to beat City 3-2 on Saturday. After conceding twice before half-time, the "
    "home side pulled one back through their captain's header from a corner, and the substitute striker "
    "scored twice in the last ten minutes. The manager praised the fans and said the league title race "
    "was wide open with four games to play.",
    "The second test ended in a draw at the county ground. Resuming on 212 for four, the visitors' "
    "middle order batted through the morning session before the declaration; the hosts' openers saw out "
    "the final twenty overs without alarm. The spinner finished with five wickets in the match.",
    "A late try in the corner gave the Wolves a 24-21 win over the Saints in front of a sell-out crowd. "
    "The forwards dominated the scrum all afternoon, and the fly-half kicked three penalties. The result "
    "lifts the Wolves to second in the league with the play-offs a month away.",
]


def _trained_text(text: str) -> str:
    """The text, varied until its document lands in the training split rather than the gold set."""
    import hashlib

    for i in range(100):
        candidate = f"{text} (ref {i})"
        sha = hashlib.sha256(candidate.encode()).hexdigest()
        if not is_holdout(f"document:{sha}"):
            return candidate
    raise AssertionError("no variant trains")


def test_an_approved_correction_is_live_within_seconds_and_named_in_the_new_versions_report(client) -> None:  # type: ignore[no-untyped-def]
    # Given a match report Heron files under "other", which this user (a broadcaster) files under
    # entertainment
    text = _trained_text(MATCH_REPORTS[0])
    job = wait_for_job(
        client,
        client.post("/api/classify_file", files={"file": ("report.txt", text.encode())}).json()["job_id"],
    )
    assert job["classification_result"] != "entertainment", job
    before = job["scores"]["entertainment"]
    feedback = client.post(
        "/api/feedback/", json={"job_id": job["id"], "corrected_classification": "entertainment"}
    )
    feedback_id = feedback.json()["feedback_id"]
    # When a reviewer approves it (the answer names the training run it queued)
    approved_at = time.monotonic()
    approved = client.post("/api/feedback/approve", json={"ids": [feedback_id]}).json()
    assert [item["status"] for item in approved["items"]] == ["approved"], approved
    task = wait_for_task(client, approved["training_task_id"])
    # Then within ten seconds a new version is live ...
    assert task["status"] == "SUCCEEDED" and task["result"]["activated"], task
    assert time.monotonic() - approved_at < 10, task
    version_id = task["result"]["version_id"]
    listed = next(m for m in client.get("/api/models").json()["items"] if m["id"] == version_id)
    assert listed["status"] == "active"
    # ... listed with why it was promoted, as its training task said
    assert listed["promotion"]["activated"] and listed["promotion"]["reason"] == task["result"]["reason"]
    # ... whose report names the approval that triggered it and says why it went live
    report = client.get(f"/api/models/{version_id}/report").json()
    learned = report["reports"]["starter_holdout"]["learned"]
    assert {"feedback_id": feedback_id, "label": "entertainment"}.items() <= next(
        item for item in learned if item["feedback_id"] == feedback_id
    ).items()
    promotion = report["reports"]["starter_holdout"]["promotion"]
    assert promotion["activated"] and promotion["reason"] and promotion["rule"]
    assert report["promotion"] == listed["promotion"]
    # ... and the same document is now more entertainment than it was
    time.sleep(2.5)  # every process re-reads the active version within its refresh interval
    again = wait_for_job(
        client,
        client.post("/api/classify_file", files={"file": ("again.txt", text.encode())}).json()["job_id"],
    )
    assert again["model_version"] == version_id and again["scores"]["entertainment"] > before


def test_a_new_industry_queues_the_training_that_makes_it_live(client) -> None:  # type: ignore[no-untyped-def]
    # Given a reviewer who adds an industry from a description only
    created = client.post(
        "/api/industries", json={"industry_name": "cricket_and_rugby", "description": SPORTS}
    )
    assert created.status_code == 202
    # Then a training task is queued even though there are no examples, and its version knows it
    task = wait_for_task(client, created.json()["training_task_id"])
    assert task["status"] == "SUCCEEDED" and task["result"]["activated"], task
    version = next(
        m for m in client.get("/api/models").json()["items"] if m["id"] == task["result"]["version_id"]
    )
    assert "cricket_and_rugby" in version["labels"]
    assert "cricket_and_rugby" in version["trained_on"]["new_industries"]
    client.delete("/api/industries/cricket_and_rugby")


@pytest.fixture
def copies(prepared_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Two fresh Herons from the same prepared database."""
    runtimes = []
    for name in ("first", "second"):
        target = tmp_path / name
        target.mkdir()
        with (
            closing(sqlite3.connect(prepared_dir / "heron.db")) as a,
            closing(sqlite3.connect(target / "heron.db")) as b,
        ):
            a.backup(b)
        runtimes.append(open_runtime(make_settings(target)))
    yield runtimes
    for runtime in runtimes:
        runtime.close()
        shutil.rmtree(runtime.settings.data_dir, ignore_errors=True)


# Documents of other industries, some of them borderline between "other" and its neighbours.
NOT_SPORTS = [
    "Observing notes, 14 March: transparency good, seeing 3/5. The galaxy pair in Leo showed faint "
    "mottling at 150x in the 10-inch reflector; the globular cluster resolved to its core.",
    "Members of the allotment society are reminded that the autumn show takes place in the village hall. "
    "Classes include the heaviest marrow, the longest runner bean and a jar of homemade chutney.",
    "The quarterly invoice for consulting services is enclosed. Payment is due within thirty days of "
    "receipt; late payments accrue interest at two percent per month.",
    "The patient was admitted with chest pain and discharged after observation with a referral to "
    "cardiology and a prescription for low-dose aspirin.",
    "Tonight's concert features the city orchestra with a programme of Brahms and Dvorak; doors open at "
    "seven and the bar stays open during the interval.",
]


def _described(runtime, name: str, description: str) -> dict:  # type: ignore[no-untyped-def]
    """Add an industry from its description only and run the training its creation queues; returns
    what the new (activated) version learned from."""
    create_industry(engine=runtime.engine, name=name, description=description, actor="test")
    outcome = train_incremental(
        engine=runtime.engine, policy=runtime.policy, encoder=runtime.training_encoder
    )
    assert outcome.activated, outcome.reason
    with session_scope(runtime.engine) as session:
        return session.get(ModelVersion, outcome.version_id).trained_on


def test_sports_carved_out_of_other_is_found_and_the_same_steps_give_the_same_answers(copies) -> None:  # type: ignore[no-untyped-def]
    answers = []
    for runtime in copies:
        # Given the starter model, whose catch-all "other" holds our own sports match reports
        models = ModelCache(runtime.encoder, refresh_seconds=0)  # no 2-second grace: read each time
        _, starter = models.active(runtime.engine)
        before = starter.classify(NOT_SPORTS, runtime.policy, encoder=runtime.encoder)
        # When "sports" is added from a description only and the training its creation queues runs
        trained_on = _described(runtime, "sports", SPORTS)
        # Then the starter's sports reports moved from "other" to "sports", and nothing else did
        assert trained_on["by_label"]["sports"] == trained_on["carved"] >= 4
        _, model = models.active(runtime.engine)
        verdicts = model.classify(MATCH_REPORTS, runtime.policy, encoder=runtime.encoder)
        assert [v.label for v in verdicts] == ["sports"] * len(MATCH_REPORTS)
        answers.append([(v.label, round(v.confidence, 6)) for v in verdicts])
        # And no other document's answer moved, not even a borderline one: while sports is young,
        # what sports does not take is answered as before it came
        after = model.classify(NOT_SPORTS, runtime.policy, encoder=runtime.encoder)
        assert [(v.label, round(v.confidence, 4)) for v in after] == [
            (v.label, round(v.confidence, 4)) for v in before
        ]
    # And two Herons taking the same steps give the same answers, whatever the timing
    assert answers[0] == answers[1]


COOKING = "Cooking and recipes: recipes, ingredients, cooking methods, baking, kitchen tips and meal ideas."
RECIPES = [
    "Weeknight lentil soup. Serves four. Soften a chopped onion, two carrots and a stick of celery in "
    "olive oil for ten minutes, stir in a teaspoon of cumin, add 200 g of red lentils and a litre of "
    "stock, then simmer for twenty-five minutes. Season, blend half and finish with lemon juice.",
    "For the crumble, rub 150 g of cold butter into 200 g of flour until it looks like breadcrumbs, stir "
    "in the sugar and oats, scatter it over the sliced apples and bake at 180C for forty minutes.",
]


def test_a_described_industry_takes_the_catch_alls_documents_of_its_kind(copies) -> None:  # type: ignore[no-untyped-def]
    # Given the starter model, whose catch-all "other" holds our own recipes, and whose description
    # of "other" opens with a sentence naming food among everything else
    runtime = copies[0]
    models = ModelCache(runtime.encoder, refresh_seconds=0)
    _, starter = models.active(runtime.engine)
    assert {v.label for v in starter.classify(RECIPES, runtime.policy, encoder=runtime.encoder)} == {"other"}
    before = starter.classify(NOT_SPORTS, runtime.policy, encoder=runtime.encoder)
    # When "cooking" is added from a description only
    trained_on = _described(runtime, "cooking", COOKING)
    # Then the starter's recipes moved to it (and only they did), and new recipes are cooking
    assert trained_on["by_label"]["cooking"] == trained_on["carved"] >= 3
    _, model = models.active(runtime.engine)
    assert [v.label for v in model.classify(RECIPES, runtime.policy, encoder=runtime.encoder)] == [
        "cooking"
    ] * len(RECIPES)
    after = model.classify(NOT_SPORTS, runtime.policy, encoder=runtime.encoder)
    assert [v.label for v in after] == [v.label for v in before]


TRAVEL = (
    "Travel: travel blogs and trip reports about destinations, hotels, flights, sightseeing and holidays."
)
# A long personal account of a holiday: what the model learned "other" to be (letters, personal life)
# as much as travel.
TRIP_POSTS = [
    "Last summer my husband and I finally took the trip we had been promising each other since our "
    "wedding. We are not adventurous people, so our daughter planned most of it for us. We spent the "
    "first four nights in the city, walking until our knees complained and eating far too much pastry, "
    "then picked up a small car and drove south through the vineyards. Every afternoon we stopped in a "
    "different village, found the square, sat under the trees with a coffee and watched the old men play "
    "boules. The little hotel by the river had only six rooms and the owner remembered how we took our "
    "tea from the first morning. On the last day we climbed up to the ruins above the town and sat there "
    "until the sun went down, not saying much. We came home tired, a little heavier, and already talking "
    "about where we might go next year. I would recommend going in September when the crowds have gone "
    "and the evenings are still warm."
]


def test_a_described_industry_takes_what_the_catch_all_would_answer_by_the_same_rule(copies) -> None:  # type: ignore[no-untyped-def]
    # Given a user who adds "travel" from a description only: the starter's few travel pieces carved
    # out of "other" are too few to outweigh what the model learned "other" to be, so a document it
    # files under "other" goes to travel when carving's own rule says travel claims it
    runtime = copies[0]
    before = runtime.models.active(runtime.engine)[1].classify(
        NOT_SPORTS, runtime.policy, encoder=runtime.encoder
    )
    _described(runtime, "travel", TRAVEL)
    # When a holiday account comes in, then it is travel, not "other"
    model = ModelCache(runtime.encoder, refresh_seconds=0).active(runtime.engine)[1]
    verdicts = model.classify(TRIP_POSTS, runtime.policy, encoder=runtime.encoder)
    assert [v.label for v in verdicts] == ["travel"] * len(TRIP_POSTS), verdicts
    # ... and queued for a person to confirm (which teaches travel its first examples)
    assert all(v.needs_review and "new_industry_carved" in v.review_reasons for v in verdicts)
    # And the other industries' documents keep their answers
    after = model.classify(NOT_SPORTS, runtime.policy, encoder=runtime.encoder)
    assert [v.label for v in after] == [v.label for v in before]


MONETARY_POLICY = (
    "Monetary policy and central banking: speeches and statements by central bankers about interest "
    "rates, inflation, employment and financial stability."
)
CENTRAL_BANKER = (
    "Thank you for the invitation to speak today. Inflation has come down a long way from its peak, but "
    "it remains above our two percent objective, and the labour market is still tight. The Committee "
    "decided last week to hold the policy rate steady. We will keep policy restrictive until we are "
    "confident that inflation is moving sustainably back to target, and we stand ready to adjust the "
    "stance of monetary policy as the data evolve."
)
# Finance documents that mention interest rates and the central bank: a description of monetary
# policy resembles them a little, and finance's own description (market news, filings) more.
RATES_IN_FINANCE = [
    "Item 7A. Quantitative and Qualitative Disclosures About Market Risk. We are exposed to market risk "
    "from changes in interest rates and foreign currency exchange rates. A hypothetical 100 basis point "
    "increase in interest rates would increase annual interest expense on our variable-rate term loan by "
    "approximately $3.2 million. We do not use derivative financial instruments for speculative purposes.",
    "The central bank's decision to raise rates again sent bank shares higher on Thursday, while "
    "homebuilders fell. The S&P 500 closed down 0.4%, and the yield on the ten-year Treasury note rose to "
    "4.6%. Analysts said markets now expect one more increase before the end of the year.",
]


def test_an_industry_carved_out_of_an_established_one_takes_only_what_reads_like_its_description(
    copies,
) -> None:  # type: ignore[no-untyped-def]
    # Given a user who adds "monetary policy" from a description only, beside finance
    runtime = copies[0]
    before = runtime.models.active(runtime.engine)[1].classify(
        RATES_IN_FINANCE, runtime.policy, encoder=runtime.encoder
    )
    assert [v.label for v in before] == ["finance"] * len(RATES_IN_FINANCE)
    _described(runtime, "monetary_policy", MONETARY_POLICY)
    model = ModelCache(runtime.encoder, refresh_seconds=0).active(runtime.engine)[1]
    # When a central banker's speech comes in, then it is monetary policy
    speech = model.classify([CENTRAL_BANKER], runtime.policy, encoder=runtime.encoder)[0]
    assert speech.label == "monetary_policy", speech
    # ... queued for a person to confirm, as everything a newcomer takes while it is being learned
    assert speech.needs_review and "new_industry_taken" in speech.review_reasons
    # And finance's market-risk disclosure and market news, which the newcomer's description
    # resembles only a little (without carving's rule both went to it, at 0.67 and 0.54), stay
    # finance, queued for a person to say which they are
    verdicts = model.classify(RATES_IN_FINANCE, runtime.policy, encoder=runtime.encoder)
    assert [v.label for v in verdicts] == ["finance"] * len(RATES_IN_FINANCE), verdicts
    assert all(v.needs_review and "new_industry_held_back" in v.review_reasons for v in verdicts)


def test_the_users_own_documents_outweigh_the_starter_corpus(copies) -> None:  # type: ignore[no-untyped-def]
    # Given a user (a cooking school) who files recipes under education, although the starter corpus
    # files its recipes under "other"
    runtime = copies[0]
    recipes = [
        f"Lesson {i}: {dish}. Ingredients: flour, butter, eggs, sugar, a pinch of salt. Method: preheat the "
        f"oven, whisk the eggs, fold in the flour and bake for {20 + i} minutes until golden."
        for i, dish in enumerate(["lemon tart", "scones", "sponge cake", "shortbread", "brioche", "eclairs"])
    ]
    with session_scope(runtime.engine) as session:
        for i, text in enumerate(recipes):
            session.add(
                TrainingExample(
                    text=text,
                    content_hash=content_hash(text),
                    label="education",
                    source=ExampleSource.feedback,
                    split=Split.train,
                    origin=f"feedback/{i}",
                )
            )
    # When the model is updated
    outcome = train_incremental(
        engine=runtime.engine, policy=runtime.policy, encoder=runtime.training_encoder
    )
    assert outcome.activated, outcome.reason
    _, model = runtime.models.active(runtime.engine)
    # Then a new recipe is education for this user, though six documents face the starter's recipes
    new = "Lesson 7: choux buns. Ingredients: flour, butter, eggs, water. Method: bake for 25 minutes."
    assert model.classify([new], runtime.policy, encoder=runtime.encoder)[0].label == "education"
    report = version_report(engine=runtime.engine, version_id=outcome.version_id)
    assert report.trained_on["by_source"]["feedback"] == len(recipes)


def test_a_model_trained_by_an_older_heron_is_retrained_at_start_up(copies) -> None:  # type: ignore[no-untyped-def]
    import io
    import json
    import zipfile

    from core.classify.model import MODEL_FORMAT, HeronModel
    from core.errors import Invalid
    from core.services.models import activate, active_version_id

    # Given a database whose active model an older Heron wrote (another artifact format)
    runtime = copies[0]
    old = io.BytesIO()
    with zipfile.ZipFile(old, "w") as archive:
        archive.writestr("model.json", json.dumps({"format": "heron-model-v2"}))
    with session_scope(runtime.engine) as session:
        version = session.get(ModelVersion, active_version_id(session))
        version.artifact = old.getvalue()
        session.add(version)
        old_id = version.id
    runtime.close()
    # When Heron starts on it
    reopened = open_runtime(runtime.settings)
    try:
        # Then it trains a current model from the stored examples and serves it; the old version
        # stays for the record but cannot be re-activated
        with session_scope(reopened.engine) as session:
            current = session.get(ModelVersion, active_version_id(session))
            assert current.id != old_id and HeronModel.format_of(current.artifact) == MODEL_FORMAT
            with pytest.raises(Invalid, match="older Heron"):
                activate(session, old_id)
        _, model = reopened.models.active(reopened.engine)
        assert model.classify(MATCH_REPORTS[:1], reopened.policy, encoder=reopened.encoder)[0].label
    finally:
        reopened.close()


def test_a_version_this_process_activates_is_served_at_once(copies) -> None:  # type: ignore[no-untyped-def]
    # Given a model cache that would otherwise look at the database only once an hour
    runtime = copies[0]
    models = ModelCache(runtime.encoder, refresh_seconds=3600)
    before, _ = models.active(runtime.engine)
    # When this process trains and activates a new version
    create_industry(engine=runtime.engine, name="sports", description=SPORTS, actor="test")
    outcome = train_incremental(
        engine=runtime.engine, policy=runtime.policy, encoder=runtime.training_encoder
    )
    assert outcome.activated, outcome.reason
    # Then the very next request is served by it
    served, model = models.active(runtime.engine)
    assert served == outcome.version_id != before and "sports" in model.labels
