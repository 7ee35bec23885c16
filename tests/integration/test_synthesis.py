"""Synthetic training data, end to end against a real OpenAI-compatible server on loopback."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from core.corpus import content_hash
from core.db import session_scope
from core.db.tables import ModelVersion, TrainingExample
from core.errors import Conflict, Invalid
from core.runtime import Runtime
from core.services.industries import create_industry, list_industries, restore_industry, retire_industry
from core.services.synthesis import request_synthesis, run_synthesis_task
from core.services.tasks import TaskView, cancel, get_task
from core.services.training import train_incremental
from core.settings import Settings
from core.synthesis.prompts import PROMPT_VERSION
from tests.conftest import SentWork, wait_for_task
from tests.llm_server import FakeLLM, Reply, serve_documents

ROOT = Path(__file__).resolve().parents[2]

AVIATION_DESCRIPTION = (
    "Documents about airlines, airports and aircraft. An aircraft maintenance log or engineering work "
    "order about inspections, defects and replaced parts. An airline operations bulletin about flight "
    "schedules, crews and delays. An airport or air traffic control notice about runways, slots and "
    "airspace. A pilot training record or flight school syllabus. An aviation safety or incident report "
    "about a flight. A passenger complaint to an airline about a delayed or cancelled flight."
)

AVIATION = [
    """Work order WO-2291 — Aircraft registration G-EZTK, Airbus A320-214, line station Bristol.
During the daily check the engineer found hydraulic fluid seeping from the left main landing gear
retraction actuator. The aircraft was grounded and the actuator was replaced with part number
D23190000-7, serial 4471, taken from stores. A leak check and three gear swings on jacks were
carried out with no further seepage. The tech log entry was cleared by the licensed B1 engineer,
and the aircraft was released to service at 05:40 for the first rotation to Malaga. The removed
actuator has been tagged unserviceable and sent to the overhaul shop for a strip report.""",
    """Operations bulletin 14/24 — winter schedule changes for the cabin and flight deck crews.
From 27 October the early wave out of Manchester moves forward by twenty minutes so that the
Tenerife and Lanzarote rotations can land before the evening curfew. Captains should expect longer
duty days on the Canary Island pairings; rostering has added a standby crew at the base for
Friday and Sunday. Please read the revised fuel policy for the Atlantic sectors before your next
flight, and remember that the new slot times at Palma leave no buffer for a late boarding.
Questions go to the duty crew controller on extension 4410.""",
    """NOTICE TO AIRPORT USERS. Runway 09/27 at Leeds Bradford will close for resurfacing every night
from 23:00 to 06:00 between 4 and 22 March. During the closure no arrivals or departures can be
handled, and air traffic control will not accept flight plans with an estimated time inside the
window. Operators with scheduled night mail flights have been given alternative slots at
Manchester. Airside drivers must keep clear of the works area marked by red lights on taxiway
Alpha. The airport duty manager will publish any change in the daily briefing for airlines.""",
    """Student pilot training record — Sarah Okafor, PPL course, Cotswold Flight School. Lesson 12:
circuits and landings at Kemble in the Cessna 152 G-BOYL, 1.2 hours dual. The student flew five
circuits with good radio calls and a stable approach, but flared high on two of the landings and
needs to look further down the runway. One go-around was flown well after the instructor called a
simulated runway incursion. Crosswind component was eight knots. Next lesson: first solo check if
the weather allows, with a review of engine failure after take-off beforehand. Instructor: Dan
Whitcombe.""",
    """Safety report ASR-0573. During the climb out of Glasgow on flight 341 to Stansted, passing
flight level 120, the crew received a cabin altitude warning. The captain ordered oxygen masks for
the flight deck and began a descent to 10,000 feet, declaring a PAN with Scottish Control. The
cabin crew confirmed that the passenger masks had not deployed and no one was hurt. The flight
returned to Glasgow and landed safely 34 minutes after take-off. Engineering traced the fault to a
sticking outflow valve. This report is filed under the airline's safety management system for
investigation.""",
    """Dear Customer Relations team,
I am writing about flight BA1428 from Heathrow to Edinburgh on Friday 9 February, which was
cancelled at the gate after we had waited for three hours. No one from the airline explained why
the aircraft was unavailable, and the rebooking desk could only offer a seat on Sunday morning.
My wife and I paid for a hotel near the airport and a taxi the next day, and we missed a family
wedding. Under the passenger rights regulation I believe we are owed compensation of 250 pounds
each, plus our expenses. I attach the boarding passes and the receipts.
Yours faithfully, Robert Hale""",
    """Hi all, first-time poster on the pilots' forum. I have just started my ATPL theory with a
