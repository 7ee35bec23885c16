"""The parts behind annotation: passages, label issues, Cohen's kappa, page spans, static parts."""

from __future__ import annotations

import numpy as np
import pytest

from core.classify.evidence import MAX_CHARS, MAX_PASSAGES, TARGET_CHARS, passage_spans
from core.classify.label_issues import find_label_issues
from core.extract.types import Extraction, Page
from core.services.annotators import cohen_kappa
from core.services.similar import _similarity


def test_passages_are_trimmed_spans_of_the_text_in_order() -> None:
    text = "  Invoice no. 42.\n\nAmount due: 1,200.00 EUR.   Pay by 1 May!\n" + "word " * 400 + "\nThe end."
    spans = passage_spans(text)
    assert spans and spans == sorted(spans)
    for start, end in spans:
        passage = text[start:end]
        assert passage == passage.strip() and passage
        assert end - start <= max(TARGET_CHARS, MAX_CHARS)
    assert text[spans[0][0] :].startswith("Invoice no. 42.")
    assert text[: spans[-1][1]].endswith("The end.")
    # every word of the text lies in some passage
    covered = np.zeros(len(text), dtype=bool)
    for start, end in spans:
        covered[start:end] = True
    assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())


def test_a_very_long_text_is_scored_on_evenly_spaced_passages() -> None:
    text = "\n".join(f"Sentence number {i} of a long report." for i in range(5000))
    spans = passage_spans(text)
    assert len(spans) <= MAX_PASSAGES
    assert spans[0][0] == 0 and spans[-1][1] == len(text)


def test_blank_text_has_no_passages() -> None:
    assert passage_spans("") == [] and passage_spans(" \n\t ") == []


def test_label_issues_are_the_examples_confidently_placed_elsewhere() -> None:
    given = np.array([0, 0, 0, 1, 1, 1, 0])
    probabilities = np.array(
        [
            [0.9, 0.1],
            [0.8, 0.2],
            [0.7, 0.3],
            [0.2, 0.8],
            [0.1, 0.9],
            [0.4, 0.6],  # labelled 1, a little doubted: p(0)=0.4 stays below class 0's usual 0.66
            [0.05, 0.95],  # labelled 0, but the model is as sure it is a 1 as of real 1s: an issue
        ]
    )
    issues = find_label_issues(probabilities, given)
    assert [issue.index for issue in issues] == [6]
    assert issues[0].suggested == 1 and issues[0].self_confidence == pytest.approx(0.05)


def test_label_issues_rank_the_least_self_confident_first() -> None:
    given = np.array([0, 0, 0, 1, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7]])
    assert [issue.index for issue in find_label_issues(probabilities, given)] == [2, 1]


def test_cohen_kappa_matches_the_textbook_figure() -> None:
    # 50 items: both say yes 20, both no 15, A yes/B no 5, A no/B yes 10 -> po 0.7, pe 0.5, kappa 0.4
    pairs = [("y", "y")] * 20 + [("n", "n")] * 15 + [("y", "n")] * 5 + [("n", "y")] * 10
    observed, kappa = cohen_kappa(pairs)
    assert observed == pytest.approx(0.7) and kappa == pytest.approx(0.4)
    assert cohen_kappa([("a", "a"), ("a", "a")]) == (1.0, None)  # chance agreement is already perfect


def test_page_spans_locate_each_page_in_the_joined_text() -> None:
    extraction = Extraction(
        content_type="application/pdf",
        pages=(Page(1, "First page.", "text"), Page(2, "", "text"), Page(3, "Third page.", "ocr")),
    )
    text = extraction.text
    assert [(n, text[s:e]) for n, s, e in extraction.page_spans] == [(1, "First page."), (3, "Third page.")]


def test_a_documents_parts_have_the_vectors_they_would_have_alone(runtime) -> None:  # type: ignore[no-untyped-def]
    statics = runtime.encoder.statics
    text = "The court dismissed the appeal.\n\nRevenue rose twelve percent on higher margins. Dividends next."
    spans = passage_spans(text)
    documents, parts = statics.embed_parts([text], [spans])
    assert np.allclose(documents[0], statics.embed([text])[0], atol=1e-5)
    alone = statics.embed([text[start:end] for start, end in spans])
    assert np.allclose(parts[0], alone, atol=1e-5)


