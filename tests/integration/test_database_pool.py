"""PostgreSQL connections are tested before use only after they sat idle: a transaction right after
another costs no extra round trip, and a connection whose server side went away while it was idle
is replaced before anyone uses it. (Real PostgreSQL.)"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

import core.db
from core.db import make_engine
from tests.conftest import POSTGRES, needs_services

pytestmark = needs_services("PostgreSQL")


def test_a_connection_lost_while_idle_is_replaced_and_a_busy_one_is_not_pinged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(core.db, "PING_AFTER_IDLE_SECONDS", 0.3)
    engine = make_engine(POSTGRES)
    admin = make_engine(POSTGRES)
    pings: list[int] = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda connection: pings.append(1) or ping(connection))
    try:
        # Given a pooled connection used a moment ago
        with engine.connect() as connection:
            first = connection.execute(text("SELECT pg_backend_pid()")).scalar()
        # When transactions follow one another, then none of them is preceded by a ping
        for _ in range(5):
            with engine.connect() as connection:
                assert connection.execute(text("SELECT pg_backend_pid()")).scalar() == first
        assert pings == []
        # When its server process is ended while the connection sits idle in the pool
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            connection.commit()
        time.sleep(0.5)
        # Then the next transaction is tested first, gets a fresh connection and succeeds
        with engine.connect() as connection:
            second = connection.execute(text("SELECT pg_backend_pid()")).scalar()
        assert second != first and len(pings) >= 1
    finally:
        engine.dispose()
        admin.dispose()