distance-learning school and I am finding meteorology and air law much heavier than I expected.
For those of you who already fly for an airline, how many hours a week did you study, and did you
sit the exams in blocks? I am also wondering whether to do the multi-engine rating before or after
the commercial licence skills test, because the flight school quotes are very different. Any
advice on type ratings and on getting through the airline assessment day would be great.""",
    """Airport briefing for ground handling agents — new turnaround procedure at gate 14.
From Monday, aircraft parking on stand 14 will be turned with the passenger boarding bridge on the
forward door and steps on the rear door. Baggage teams must have the belt loader in position within
five minutes of chocks on, and the dispatcher will confirm the fuel figure with the captain before
closing the doors. The target ground time for A320 family aircraft is 30 minutes. Please report
any delay caused by late catering or cleaning in the turnaround log so the airline can claim it
back.""",
    """Minutes of the flight safety committee meeting, held at the airline's operations centre on
12 June. Present: the head of flight operations, the safety manager, two line training captains
and the chief engineer. The committee reviewed seventeen occurrence reports from May, including
two unstable approaches at Innsbruck and a bird strike on departure from Dublin. The safety manager
presented the trend in runway excursion risk and proposed extra simulator sessions on wet-runway
landings. Actions: the training department will update the recurrent syllabus; engineering will
report on the bird strike damage to the number two engine fan blades.""",
    """Press release: Northern Skies Airlines takes delivery of its first Embraer E195-E2.
The aircraft, registered G-NSKA, landed at Newcastle Airport on Tuesday after a delivery flight
from the factory in Brazil. It will enter service next month on the routes to Amsterdam and Paris,
replacing older turboprops. The new jets burn around a quarter less fuel per seat and are much
quieter on approach, which the airport's neighbours have welcomed. The airline has trained twenty
pilots on the type in the simulator and will take four more aircraft before the summer season.""",
    """Incident summary: ground collision at the terminal stands. On Thursday evening a tug pushing
back an ATR 72 from stand 6 struck the wingtip of a parked Dash 8 on stand 7. The pushback crew
had no wing walker because of staff shortages, contrary to the ground operations manual. Both
aircraft were taken out of service for inspection; the damaged wingtip light and a section of
the winglet fairing must be replaced before the next flight. Four departures were delayed by more
than an hour. The handling agent has suspended the tug driver pending the investigation.""",
    """Flight school syllabus — Instrument Rating, module 3: holding patterns and approaches.