def test_similarity_without_centring_the_candidates_is_the_centred_cosines() -> None:
    # The index scores candidates from two products (no centred copy of the matrix); it must give
    # what centring every vector and taking cosines gives, label order and missing labels included.
    rng = np.random.default_rng(3)
    said = rng.standard_normal(384).astype(np.float32) + 2.0
    vectors = (rng.standard_normal((50, 384)) + 2.0).astype(np.float16)
    probabilities = rng.dirichlet(np.ones(3), size=50).astype(np.float32)
    known = ["legal", "finance", "other"]  # the index's column order
    thought = {"finance": 0.7, "healthcare": 0.1, "legal": 0.2}  # one label the index never saw
    got = _similarity(said, vectors, thought, probabilities, known, prior=20)

    def unit(rows: np.ndarray) -> np.ndarray:
        return rows / np.linalg.norm(rows, axis=-1, keepdims=True)

    stacked = np.vstack([said, vectors.astype(np.float32)])
    centre = stacked.sum(axis=0) / (len(stacked) + 20)
    labels = ["finance", "healthcare", "legal"]
    theirs = np.array([[p[known.index(x)] if x in known else 0.0 for x in labels] for p in probabilities])
    expected = (
        unit(stacked[1:] - centre) @ unit(said - centre) + unit(theirs) @ unit(np.array([0.7, 0.1, 0.2]))
    ) / 2
    assert got == pytest.approx(expected, abs=1e-4)
    assert int(np.argmax(got)) == int(np.argmax(expected))


# Text a tokenizer can trip on: form feeds and other separators it deletes rather than splits on,
# non-breaking and zero-width spaces, accents, ligature-free German, Turkish dotted I, final sigma,
# Chinese characters (split one by one), a word past WordPiece's 100 characters, and punctuation.
AWKWARD = [
    "Invoice\x0cno. 42\x85paid\u2028in full;\u00a0net\u200b30 — “thanks”, café Straße İstanbul",
    "ΟΔΥΣΣΕΥΣ σοφός 東京大学の研究 naïve coöperation \ufffd\x00 ½ ﬁnance",
    "x" * 150 + " state-of-the-art,(really)? 3,718.91 USD/kWh #42 @home e-mail: a@b.org",
    # special tokens are matched before control characters are deleted: these are not [SEP] etc.
    "[SE\x0cP] x [CL\x85S] a[MA\x1fSK]b [SEP]",
    "",
    " \n\t ",
]


def test_remembered_chunks_give_exactly_the_tokenizers_ids(runtime) -> None:  # type: ignore[no-untyped-def]
    # The static vectors read each whitespace-separated chunk's tokens from memory: a document's
    # ids must still be the tokenizer's own, whatever it contains and in whatever order it is seen.
    statics = runtime.encoder.statics
    texts = [*AWKWARD, " ".join(reversed(AWKWARD)), AWKWARD[0] + AWKWARD[2]]
    for got, text in zip(statics.token_ids(texts), texts, strict=True):
        assert got.tolist() == statics.tokenizer.encode(text, add_special_tokens=False).ids
    seen_again = statics.token_ids(texts)  # every chunk from memory now
    assert [ids.tolist() for ids in seen_again] == [
        statics.tokenizer.encode(text, add_special_tokens=False).ids for text in texts
    ]


def test_the_chunk_memory_is_bounded(runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import core.classify.static as static

    statics = runtime.encoder.statics
    monkeypatch.setattr(static, "MEMO_CHUNKS", 50)
    for round_ in range(3):  # 1,200 different chunks in all
        words = " ".join(f"token{round_}x{i}" for i in range(400))
        expected = statics.tokenizer.encode(words, add_special_tokens=False).ids
        assert statics.token_ids([words])[0].tolist() == expected
    assert len(statics._memo) <= 400  # started over instead of growing with every new chunk
    # A chunk too long to come back (base64, OCR noise) is tokenised but not remembered
    long = "QUJDRE" * 30
    assert (
        statics.token_ids([f"{long} short"])[0].tolist()
        == statics.tokenizer.encode(f"{long} short", add_special_tokens=False).ids
    )
    assert long not in statics._memo and "short" in statics._memo
