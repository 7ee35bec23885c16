"""`heron` from a shell: works in-process on the configured database, no server needed."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.documents import EDUCATION, TECHNOLOGY, pdf_bytes

ROOT = Path(__file__).resolve().parents[2]


def heron(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HERON_DATA_DIR": str(data_dir), "HERON_DATABASE_URL": "", "HERON_BROKER_URL": ""}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_classify_prints_one_json_object_per_file(tmp_path: Path) -> None:
    # Given a fresh data dir (no model yet) and a folder of documents, one of them unreadable
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "syllabus.pdf").write_bytes(pdf_bytes(EDUCATION))
    (docs / "notes.txt").write_text(TECHNOLOGY)
    (docs / "empty.docx").write_bytes(b"")
    # When heron classify runs on it
    result = heron(tmp_path / "state", "classify", str(docs))
    # Then it trained the starter model itself and printed a line per file
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_name = {Path(line["path"]).name: line for line in lines}
    assert set(by_name) == {"syllabus.pdf", "notes.txt", "empty.docx"}, result.stderr
    assert by_name["syllabus.pdf"]["label"] == "education"
    assert by_name["notes.txt"]["label"] == "technology"
    for line in (by_name["syllabus.pdf"], by_name["notes.txt"]):
        assert set(line) == {"path", "label", "confidence", "tier", "escalated", "needs_review"}
        assert 0 < line["confidence"] <= 1
    assert by_name["empty.docx"]["error"]["code"] == "empty"
    assert result.returncode == 1  # some file failed


def test_train_adds_a_version_and_reports_its_evaluation(prepared_dir: Path) -> None:
    result = heron(prepared_dir, "train", "--full")
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["version_id"] == 2  # the starter model was version 1
    assert outcome["metrics"]["n"] > 0 and 0 <= outcome["metrics"]["macro_f1"] <= 1


def _labelled_dir(root: Path, docs: dict[str, list[str]]) -> Path:
    for label, texts in docs.items():
        (root / label).mkdir(parents=True)
        for i, text in enumerate(texts):
            (root / label / f"doc_{i}.txt").write_text(text)
    return root


def test_eval_scores_a_labelled_folder_without_training_on_it(tmp_path: Path, prepared_dir: Path) -> None:
    from tests.documents import OBVIOUS

    folder = _labelled_dir(tmp_path / "eval", {label: [text] for label, text in OBVIOUS.items()})
    (folder / "finance" / "broken.pdf").write_bytes(b"%PDF-1.7 garbage")
    (folder / "astrology").mkdir()
    (folder / "astrology" / "horoscope.txt").write_text("Mercury is in retrograde; Leos should avoid travel.")
    result = heron(prepared_dir, "eval", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(report) >= {
        "n",
        "accuracy",
        "macro_f1",
        "per_class",
        "confusion",
        "escalation_rate",
        "review_rate",
        "docs_per_second",
        "errors",
    }
    assert report["n"] == 8  # 7 obvious documents + the horoscope; the broken PDF is an error
    assert report["per_class"]["astrology"]["recall"] == 0.0  # unknown labels count as wrong
    assert report["accuracy"] == 7 / 8
    assert [e["code"] for e in report["errors"]] in (["corrupt"], ["no_text"])
    versions = heron(prepared_dir, "models", "list").stdout.strip().splitlines()
    assert len(versions) == 1  # evaluating never trains


def test_import_with_replace_brings_a_new_taxonomy(tmp_path: Path, prepared_dir: Path) -> None:
    from tests.documents import FINANCE, LEGAL, REAL_ESTATE

    folder = _labelled_dir(
        tmp_path / "mine",
        {
            "property": REAL_ESTATE,
            "money": [FINANCE, *[FINANCE.replace("4.2", str(i)) + f" Note {i}." for i in range(7)]],
        },
    )
    result = heron(prepared_dir, "import", str(folder), "--replace")
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["labels"] == ["money", "property"]
    assert set(outcome["retired"]) == {
        "healthcare",
        "finance",
        "legal",
        "education",
        "technology",
        "entertainment",
        "other",
    }
    assert outcome["activated"] is True
    industries = {
        line["name"]: line
        for line in map(json.loads, heron(prepared_dir, "industries", "list").stdout.splitlines())
    }
    assert industries["other"]["status"] == "retired" and not industries["other"]["catch_all"]
    docs = tmp_path / "new"
    docs.mkdir()
    (docs / "listing.txt").write_text(
        "Detached family home for sale, four bedrooms, garden, garage; offers invited via the agent."
    )
    (docs / "contract.txt").write_text(LEGAL)
    lines = [json.loads(line) for line in heron(prepared_dir, "classify", str(docs)).stdout.splitlines()]
    labels = {Path(line["path"]).name: line["label"] for line in lines}
    assert labels["listing.txt"] == "property"
    assert labels["contract.txt"] in {"money", "property"}  # retired industries are never predicted
    # And a rollback to the starter model, whose industries are all retired now (it would fail every
    # document), is refused, and the imported taxonomy's version stays active
    refused = heron(prepared_dir, "models", "activate", "1")
    assert refused.returncode == 1
    error = json.loads(refused.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] == "conflict" and "none of the active industries" in error["message"], error
    versions = [json.loads(line) for line in heron(prepared_dir, "models", "list").stdout.splitlines()]
    imported = next(v for v in versions if v["status"] == "active")
    assert imported["labels"] == ["money", "property"]
    # And when an industry is added (a version that knows it goes live) and the user rolls back to
    # the imported version, heron says which active industry that version cannot answer
    assert (
        heron(
            prepared_dir, "industries", "add", "tax", "--description", "Tax returns and tax advice."
        ).returncode
        == 0
    )
    back = heron(prepared_dir, "models", "activate", str(imported["id"]))
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["not_predicted"] == ["tax"]
    assert "never learned tax" in back.stderr


def test_a_taxonomy_of_one_industry_is_refused_and_nothing_changes(
    tmp_path: Path, prepared_dir: Path
) -> None:
    from tests.documents import FINANCE

    # When someone replaces the taxonomy with a folder naming a single industry
    folder = _labelled_dir(tmp_path / "one", {"money": [FINANCE, FINANCE + " Again."]})
    result = heron(prepared_dir, "import", str(folder), "--replace")
    # Then it is refused (a model needs two industries to choose between) and no industry is retired
    assert result.returncode == 1
    error = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] == "invalid" and "at least two industries" in error["message"], error
    statuses = {
        line["name"]: line["status"]
        for line in map(json.loads, heron(prepared_dir, "industries", "list").stdout.splitlines())
    }
    assert "money" not in statuses and set(statuses.values()) == {"active"}


def test_a_taxonomy_whose_files_cannot_be_read_changes_nothing_and_heron_keeps_classifying(
    tmp_path: Path, prepared_dir: Path
) -> None:
    from tests.documents import LEGAL

    # Given a folder of two industries, one of files Heron cannot read and one of empty files
    folder = tmp_path / "broken"
    (folder / "alpha").mkdir(parents=True)
    (folder / "alpha" / "x.bin").write_bytes(bytes(range(256)) * 12)
    (folder / "beta").mkdir()
    (folder / "beta" / "y.txt").write_bytes(b"")
    # When it replaces the taxonomy
    result = heron(prepared_dir, "import", str(folder), "--replace")
    # Then it is refused before anything changes (it retired the seven industries, created two
    # empty ones, and every classification then failed)
    assert result.returncode == 1
    error = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] == "invalid" and "readable" in error["message"], error
    statuses = {
        line["name"]: line["status"]
        for line in map(json.loads, heron(prepared_dir, "industries", "list").stdout.splitlines())
    }
    assert not {"alpha", "beta"} & set(statuses) and set(statuses.values()) == {"active"}
    (tmp_path / "ruling.txt").write_text(LEGAL)
    classified = heron(prepared_dir, "classify", str(tmp_path / "ruling.txt"))
    assert classified.returncode == 0 and json.loads(classified.stdout)["label"] == "legal", classified.stderr


def test_importing_a_text_under_another_label_supersedes_the_earlier_one(
    tmp_path: Path, prepared_dir: Path
) -> None:
    from core.db import make_engine
    from core.services.export import export_examples
    from core.settings import load_settings
    from tests.documents import FINANCE, LEGAL

    memo = "Memorandum on the lease termination: the tenant's notice period and the landlord's deposit."
    first = _labelled_dir(tmp_path / "first", {"finance": [memo, FINANCE]})
    second = _labelled_dir(tmp_path / "second", {"legal": [memo, LEGAL]})
    # When one import files the memo under finance and a later one under legal
    assert heron(prepared_dir, "import", str(first)).returncode == 0
    again = heron(prepared_dir, "import", str(second))
    assert again.returncode == 0, again.stderr
    # Then the later word wins: the memo trains under legal only (it trained under both)
    assert json.loads(again.stdout.strip().splitlines()[-1])["superseded"] == 1
    # And importing the first folder again (a nightly job) changes nothing: it does not undo the
    # later word
    repeated = heron(prepared_dir, "import", str(first))
    assert json.loads(repeated.stdout.strip().splitlines()[-1])["trained"] is False, repeated.stdout
    engine = make_engine(load_settings(data_dir=prepared_dir).effective_database_url)
    rows = [json.loads(line) for line in export_examples(engine=engine, fmt="jsonl").body.splitlines()]
    engine.dispose()
    assert [row["label"] for row in rows if row["text"] == memo] == ["legal"]


def test_commands_refused_for_bad_input_leave_nothing_behind(tmp_path: Path, prepared_dir: Path) -> None:
    # An industry asked with a number of synthetic documents out of range is refused and not
    # created (it was created, with a training run, and the name was then taken)
    for count in ("1001", "-5"):
        added = heron(prepared_dir, "industries", "add", "geology", "--synthetic", count)
        assert added.returncode == 1 and "synthetic documents" in added.stderr, added.stderr
    listed = heron(prepared_dir, "industries", "list").stdout
    assert "geology" not in {json.loads(line)["name"] for line in listed.splitlines()}
    # And an evaluation of files none of which can be read says so and fails (it reported
    # "0 documents: accuracy 0.000 …" and succeeded)
    folder = tmp_path / "unreadable"
    (folder / "legal").mkdir(parents=True)
    (folder / "legal" / "blank.txt").write_bytes(b"")
    scored = heron(prepared_dir, "eval", str(folder))
    assert scored.returncode == 1
    error = json.loads(scored.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] == "invalid" and "1 empty" in error["message"], error


def test_a_long_command_shows_progress_on_a_terminal_and_nothing_in_a_pipe(
    tmp_path: Path, prepared_dir: Path
) -> None:
    from tests.documents import OBVIOUS

    folder = _labelled_dir(tmp_path / "eval", {label: [text] for label, text in OBVIOUS.items()})
    count = len(OBVIOUS)
    # Given heron eval with its stderr in a pipe: the pipe gets no progress line
    piped = heron(prepared_dir, "eval", str(folder))
    assert piped.returncode == 0 and "reading files" not in piped.stderr, piped.stderr
    # Given the same with its stderr on a terminal
    env = {**os.environ, "HERON_DATA_DIR": str(prepared_dir), "HERON_DATABASE_URL": ""}
    env["HERON_BROKER_URL"] = ""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "eval", str(folder)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the command closed its end
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert process.wait(timeout=300) == 0
    # Then the terminal saw the files counted to the end, and stdout is the report alone
    assert f"reading files: {count}/{count}" in shown.decode(errors="replace"), shown
    assert b"reading files" not in process.stdout.read()


def test_a_worker_count_below_one_is_refused_with_a_usage_error(tmp_path: Path) -> None:
    # When someone asks for no worker processes, or for a word
    for count in ("0", "-2", "two"):
        result = heron(tmp_path, "worker", "--processes", count)
        # Then heron says what is wrong with the argument and exits with a usage error (no traceback)
        assert result.returncode == 2, result.stderr
        assert "--processes" in result.stderr and "Traceback" not in result.stderr


def test_a_version_id_no_database_can_hold_is_refused_with_a_usage_error(tmp_path: Path) -> None:
    # When someone asks to activate version 0, or one beyond PostgreSQL's 32-bit INTEGER ids (where
    # the driver overflowed with a traceback)
    for version in ("0", str(2**31), "v2"):
        result = heron(tmp_path, "models", "activate", version)
        # Then heron says what is wrong with the argument and exits with a usage error
        assert result.returncode == 2, result.stderr
        assert "version_id" in result.stderr and "Traceback" not in result.stderr


def test_an_import_while_another_training_runs_says_the_files_were_imported(
    tmp_path: Path, prepared_dir: Path
) -> None:
    from core.db import make_engine
    from core.services import leases
    from core.services.training import TRAINING_LEASE
    from tests.documents import FINANCE, LEGAL

    folder = _labelled_dir(
        tmp_path / "more", {"finance": [FINANCE + " Annex A."], "legal": [LEGAL + " Annex B."]}
    )
    engine = make_engine(f"sqlite:///{prepared_dir / 'heron.db'}")
    # Given a training run under way elsewhere (another process holds the training lease)
    with leases.held(engine, TRAINING_LEASE, ttl_seconds=120) as acquired:
        assert acquired
        # When a folder is imported
        result = heron(prepared_dir, "import", str(folder))
    engine.dispose()
    # Then heron says the files were imported and only the training has to wait, not that the
    # import failed
    assert result.returncode == 1
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "added": {"finance": 1, "legal": 1},
        "superseded": 0,
        "labels": ["finance", "legal"],
        "created": [],
        "retired": [],
        "errors": [],
        "skipped": [],
        "trained": False,
    }
    error = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] == "conflict" and "The files were imported" in error["message"], error
    # And importing the same folder again adds nothing, so nothing is trained
    again = heron(prepared_dir, "import", str(folder))
    assert again.returncode == 0, again.stderr
    repeated = json.loads(again.stdout.strip().splitlines()[-1])
    assert (
        repeated["trained"] is False and [item["code"] for item in repeated["skipped"]] == ["duplicate"] * 2
    )
    versions = heron(prepared_dir, "models", "list").stdout.splitlines()
    assert len(versions) == 1  # the starter model only: neither import trained


def test_a_retired_industry_is_restored_from_the_shell(prepared_dir: Path) -> None:
    from core.db import make_engine
    from core.services.industries import retire_industry
    from core.settings import load_settings

    engine = make_engine(load_settings(data_dir=prepared_dir).effective_database_url)
    retire_industry(engine=engine, name="education")
    engine.dispose()
    # When someone adds it again, they are told it is retired and how to bring it back
    again = heron(prepared_dir, "industries", "add", "education")
    assert again.returncode == 1
    message = json.loads(again.stderr.strip().splitlines()[-1])["error"]["message"]
    assert "heron industries restore education" in message
    # And restoring it makes it active (and queues the training that predicts it, when needed)
    restored = heron(prepared_dir, "industries", "restore", "education")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout.splitlines()[0])["status"] == "active"
    statuses = {
        line["name"]: line["status"]
        for line in map(json.loads, heron(prepared_dir, "industries", "list").stdout.splitlines())
    }
    assert statuses["education"] == "active"
    # And it is predicted again
    (prepared_dir / "lesson.txt").write_text(EDUCATION)
    classified = heron(prepared_dir, "classify", str(prepared_dir / "lesson.txt"))
    assert json.loads(classified.stdout)["label"] == "education", classified.stderr