Ground school covers the entry procedures for holds, timing corrections for wind, and the
interpretation of approach plates for ILS, VOR and RNAV procedures. Students then fly six lessons
in the simulator before moving to the twin-engine aircraft. Each lesson is briefed for forty
minutes, flown for ninety, and debriefed with the instructor. A progress check with the head of
training is required before the final instrument rating skills test with the examiner. Students
should bring their headset, kneeboard and an up-to-date copy of the aerodrome charts.""",
]

# The first work order again with other names and numbers: a near-duplicate.
AVIATION_NEAR_DUPLICATE = (
    AVIATION[0]
    .replace("WO-2291", "WO-3310")
    .replace("G-EZTK", "G-EZUA")
    .replace("Bristol", "Luton")
    .replace("Malaga", "Faro")
)

AVIATION_GERMAN = """Arbeitsauftrag 4471 — Flugzeug D-AIZB, Airbus A320, Station Frankfurt. Bei der
täglichen Kontrolle wurde am linken Hauptfahrwerk ein Leck am Einfahrzylinder festgestellt. Das
Flugzeug wurde gesperrt und der Zylinder durch ein Ersatzteil aus dem Lager ersetzt. Nach einer
Dichtheitsprüfung und drei Fahrwerkstests ohne weitere Befunde wurde das Flugzeug um 05:40 Uhr für
den ersten Umlauf nach Palma wieder freigegeben. Das ausgebaute Teil wird zur Überholung geschickt."""

AVIATION_SHORT = "Flight 341 delayed, crew change at Stansted."

# An earnings call: confidently finance, whatever the task asked for.
FINANCE_TEXT = """Good morning and welcome to the third quarter earnings call. Revenue grew eleven
percent year on year to 4.2 billion dollars, and operating margin expanded by 140 basis points as
cost savings came through. Net interest income benefited from higher rates, while loan loss
provisions were broadly flat. We are raising our full-year guidance for earnings per share to
between 3.10 and 3.20, and the board has approved an additional share buyback of 500 million.
Our capital ratio remains comfortably above regulatory requirements. Analysts, we will now open
the line for your questions on the balance sheet, the deposit base and the outlook for dividends."""


# --- helpers --------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _starter_industries_only(runtime: Runtime) -> Iterator[None]:
    """The shared runtime as a fresh one would be: industries other test modules added step aside,
    and a version without them is served. A version trained while "real_estate", "beekeeping" and
    "fruit_growing" were young made two of these aviation work orders "other" (a preview of a
    described industry competes with what that version learned); this module tests synthesis, not
    that contest. They are restored afterwards."""
    others = [
        industry.name
        for industry in list_industries(engine=runtime.engine)
        if industry.status == "active" and not industry.examples.get("starter")
    ]
    for other in others:
        retire_industry(engine=runtime.engine, name=other, actor="test")
    deadline = time.monotonic() + 120
    while others:  # a training the previous module queued may hold the lease for a moment
        try:
            train_incremental(engine=runtime.engine, policy=runtime.policy, encoder=runtime.training_encoder)
            break
        except Invalid:  # a training the retirements queued already serves the starter industries
            assert not set(others) & set(_served_industries(runtime)), "the served version still knows them"
            break
        except Conflict:
            assert time.monotonic() < deadline, "the training lease stayed busy"
            time.sleep(0.5)
    yield
    for other in others:
        restore_industry(engine=runtime.engine, name=other, actor="test")


def _served_industries(runtime: Runtime) -> list[str]:
    with session_scope(runtime.engine) as session:
        active = session.exec(select(ModelVersion).where(ModelVersion.status == "active")).one()
        return list(active.labels)


@pytest.fixture
def industry(runtime: Runtime) -> Iterator[str]:
    """A new industry of the shared runtime, retired again afterwards (so tests do not compete)."""
    name = f"aviation_{uuid.uuid4().hex[:8]}"
    create_industry(engine=runtime.engine, name=name, description=AVIATION_DESCRIPTION, actor="test")
    yield name
    retire_industry(engine=runtime.engine, name=name, actor="test")


def llm_settings(runtime: Runtime, llm: FakeLLM, **overrides: Any) -> Settings:
    """The runtime's settings pointed at the fake server, with test-sized timeouts and backoffs."""
    values: dict[str, Any] = {
        "llm_base_url": llm.url,
        "llm_model": "fake-writer-1",
        "llm_timeout_seconds": 5.0,
        "llm_backoff_seconds": 0.01,
        "llm_max_retries": 3,
        "llm_requests_per_minute": 100_000,
        "llm_concurrency": 1,
    }
    return runtime.settings.model_copy(update={**values, **overrides})


def synthesise(runtime: Runtime, settings: Settings, industry: str, count: int) -> TaskView:
    task = request_synthesis(
        engine=runtime.engine, industry=industry, count=count, settings=settings, actor="test"
    )
    run_synthesis_task(
        engine=runtime.engine,
        task_id=task.id,
        settings=settings,
        models=runtime.models,
        policy=runtime.policy,
    )
    return task_row(runtime, task.id)


def task_row(runtime: Runtime, task_id: str) -> TaskView:
    return get_task(engine=runtime.engine, task_id=task_id)


def stored(runtime: Runtime, task_id: str) -> list[TrainingExample]:
    with session_scope(runtime.engine) as session:
        return list(
            session.exec(
                select(TrainingExample)
                .where(TrainingExample.origin.startswith(f"synthetic/{task_id}/"))
                .order_by(TrainingExample.id)
            )
        )


def normalised(text: str) -> str:
    return " ".join(text.split())


def fresh(texts: list[str]) -> list[str]:
    """The texts with a reference line unique to this test: every test shares one database, and an
    exact copy of a text stored by an earlier test is (rightly) rejected as a duplicate."""
    tag = uuid.uuid4().hex[:6].upper()
    return [f"{text}\nRef. {tag}-{number}" for number, text in enumerate(texts, start=1)]


# --- the run ----------------------------------------------------------------------------------------


