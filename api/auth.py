"""API keys and roles: annotator < reviewer < admin.

Keys come from ``HERON_API_KEYS`` (``key:role`` pairs) and are sent as ``Authorization: Bearer KEY``
or ``X-API-Key: KEY``. With no keys configured every caller is an admin, which is why `heron api`
then listens on 127.0.0.1 only, and this guard also refuses callers from other addresses.
"""

from __future__ import annotations

from collections.abc import Callable

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from core.auth import actor_name, allows, role_of

LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient", "testserver"}


def presented_key(connection: ASGIConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return connection.headers.get("x-api-key") or None


def caller(connection: ASGIConnection) -> tuple[str, str]:
    """(role, actor name) of the caller. The name is the ``X-Heron-User`` header (who is at the
    keyboard) and, when keys are configured, a hash prefix of the key — never the key itself."""
    keys: dict[str, str] = connection.app.state.runtime.settings.roles_by_key
    user = connection.headers.get("x-heron-user", "")
    if not keys:
        client = connection.client.host if connection.client else ""
        if client not in LOOPBACK and not client.startswith("127."):
            raise PermissionDeniedException("No API keys are configured, so only local callers are served.")
        return "admin", actor_name(user) or "local"
    key = presented_key(connection)
    if key is None:
        raise NotAuthorizedException("Send an API key as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'.")
    role = role_of(key, keys)
    if role is None:
        raise NotAuthorizedException("The API key is not valid.")
    return role, actor_name(user, key)


def requires(role: str) -> Callable[[ASGIConnection, BaseRouteHandler], None]:
    """A guard letting through callers whose role is at least ``role``."""

    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        granted, name = caller(connection)
        if not allows(granted, role):
            raise PermissionDeniedException(f"This needs the {role} role; the key has {granted}.")
        connection.state.actor = name

    return guard


def actor(connection: ASGIConnection) -> str | None:
    return getattr(connection.state, "actor", None)
