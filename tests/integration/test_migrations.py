from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlmodel import SQLModel

import core.db.tables  # noqa: F401
from core.db import alembic_config, current_revision, make_engine, migrate
from core.uncertainty import uncertainty
from tests.conftest import POSTGRES, needs_services

TABLES = {
    "documents",
    "jobs",
    "predictions",
    "industries",
    "feedback",
    "training_examples",
    "model_versions",
    "evaluation_reports",
    "audit_events",
    "leases",
}


def _assert_schema_matches_models(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == [], f"tables and migrations disagree: {differences}"


def test_migrating_an_empty_sqlite_database_creates_every_table(tmp_path: Path) -> None:
    # Given an empty SQLite file
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    # When it is migrated (twice: start-up runs it every time)
    migrate(engine)
    migrate(engine)
    # Then every table exists, the schema matches the models, and SQLite runs in WAL mode
    assert set(inspect(engine).get_table_names()) >= TABLES
    assert current_revision(engine) is not None
    _assert_schema_matches_models(engine)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 5000


@needs_services("PostgreSQL")
def test_the_same_migrations_run_on_postgresql() -> None:
    engine = make_engine(POSTGRES)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS heron_migration_test CASCADE"))
        connection.execute(text("CREATE SCHEMA heron_migration_test"))
    engine = make_engine(f"{POSTGRES}?options=-csearch_path%3Dheron_migration_test")
    migrate(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES
    _assert_schema_matches_models(engine)
    engine.dispose()


def _upgrade_to(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _a_prediction_made_before_0005(engine: Engine, scores: str) -> None:
    now = "2026-12-01 10:00:00"
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO documents (id, sha256, original_name, content_type, size, storage_key, "
                "created_at) VALUES (1, :sha, 'a.txt', 'text/plain', 3, 'k', :now)"
            ),
            {"sha": "a" * 64, "now": now},
        )
        connection.execute(
            text(
                "INSERT INTO jobs (id, document_id, original_filename, file_content_type, status, attempts, "
                "created_at, updated_at) VALUES ('j1', 1, 'a.txt', 'text/plain', 'COMPLETED', 1, :now, :now)"
            ),
            {"now": now},
        )
        connection.execute(
            text(
                "INSERT INTO model_versions (id, status, kind, artifact, artifact_sha256, created_at) "
                "VALUES (1, 'active', 'full', :artifact, 'x', :now)"
            ),
            {"artifact": b"model", "now": now},
        )
        connection.execute(
            text(
                "INSERT INTO predictions (id, job_id, model_version_id, label, confidence, scores, tier, "
                "escalated, needs_review, created_at) "
                "VALUES (1, 'j1', 1, 'finance', 0.5, :scores, 'fast', :no, :yes, :now)"
            ),
            {"scores": scores, "no": False, "yes": True, "now": now},
        )


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=needs_services("PostgreSQL"))]
)
def test_predictions_made_before_0005_get_their_uncertainty(database: str, tmp_path: Path) -> None:
    # Given a database at revision 0004 holding a prediction (the queue then ordered it in Python)
    if database == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    else:
        admin = make_engine(POSTGRES)
        with admin.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS heron_uncertainty_test CASCADE"))
            connection.execute(text("CREATE SCHEMA heron_uncertainty_test"))
        admin.dispose()
        engine = make_engine(f"{POSTGRES}?options=-csearch_path%3Dheron_uncertainty_test")
    _upgrade_to(engine, "0004")
    scores = {"finance": 0.5, "legal": 0.3, "other": 0.2}
    _a_prediction_made_before_0005(engine, '{"finance": 0.5, "legal": 0.3, "other": 0.2}')
    # When it is migrated to the latest revision
    migrate(engine)
    # Then its uncertainty is stored three ways, as new predictions store it
    with engine.connect() as connection:
        stored = connection.execute(
            text(
                "SELECT uncertainty_least_confidence, uncertainty_margin, uncertainty_entropy "
                "FROM predictions WHERE id = 1"
            )
        ).one()
    expected = [uncertainty(scores, strategy) for strategy in ("least_confidence", "margin", "entropy")]
    assert list(stored) == pytest.approx(expected)
    _assert_schema_matches_models(engine)
    engine.dispose()