def test_asked_for_six_documents_it_stores_six_varied_reviewable_examples(
    runtime: Runtime, industry: str
) -> None:
    # Given a server that answers well, in JSON-schema mode
    documents = fresh(AVIATION)
    with FakeLLM(serve_documents(documents, genres=["a hangar shift handover note"])) as llm:
        settings = llm_settings(runtime, llm, llm_concurrency=4)
        # When six documents are asked for
        task = synthesise(runtime, settings, industry, 6)
        requests = len(llm.requests)
    # Then six examples wait for a reviewer, each with where it came from
    assert task.status == "SUCCEEDED", task
    assert (task.done, task.total, task.progress) == (6, 6, 1.0)
    examples = stored(runtime, task.id)
    assert {normalised(e.text) for e in examples} == {normalised(t) for t in documents[:6]}
    for example in examples:
        assert (example.label, example.source, example.status, example.split) == (
            industry,
            "synthetic",
            "pending",
            "train",
        )
        assert example.meta["model"] == "fake-writer-1"
        assert example.meta["prompt_version"] == PROMPT_VERSION
        assert example.meta["predicted"] == industry and "flag" not in example.meta
        assert set(example.meta) >= {"genre", "format", "tone", "length", "tokens"}
    assert len({e.origin for e in examples}) == 6
    # ... asked for in varied genres, from the description and from the model's own proposals
    genres = [e.meta["genre"] for e in examples]
    assert len(set(genres)) >= 5
    assert len({e.meta["length"] for e in examples}) == 3
    # ... and the task records what it stored and the tokens it used
    assert task.result["stored"] == 6 and task.result["pending"] == 6 and task.result["approved"] == 0
    assert task.result["rejected"] == {}
    assert task.result["tokens"] == {"prompt": 120 * requests, "completion": 480 * requests}


def test_prose_fences_broken_json_and_a_server_without_json_schema_still_yield_clean_documents(
    runtime: Runtime, industry: str
) -> None:
    # Given a server that refuses JSON schema (HTTP 400) and wraps or breaks its JSON reply after reply
    replies = itertools.count()

    def wrap(content: str, _: int) -> str:
        documents = json.loads(content)["documents"]
        chatty = [{"text": "Certainly! Here is the document:\n\n" + d["text"]} for d in documents]
        return [
            f"Sure! Here are the documents you asked for:\n```json\n{content}\n```\n"
            "Let me know if you would like more examples.",
            content[: content.rindex('"text"') + 20],  # cut off inside the last document
            '{"documents": [{"genre": "memo", "text": "Dear team',  # nothing to salvage
            json.dumps({"documents": chatty}),
        ][next(replies) % 4]

    documents = fresh(AVIATION)
    serve = serve_documents(documents, wrap=wrap)

    def responder(body: dict[str, Any], number: int) -> Reply:
        if (body.get("response_format") or {}).get("type") == "json_schema":
            return Reply(status=400)
        return serve(body, number)

    with FakeLLM(responder) as llm:
        # When eight documents are asked for
        task = synthesise(runtime, llm_settings(runtime, llm), industry, 8)
        formats = [(r.get("response_format") or {}).get("type") for r in llm.requests]
    # Then the client fell back to JSON mode for good ...
    assert formats[0] == "json_schema" and set(formats[1:]) == {"json_object"}
    # ... and what was stored is the documents themselves, without the chatter around them
    assert task.status == "SUCCEEDED", task
    texts = [normalised(e.text) for e in stored(runtime, task.id)]
    assert len(texts) == 8 and len(set(texts)) == 8
    assert set(texts) <= {normalised(t) for t in documents}
    # ... while the reply with no document in it was counted, not stored
    assert task.result["rejected"] == {"bad_reply": 1}


def test_duplicates_foreign_language_and_short_texts_never_reach_storage(
    runtime: Runtime, industry: str
) -> None:
    # Given an industry with one imported example, and a server that repeats itself
    work_order, near_duplicate, record, *others = fresh(
        [AVIATION[0], AVIATION_NEAR_DUPLICATE, AVIATION[3], AVIATION[1], AVIATION[2], AVIATION[4]]
    )
    with session_scope(runtime.engine) as session:
        session.add(
            TrainingExample(
                text=record,
                content_hash=content_hash(record),
                label=industry,
                source="import",
                origin="examples/record.txt",
            )
        )
    pool = [
        work_order,
        work_order,  # exact duplicate within the run
        near_duplicate,  # the same work order with other names and numbers
        AVIATION_GERMAN,
        AVIATION_SHORT,
        record,  # the stored example again
        *others,
    ]
    with FakeLLM(serve_documents(pool)) as llm:
        # When four documents are asked for
        task = synthesise(runtime, llm_settings(runtime, llm), industry, 4)
    # Then only the four distinct English documents of a sensible length were stored
    assert task.status == "SUCCEEDED", task
    texts = {normalised(e.text) for e in stored(runtime, task.id)}
    assert texts == {normalised(t) for t in (work_order, *others)}
    assert task.result["rejected"] == {
        "duplicate": 2,
        "near_duplicate": 1,
        "not_english": 1,
        "too_short": 1,
    }


