from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import core.db.tables  # noqa: F401
from core.db import current_revision, make_engine, migrate
from tests.conftest import needs_services

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
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS heron_migration_test CASCADE"))
        connection.execute(text("CREATE SCHEMA heron_migration_test"))
    engine = make_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dheron_migration_test"
    )
    migrate(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES
    _assert_schema_matches_models(engine)
    engine.dispose()
