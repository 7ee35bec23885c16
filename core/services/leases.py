"""Named, expiring locks in the database: single-flight work across processes and machines."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

from sqlalchemy import Engine, delete, update
from sqlalchemy.exc import IntegrityError

from core.db import session_scope
from core.db.tables import Lease, utcnow

log = logging.getLogger(__name__)


def new_owner() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def try_acquire(engine: Engine, name: str, owner: str, *, ttl_seconds: float) -> bool:
    """Take the lease ``name`` if nobody holds it or its holder's time ran out."""
    now = utcnow()
    expires = now + timedelta(seconds=ttl_seconds)
    with session_scope(engine) as session:
        taken = session.execute(
            update(Lease)
            .where(Lease.name == name, (Lease.expires_at < now) | (Lease.owner == owner))
            .values(owner=owner, expires_at=expires)
        ).rowcount
        if taken:
            return True
    try:
        with session_scope(engine) as session:
            session.add(Lease(name=name, owner=owner, expires_at=expires))
        return True
    except IntegrityError:
        return False


def release(engine: Engine, name: str, owner: str) -> None:
    with session_scope(engine) as session:
        session.execute(delete(Lease).where(Lease.name == name, Lease.owner == owner))


@contextlib.contextmanager
def held(engine: Engine, name: str, *, ttl_seconds: float, wait_seconds: float = 0.0) -> Iterator[bool]:
    """Hold the lease while the block runs; yields False if it could not be had in time.

    While the block runs, a thread renews the lease every third of ``ttl_seconds``: a holder that
    dies lets go within ``ttl_seconds``, however long a live one's work takes (a worker killed in
    the middle of a training run kept every later run waiting for half an hour)."""
    owner = new_owner()
    deadline = time.monotonic() + wait_seconds
    acquired = try_acquire(engine, name, owner, ttl_seconds=ttl_seconds)
    while not acquired and time.monotonic() < deadline:
        time.sleep(0.2)
        acquired = try_acquire(engine, name, owner, ttl_seconds=ttl_seconds)
    done = threading.Event()
    renewing = threading.Thread(
        target=_renew, args=(engine, name, owner, ttl_seconds, done), name=f"lease-{name}", daemon=True
    )
    if acquired:
        renewing.start()
    try:
        yield acquired
    finally:
        if acquired:
            done.set()
            renewing.join()
            release(engine, name, owner)


def _renew(engine: Engine, name: str, owner: str, ttl_seconds: float, done: threading.Event) -> None:
    while not done.wait(ttl_seconds / 3):
        try:
            try_acquire(engine, name, owner, ttl_seconds=ttl_seconds)
        except Exception:  # a database hiccup: the next beat tries again
            log.warning("could not renew the %s lease", name, exc_info=True)