def test_a_document_that_reads_like_another_industry_is_kept_but_held_for_review(
    runtime: Runtime, industry: str
) -> None:
    # Given synthetic documents that train at once, and a model that slips in an earnings call
    documents = fresh([AVIATION[5], FINANCE_TEXT, AVIATION[7], AVIATION[8]])
    with FakeLLM(serve_documents(documents)) as llm:
        settings = llm_settings(runtime, llm, synthetic_needs_approval=False)
        # When four documents are written
        task = synthesise(runtime, settings, industry, 4)
    # Then the aviation ones may train, and the finance one waits for a person, flagged
    assert task.status == "SUCCEEDED", task
    by_text = {normalised(e.text): e for e in stored(runtime, task.id)}
    flagged = by_text.pop(normalised(documents[1]))
    assert flagged.status == "pending"
    assert flagged.meta["flag"] == "looks_like" and flagged.meta["predicted"] == "finance"
    assert flagged.meta["confidence"] >= 0.8
    assert {e.status for e in by_text.values()} == {"approved"} and len(by_text) == 3
    assert (task.result["approved"], task.result["flagged"], task.result["pending"]) == (3, 1, 1)


# --- failures -----------------------------------------------------------------------------------------


def test_rate_limits_server_errors_and_timeouts_are_retried_with_backoff(
    runtime: Runtime, industry: str
) -> None:
    # Given a server that first says 429 (Retry-After: 1 s), then fails, then is slower than the timeout
    def trouble(number: int) -> Reply | None:
        return {
            0: Reply(status=429, headers={"Retry-After": "1"}),
            1: Reply(status=500),
            2: Reply(status=503),
            3: Reply(delay=2.5, content="{}"),
        }.get(number)

    with FakeLLM(serve_documents(fresh(AVIATION), before=trouble)) as llm:
        settings = llm_settings(runtime, llm, llm_timeout_seconds=1.0, llm_max_retries=5)
        # When three documents are asked for
        started = time.monotonic()
        task = synthesise(runtime, settings, industry, 3)
        elapsed = time.monotonic() - started
    # Then every transient failure was retried, the Retry-After was honoured, and all were stored
    assert task.status == "SUCCEEDED", task
    assert len(stored(runtime, task.id)) == 3
    assert elapsed >= 1.0 + 1.0  # Retry-After + the timed-out request


def test_a_server_that_keeps_failing_ends_the_task_llm_unavailable_keeping_whole_batches_only(
    runtime: Runtime, industry: str
) -> None:
    # Given a server that answers the genres and one batch, then only fails
    with FakeLLM(
        serve_documents(fresh(AVIATION), before=lambda n: Reply(status=500) if n >= 2 else None)
    ) as llm:
        # When eight documents are asked for, four per request
        task = synthesise(runtime, llm_settings(runtime, llm, llm_max_retries=2), industry, 8)
    # Then the task failed with a stable code, and exactly the completed batch is stored
    assert (task.status, task.error_code) == ("FAILED", "llm_unavailable")
    assert "500" in task.error_message
    assert task.result["stored"] == 4 == len(stored(runtime, task.id))


