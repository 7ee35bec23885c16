"""API keys and roles: annotator < reviewer < admin.

Keys come from ``HERON_API_KEYS`` (``key:role`` pairs) and are sent as ``Authorization: Bearer KEY``
or ``X-API-Key: KEY``. With no keys configured every caller is an admin, which is why `heron api`
then listens on 127.0.0.1 only, and this guard also refuses callers from other addresses — and web
pages: a page of any site the user opens could otherwise send the local API writes (a form or a
``text/plain`` fetch needs no permission), or read it through a name rebound to 127.0.0.1. So a
keyless API answers only requests addressed to a loopback name, and no write a browser sends for
another site's page.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from core.auth import actor_name, allows, role_of

LOOPBACK = {"localhost", "testclient", "testserver", "testserver.local"}  # and 127.0.0.0/8, ::1
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def presented_key(connection: ASGIConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer ") and header[7:].strip():
        return header[7:].strip()
    return connection.headers.get("x-api-key") or None  # an empty Bearer hides no X-API-Key


def caller(connection: ASGIConnection) -> tuple[str, str]:
    """(role, actor name) of the caller. The name is the ``X-Heron-User`` header (who is at the
    keyboard) and, when keys are configured, a hash prefix of the key — never the key itself."""
    keys: dict[str, str] = connection.app.state.runtime.settings.roles_by_key
    user = _utf8(connection.headers.get("x-heron-user", ""))
    if not keys:
        client = connection.client.host if connection.client else ""
        if not _loopback(client):
            raise PermissionDeniedException("No API keys are configured, so only local callers are served.")
        _refuse_web_pages(connection)
        return "admin", actor_name(user) or "local"
    key = presented_key(connection)
    if key is None:
        raise NotAuthorizedException("Send an API key as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'.")
    role = role_of(key, keys)
    if role is None:
        raise NotAuthorizedException("The API key is not valid.")
    return role, actor_name(user, key)


def _utf8(header: str) -> str:
    """A header's text: HTTP hands headers over as Latin-1, clients send names as UTF-8 ("Zoë"
    arrived as "ZoÃ«", another annotator than the one typing it in the console)."""
    try:
        return header.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return header


def _loopback(host: str | None) -> bool:
    """A loopback address or name. Only an address counts by its value: "127.0.0.1.nip.io" is a
    name anyone can point at 127.0.0.1 (rebinding), not a loopback address."""
    host = (host or "").strip("[]").lower()
    try:
        address = ipaddress.ip_address(host)
        return address.is_loopback or address.is_unspecified  # a browser's 0.0.0.0 is this machine
    except ValueError:
        return host in LOOPBACK


def _refuse_web_pages(connection: ASGIConnection) -> None:
    """Without keys: refuse what a browser sends on behalf of a page that is not the local API's."""
    if not _loopback(connection.url.hostname):  # DNS rebinding: another site's name for 127.0.0.1
        raise PermissionDeniedException(
            f"No API keys are configured, so only requests to a local address are served "
            f"(this one was addressed to {connection.url.hostname!r}); set HERON_API_KEYS to serve others."
        )
    if connection.scope.get("method", "GET") in SAFE_METHODS:
        return
    origin = connection.headers.get("origin")
    site = connection.headers.get("sec-fetch-site", "").lower()
    if site in {"cross-site", "same-site"} or (origin and not _loopback(urlsplit(origin).hostname)):
        raise PermissionDeniedException(
            "No API keys are configured, so changes sent by a web page of another site are refused."
        )


def requires(role: str) -> Callable[[ASGIConnection, BaseRouteHandler], None]:
    """A guard letting through callers whose role is at least ``role``."""

    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        granted, name = caller(connection)
        if not allows(granted, role):
            raise PermissionDeniedException(f"This needs the {role} role; the key has {granted}.")
        connection.state.actor = name

    guard.role = role  # type: ignore[attr-defined]  # read by api.openapi.document_security
    return guard


def required_role(handler: BaseRouteHandler) -> str | None:
    """The role a route's guard asks for (None: the route is open to every caller)."""
    roles = [getattr(guard, "role", None) for guard in handler.guards or ()]
    return next((role for role in roles if role), None)


def actor(connection: ASGIConnection) -> str | None:
    return getattr(connection.state, "actor", None)
