"""Who may do what: roles (annotator < reviewer < admin) and API-key lookup, for the API and the console.

Keys come from ``HERON_API_KEYS`` (``key:role`` pairs, :func:`core.settings.parse_api_keys`). A caller
is named by what they type (who is at the keyboard) and, with keys, by a hash prefix of their key —
never by the key itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

RANK = {"annotator": 1, "reviewer": 2, "admin": 3}


def role_of(key: str | None, keys: Mapping[str, str]) -> str | None:
    """The role of ``key`` among the configured ``keys`` (compared in constant time), or None."""
    if not key:
        return None
    found = None
    for known, role in keys.items():
        if hmac.compare_digest(known.encode(), key.encode()):
            found = role
    return found


def allows(granted: str, needed: str) -> bool:
    """Whether a caller with role ``granted`` may do what needs ``needed``."""
    return RANK.get(granted, 0) >= RANK[needed]


def actor_name(user: str, key: str | None = None) -> str:
    """How a caller appears in the audit trail: their typed name (cleaned), and with a key its tag."""
    user = "".join(ch for ch in user if ch.isprintable()).strip()[:60]
    if not key:
        return user
    tag = "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{user} ({tag})" if user else tag