def test_replies_without_a_readable_document_end_the_task_llm_bad_reply(
    runtime: Runtime, industry: str
) -> None:
    # Given a server whose every documents reply is broken JSON
    broken = '{"documents": [{"genre": "memo", "text": "Dear colleagues, the hangar'
    with FakeLLM(serve_documents(AVIATION, wrap=lambda content, number: broken)) as llm:
        # When two documents are asked for
        task = synthesise(runtime, llm_settings(runtime, llm), industry, 2)
    # Then nothing is stored and the task says why
    assert (task.status, task.error_code) == ("FAILED", "llm_bad_reply")
    assert stored(runtime, task.id) == [] and task.result["rejected"]["bad_reply"] >= 1


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps({"choices": [{"message": {"role": "assistant", "content": 42}}]}).encode(),
        json.dumps({"choices": "oops"}).encode(),
        bytes(range(128, 256)) * 8,
        json.dumps({"choices": [{"message": {"role": "assistant", "content": "[" * 3000}}]}).encode(),
        json.dumps({"choices": [{"message": {"role": "assistant", "content": "{ " * 499_000}}]}).encode(),
    ],
    ids=["content-a-number", "choices-a-string", "not-utf8", "nested-too-deep", "a-megabyte-of-braces"],
)
def test_a_reply_that_is_not_a_completion_of_documents_ends_llm_bad_reply(
    runtime: Runtime, industry: str, raw: bytes
) -> None:
    # Given a server whose every answer is broken in a way a lenient server's can be
    with FakeLLM(serve_documents(AVIATION, before=lambda n: Reply(raw=raw))) as llm:
        started = time.monotonic()
        task = synthesise(runtime, llm_settings(runtime, llm), industry, 2)
        elapsed = time.monotonic() - started
    # Then the task ends with the code for a bad reply, not internal_error and a traceback (and a
    # megabyte of "{ " is refused at once: reading it as JSON took minutes, uncancellable)
    assert (task.status, task.error_code) == ("FAILED", "llm_bad_reply"), task
    assert stored(runtime, task.id) == []
    assert elapsed < 30


def test_a_reply_trickled_past_the_timeout_is_cut_off_and_retried(runtime: Runtime, industry: str) -> None:
    # Given a server that sends each reply 64 bytes at a time, a piece every 0.3 s (each wait for
    # bytes is short; a whole reply takes half a minute)
    documents = serve_documents(fresh(AVIATION))

    def dawdling(body: dict[str, Any], number: int) -> Reply:
        reply = documents(body, number)
        return dataclasses.replace(reply, trickle=0.3) if number else reply  # the genres come at once

    with FakeLLM(dawdling) as llm:
        settings = llm_settings(runtime, llm, llm_timeout_seconds=2.0, llm_max_retries=1)
        started = time.monotonic()
        task = synthesise(runtime, settings, industry, 2)
        elapsed = time.monotonic() - started
        sent = len(llm.requests)
    # Then each request is cut off at the timeout, retried, and the task fails in seconds
    assert (task.status, task.error_code) == ("FAILED", "llm_unavailable"), task.error_message
    assert "Timeout" in task.error_message, task.error_message
    assert sent == 3 and elapsed < 15, (sent, elapsed)


def test_a_model_declining_the_task_is_no_training_document(runtime: Runtime, industry: str) -> None:
    refusal = (
        "I'm sorry, but I can't help with writing these documents. Creating realistic aviation incident "
        "reports could be misused to mislead people about real flights, so I have to decline this request. "
        "If you would like, I can explain how such reports are usually structured in general terms instead, "
        "or help with another task."
    )
    apology = fresh(["I am sorry for the delay to your flight BA1428 on Friday. " + AVIATION[5]])[0]
    with FakeLLM(serve_documents([refusal, apology])) as llm:
        task = synthesise(runtime, llm_settings(runtime, llm), industry, 2)
    # Then the refusal is rejected as one, and a passenger's apology letter is still a document
    assert task.result["rejected"].get("refusal", 0) >= 1, task.result
    assert [normalised(e.text) for e in stored(runtime, task.id)] == [normalised(apology)]


def test_runs_side_by_side_share_the_endpoints_request_rate() -> None:
    from core.synthesis.client import LlmClient

    first = LlmClient(model="m", base_url="http://127.0.0.1:9/v1", requests_per_minute=60)
    second = LlmClient(model="m", base_url="http://127.0.0.1:9/v1", requests_per_minute=60)
    # Two synthesis runs at once, one request each: the second waits its turn (1 s at 60 a minute)
    assert first._limiter.reserve() == pytest.approx(0.0, abs=0.05)
    assert second._limiter.reserve() == pytest.approx(1.0, abs=0.05)
    first.close()
    second.close()


def test_without_an_llm_the_request_is_accepted_and_ends_llm_not_configured(
    runtime: Runtime, industry: str
) -> None:
    # Given no LLM configured
    settings = runtime.settings.model_copy(update={"llm_base_url": "", "openai_api_key": ""})
    # When synthetic documents are asked for
    task = synthesise(runtime, settings, industry, 5)
    # Then the task is recorded, ended with a clear code, and nothing was written
    assert (task.status, task.error_code) == ("FAILED", "llm_not_configured")
    assert "HERON_LLM_BASE_URL" in task.error_message and industry in task.error_message
    assert stored(runtime, task.id) == []


