"""The pure parts of synthesis: reading replies, quality gates, diversity plans, retry arithmetic."""

from __future__ import annotations

import email.utils
import json
from collections import Counter

import pytest

from core.errors import LlmBadReply
from core.synthesis.client import RateLimiter, backoff_seconds, retry_after_seconds
from core.synthesis.parsing import parse_documents, parse_genres, strip_preamble
from core.synthesis.prompts import LENGTHS, genres_from_description, plan_briefs
from core.synthesis.quality import Candidate, NearDuplicateIndex, looks_english, screen

MEMO = (
    "To all hangar staff: from Monday the night shift starts at 21:30 so that the handover with the late "
    "shift can be done at the aircraft rather than in the office. Please sign the tool control sheet "
    "before you leave and report any missing torque wrench to the stores supervisor at once."
)
LETTER = (
    "Dear Ms Patel, thank you for your letter about the lost suitcase on your flight from Lisbon. We have "
    "traced the bag to the baggage hall in Porto and it will be delivered to your home address by courier "
    "on Thursday, together with a voucher for the inconvenience you were caused."
)
GERMAN = (
    "Sehr geehrte Frau Patel, vielen Dank für Ihren Brief über den verlorenen Koffer auf Ihrem Flug aus "
    "Lissabon. Wir haben das Gepäckstück in Porto gefunden und es wird am Donnerstag per Kurier zu Ihnen "
    "nach Hause gebracht, zusammen mit einem Gutschein für die entstandenen Unannehmlichkeiten."
)
FRENCH = (
    "Madame, nous vous remercions de votre lettre concernant la valise perdue lors de votre vol depuis "
    "Lisbonne. Le bagage a été retrouvé à Porto et il sera livré chez vous par coursier jeudi, avec un bon "
    "de réduction pour les désagréments subis."
)


# --- parsing replies ---------------------------------------------------------------------------------


def test_a_structured_reply_gives_its_documents_in_order_with_their_genres() -> None:
    reply = json.dumps({"documents": [{"genre": "memo", "text": MEMO}, {"genre": "letter", "text": LETTER}]})
    documents = parse_documents(reply)
    assert [(d.genre, d.text) for d in documents] == [("memo", MEMO), ("letter", LETTER)]


@pytest.mark.parametrize(
    "wrap",
    [
        lambda j: f"Sure! Here are the two documents you asked for:\n\n```json\n{j}\n```\n\nHope this helps!",
        lambda j: f"Here you go: {j} Let me know if you need more.",
        lambda j: f"```\n{j}\n```",
    ],
    ids=["prose-and-fence", "inline-in-prose", "bare-fence"],
)
def test_json_wrapped_in_prose_or_fences_is_found(wrap) -> None:  # type: ignore[no-untyped-def]
    reply = wrap(json.dumps({"documents": [{"genre": "memo", "text": MEMO}, {"text": LETTER}]}))
    assert [d.text for d in parse_documents(reply)] == [MEMO, LETTER]


def test_other_shapes_of_json_are_understood() -> None:
    assert [d.text for d in parse_documents(json.dumps([MEMO, LETTER]))] == [MEMO, LETTER]
    assert [d.text for d in parse_documents(json.dumps({"items": [{"content": MEMO}]}))] == [MEMO]
    assert [d.text for d in parse_documents(json.dumps({"text": LETTER}))] == [LETTER]


def test_truncated_json_keeps_the_documents_that_were_complete() -> None:
    # Given a reply cut off in the middle of its second document
    full = json.dumps({"documents": [{"genre": "memo", "text": MEMO}, {"genre": "letter", "text": LETTER}]})
    reply = full[: full.index("traced the bag")]
    # Then the first document survives and the broken one is dropped
    assert [d.text for d in parse_documents(reply)] == [MEMO]


def test_escaped_text_is_salvaged_from_json_broken_elsewhere() -> None:
    reply = '{"documents": [{"genre": "memo", "text": "Line one.\\nLine \\"two\\"."}, {"genre": oops}]}'
    assert [d.text for d in parse_documents(reply)] == ['Line one.\nLine "two".']


def test_a_plain_text_reply_is_split_into_documents_without_the_chatter() -> None:
    reply = (
        f"Certainly! Here are two documents:\n\n**Document 1**\n{MEMO}\n\n---\n\n**Document 2**\n{LETTER}\n"
    )
    assert [d.text for d in parse_documents(reply)] == [MEMO, LETTER]


@pytest.mark.parametrize(
    "reply",
    ['{"documents": []}', '{"documents": [{"genre": "memo", "text": "Dear', '{"error": "overloaded"}', "   "],
)
def test_a_reply_without_a_document_is_a_bad_reply(reply: str) -> None:
    with pytest.raises(LlmBadReply) as raised:
        parse_documents(reply)
    assert raised.value.code == "llm_bad_reply"


def test_preambles_and_remarks_about_the_task_are_stripped_but_the_document_is_not() -> None:
    assert strip_preamble(f"Sure! Here's a memo for the hangar staff:\n\n{MEMO}") == MEMO
    assert strip_preamble(f"{LETTER}\n\nLet me know if you'd like more examples like this.") == LETTER
    assert strip_preamble(f"### Document 3: customer letter\n{LETTER}") == LETTER
    # A document may well start with "Here is …" and end with "Let me know …"
    own = "Here is the agenda for Tuesday's meeting.\n1. Bird strikes\n\nLet me know if you have questions."
    assert strip_preamble(own) == own