def test_cancelling_during_a_slow_reply_stops_promptly_and_keeps_only_whole_batches(
    runtime: Runtime, industry: str
) -> None:
    # Given a server that answers the first batch at once and the next ones slowly
    def slow_after_first_batch(number: int) -> Reply | None:
        return Reply(delay=8.0, content="{}") if number >= 2 else None

    with FakeLLM(serve_documents(fresh(AVIATION), before=slow_after_first_batch)) as llm:
        settings = llm_settings(runtime, llm, llm_timeout_seconds=20.0)
        task = request_synthesis(
            engine=runtime.engine, industry=industry, count=8, settings=settings, actor="test"
        )
        worker = threading.Thread(
            target=run_synthesis_task,
            kwargs={
                "engine": runtime.engine,
                "task_id": task.id,
                "settings": settings,
                "models": runtime.models,
                "policy": runtime.policy,
            },
        )
        worker.start()
        deadline = time.monotonic() + 20
        while len(llm.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        # When the task is cancelled while the slow request is in flight
        cancel(engine=runtime.engine, task_id=task.id, actor="test")
        cancelled_at = time.monotonic()
        worker.join(timeout=10)
        stopped_after = time.monotonic() - cancelled_at
    # Then the run stopped within a second or so, and only the completed batch is stored
    assert not worker.is_alive() and stopped_after < 2.0
    row = task_row(runtime, task.id)
    assert row.status == "CANCELLED"
    assert row.result["stored"] == 4 == len(stored(runtime, task.id))


# --- the API, the worker and the command line --------------------------------------------------------


def test_a_reviewer_adds_an_industry_with_synthetic_documents_and_approves_them_over_http(
    client: Any, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"aviation_{uuid.uuid4().hex[:8]}"
    with FakeLLM(serve_documents(fresh(AVIATION[8:]))) as llm:
        # Given a Heron whose worker writes synthetic documents through the LLM
        monkeypatch.setattr(runtime, "settings", llm_settings(runtime, llm))
        # When a reviewer adds an industry and asks for three synthetic documents
        created = client.post(
            "/api/industries",
            json={"industry_name": name, "description": AVIATION_DESCRIPTION, "num_synthetic_documents": 3},
        )
        assert created.status_code == 202 and created.json()["synthesis"] == "queued", created.json()
        task = wait_for_task(client, created.json()["synthesis_task_id"])
    try:
        # Then the worker wrote them, and they wait for approval in the examples list
        assert task["status"] == "SUCCEEDED" and task["result"]["stored"] == 3, task
        waiting = {"source": "synthetic", "status": "pending", "label": name}
        queue = client.get("/api/examples", params=waiting)
        assert queue.status_code == 200 and queue.json()["total"] == 3
        items = queue.json()["items"]
        assert {item["source"] for item in items} == {"synthetic"} and all(item["preview"] for item in items)
        ids = [item["id"] for item in items]
        # When the reviewer approves two and rejects one
        approved = client.post("/api/examples/approve", json={"ids": ids[:2]})
        rejected = client.post("/api/examples/reject", json={"ids": ids[2:]})
        # Then their status says so, a decided example cannot be decided again, and filters are checked
        assert approved.status_code == 200 and {i["status"] for i in approved.json()["items"]} == {"approved"}
        assert rejected.status_code == 200 and rejected.json()["items"][0]["status"] == "rejected"
        again = client.post("/api/examples/approve", json={"ids": ids[2:]})
        assert (again.status_code, again.json()["code"]) == (409, "conflict")  # as for corrections
        missing = client.post("/api/examples/reject", json={"ids": [10**9]})
        assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
        unknown = client.get("/api/examples", params={"status": "maybe"})
        assert (unknown.status_code, unknown.json()["code"]) == (422, "invalid")
        # ... and the incremental training the approval queued learns exactly the two approved ones
        training = client.get("/api/tasks", params={"kind": "training", "limit": 1}).json()["items"][0]
        trained = wait_for_task(client, training["id"])
        assert trained["status"] == "SUCCEEDED" and "version_id" in trained["result"], trained
        report = client.get(f"/api/models/{trained['result']['version_id']}/report").json()
        assert report["trained_on"]["by_label"][name] == 2
    finally:
        retire_industry(engine=runtime.engine, name=name, actor="test")


def test_an_example_approved_after_a_later_training_run_is_learned_by_an_incremental_one(
    runtime: Runtime, industry: str
) -> None:
    from core.services.examples import decide_examples
    from core.services.training import run_training_task, train_full

    # Given a synthetic example waiting for approval while a training run happens
    with session_scope(runtime.engine) as session:
        text = fresh([AVIATION[9]])[0]
        waiting = TrainingExample(
            text=text, content_hash=content_hash(text), label=industry, source="synthetic", status="pending"
        )
        session.add(waiting)
        session.flush()
        waiting_id = waiting.id
    train_full(engine=runtime.engine, policy=runtime.policy, encoder=runtime.training_encoder)
    # When it is approved, and the incremental update the approval queued runs
    sent = SentWork()
    decided = decide_examples(
        engine=runtime.engine, work=sent, ids=[waiting_id], approve=True, actor="reviewer"
    )
    queued = decided.training_task
    assert queued is not None and queued.params == {"mode": "incremental"}
    assert sent.tasks == [(queued.id, "training")]
    run_training_task(
        engine=runtime.engine, task_id=queued.id, policy=runtime.policy, encoder=runtime.training_encoder
    )
    # Then that update learned it, older id or not: no full retrain is needed
    version_id = get_task(engine=runtime.engine, task_id=queued.id).result["version_id"]
    with session_scope(runtime.engine) as session:
        learned = session.get(ModelVersion, version_id).trained_on["learned"]
    assert [item["example_id"] for item in learned] == [waiting_id]


def heron(runtime: Runtime, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`heron ARGS` in a subprocess, on the shared runtime's database (its model is trained already)."""
    variables = {
        **os.environ,
        "HERON_DATA_DIR": str(runtime.settings.data_dir),
        "HERON_DATABASE_URL": "",
        "HERON_BROKER_URL": "",
        "HERON_LOG_LEVEL": "WARNING",
        "OPENAI_API_KEY": "",
        "HERON_LLM_BASE_URL": "",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=variables,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_cli_adds_an_industry_from_example_files_and_synthetic_documents(
    runtime: Runtime, tmp_path: Path
) -> None:
    # Given two example files and an LLM, with synthetic documents that train at once
    name = f"aviation_{uuid.uuid4().hex[:8]}"
    examples, synthetic = fresh(AVIATION[:2]), fresh(AVIATION[2:6])
    folder = tmp_path / "examples"
    folder.mkdir()
    for number, text in enumerate(examples):
        (folder / f"example_{number}.txt").write_text(text)
    with FakeLLM(serve_documents(synthetic)) as llm:
        # When `heron industries add` runs with --examples and --synthetic
        result = heron(
            runtime,
            "industries",
            "add",
            name,
            "--description",
            AVIATION_DESCRIPTION,
            "--examples",
            str(folder),
            "--synthetic",
            "3",
            HERON_LLM_BASE_URL=llm.url,
            HERON_LLM_BACKOFF_SECONDS="0.01",
            HERON_LLM_REQUESTS_PER_MINUTE="100000",
            HERON_SYNTHETIC_NEEDS_APPROVAL="false",
        )
    try:
        # Then it printed the industry, then how the synthesis and the training runs ended
        assert result.returncode == 0, result.stderr
        first, *endings = (json.loads(line) for line in result.stdout.splitlines())
        assert (first["industry"], first["examples_added"]) == (name, 2)
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for ending in endings:
            by_kind.setdefault(ending["kind"], []).append(ending)
        (synthesis,) = by_kind["synthesis"]
        assert synthesis["status"] == "SUCCEEDED" and synthesis["result"]["approved"] == 3, synthesis
        assert by_kind["training"] and all(t["status"] == "SUCCEEDED" for t in by_kind["training"])
        # ... and the industry has its examples by source
        industries = {industry.name: industry for industry in list_industries(engine=runtime.engine)}
        assert industries[name].examples == {"import": 2, "synthetic": 3}
        # ... while `heron synth` without an LLM says why it wrote nothing
        refused = heron(runtime, "synth", name, "2")
        assert refused.returncode == 1
        assert json.loads(refused.stdout)["error"]["code"] == "llm_not_configured"
    finally:
        retire_industry(engine=runtime.engine, name=name, actor="test")