def test_genres_come_from_json_or_from_a_list() -> None:
    assert parse_genres('{"genres": ["a maintenance log", "a crew roster"]}') == [
        "a maintenance log",
        "a crew roster",
    ]
    assert parse_genres("Some ideas:\n1. A NOTAM.\n2. A pilot logbook page\n- a duty roster") == [
        "A NOTAM",
        "A pilot logbook page",
        "a duty roster",
    ]
    with pytest.raises(LlmBadReply):
        parse_genres("I cannot think of any.")


# --- quality gates --------------------------------------------------------------------------------------


def test_english_is_told_apart_from_other_languages() -> None:
    assert looks_english(MEMO) and looks_english(LETTER)
    assert not looks_english(GERMAN) and not looks_english(FRENCH)
    assert not looks_english("Уважаемая госпожа Патель, спасибо за ваше письмо о потерянном чемодане.")
    # Terse records still count as English
    assert looks_english("Defect: hydraulic leak at the left main gear actuator. Action: actuator replaced.")


def test_a_rewrite_with_other_names_is_a_near_duplicate_and_a_different_document_is_not() -> None:
    index = NearDuplicateIndex(threshold=0.5)
    index.add(LETTER)
    rewrite = LETTER.replace("Ms Patel", "Mr Osei").replace("Lisbon", "Madrid").replace("Thursday", "Monday")
    assert index.similarity(rewrite) > 0.5 and index.is_near_duplicate(rewrite)
    assert index.similarity(MEMO) < 0.1 and not index.is_near_duplicate(MEMO)
    assert NearDuplicateIndex().similarity(MEMO) == 0.0


def test_screening_counts_every_rejection_by_reason_and_remembers_what_it_accepted() -> None:
    # Given one stored text, and a batch with every kind of problem
    seen = {"stored-hash"}
    index = NearDuplicateIndex()
    batch = [
        MEMO,
        MEMO.upper(),
        "Too short.",
        GERMAN,
        LETTER,
        LETTER.replace("Ms Patel", "Mr Osei"),
        "x" * 900,
    ]
    # When it is screened
    result = screen(
        [Candidate(text) for text in batch], min_chars=100, max_chars=800, seen_hashes=seen, index=index
    )
    # Then two documents pass and each of the others has its reason
    assert [c.text for c in result.accepted] == [MEMO, LETTER]
    assert result.rejected == Counter(duplicate=1, too_short=1, not_english=1, near_duplicate=1, too_long=1)
    # ... and a later batch is compared with what was accepted
    later = screen([Candidate(MEMO)], min_chars=100, max_chars=800, seen_hashes=seen, index=index)
    assert later.accepted == [] and later.rejected == Counter(duplicate=1)


# --- diversity --------------------------------------------------------------------------------------------


def test_genres_are_read_from_a_description_that_lists_kinds_of_documents() -> None:
    description = (
        "Documents about airlines and airports. An aircraft maintenance log about defects. "
        "A passenger complaint about a cancelled flight. The airport's noise report."
    )
    assert genres_from_description(description) == [
        "An aircraft maintenance log about defects",
        "A passenger complaint about a cancelled flight",
        "The airport's noise report",
    ]
    assert genres_from_description("Property sales, lettings and valuations.") == []


def test_briefs_use_every_genre_before_repeating_one_and_vary_length_tone_and_format() -> None:
    genres = [f"genre {i}" for i in range(5)]
    briefs = plan_briefs(genres, 10, seed="task-1")
    assert set(b.genre for b in briefs[:5]) == set(genres)
    assert Counter(b.genre for b in briefs) == Counter({genre: 2 for genre in genres})
    assert {b.length for b in briefs} == set(LENGTHS)
    assert len({(b.tone, b.format) for b in briefs}) >= 7
    # The plan is reproducible, and a later batch continues it rather than starting over
    assert plan_briefs(genres, 10, seed="task-1") == briefs
    assert plan_briefs(genres, 4, start=6, seed="task-1") == briefs[6:]
    assert plan_briefs([], 3, seed="x")  # no genres at all: generic ones


# --- retries and rate -------------------------------------------------------------------------------------


def test_the_servers_requested_wait_is_read_in_every_form() -> None:
    assert retry_after_seconds({"retry-after": "7"}) == 7.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    in_a_minute = email.utils.formatdate(1_000_060, usegmt=True)
    assert retry_after_seconds({"retry-after": in_a_minute}, now=1_000_000) == pytest.approx(60)
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_backoff_doubles_per_retry_within_its_jitter() -> None:
    assert 0.75 <= backoff_seconds(1, 1.0) <= 1.25
    assert 3.0 <= backoff_seconds(3, 1.0) <= 5.0
    assert backoff_seconds(30, 1.0) <= 75


def test_the_rate_limiter_spaces_requests_evenly() -> None:
    now = [100.0]
    limiter = RateLimiter(120, clock=lambda: now[0])  # one every half second
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.5, 1.0]
    now[0] += 10  # after a quiet spell there is no debt to pay
    assert limiter.reserve() == 0.0


@pytest.mark.parametrize(
    ("text", "declines"),
    [
        ("I'm sorry, but I can't help with writing these documents.", True),
        ("I cannot create these documents because they could be misused.", True),
        ("As an AI language model, I cannot produce this.", True),
        ("I am sorry for the delay to your flight BA1428 on Friday.", False),
        ("Unfortunately, we are unable to provide coverage for the claimed damage.", False),
        ("I cannot provide legal advice; this memo summarises the lease terms.", False),
        ("As an AI-driven logistics firm, we ship to 40 countries.", False),
        ("I can't help but notice the boiler pressure dropped again.", False),
    ],
)
def test_a_model_declining_is_told_from_a_document_that_apologises_or_refuses(
    text: str, declines: bool
) -> None:
    from core.synthesis.quality import is_refusal

    assert is_refusal(text) is declines
