"""Process-wide resources for the console (one runtime, one queue connection) and who is using it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import streamlit as st

from core.auth import actor_name, allows, role_of
from core.runtime import Runtime, open_runtime
from core.services import similar
from core.settings import get_settings
from workers import dispatch


@st.cache_resource(show_spinner="Preparing Heron (first start trains the starter model)…")
def runtime() -> Runtime:
    opened = open_runtime(get_settings())
    # Beside `heron api` (as `heron up` starts it) the console uses the API's workers and model.
    dispatch.connect_beside_workers(opened)
    similar.warm_up(opened.engine)
    return opened


@dataclass(frozen=True)
class User:
    """Who is at the keyboard: ``name`` is recorded with every action; ``role`` decides what shows."""

    name: str
    role: str

    def can(self, role: str) -> bool:
        return allows(self.role, role)


def current_user() -> User:
    """The console's user, as the sidebar set it (an admin named as a guest until then)."""
    return st.session_state.get("heron_user") or User(name=guest_name(), role="admin")


def guest_name() -> str:
    """The name of someone who has not given theirs: one per browser session ("guest-3fa2"), so two
    people who both leave the name empty never hold, or label, the same review item as one person."""
    return st.session_state.setdefault("heron_guest", f"guest-{secrets.token_hex(2)}")


def identity_sidebar() -> User:
    """Ask for the user's name and, when API keys are configured, their key (which sets the role).

    Without keys the console is a local, single-team tool and everyone is an admin, like the API.
    """
    keys = get_settings().roles_by_key
    with st.sidebar:
        name = st.text_input("Your name", key="heron_user_name", placeholder="e.g. Ada").strip()[:60]
        if not keys:
            user = User(name=name or guest_name(), role="admin")
        else:
            key = st.text_input("API key", type="password", key="heron_api_key")
            role = role_of(key, keys)
            if role is None:
                if key:
                    st.error("That API key is not valid.")
                st.session_state.pop("heron_user", None)
                st.info("API keys are configured: enter yours in the sidebar to use the console.")
                st.stop()
            user = User(name=actor_name(name, key), role=role)
        st.caption(
            f"Signed in as **{user.name}** · {user.role}"
            + ("" if name else " (enter your name to be credited for your labels)")
        )
    st.session_state["heron_user"] = user
    return user


def require(role: str) -> User:
    """Stop the page (with a sentence saying why) unless the user has ``role``."""
    user = current_user()
    if not user.can(role):
        st.warning(f"This page needs the {role} role; you are signed in as {user.role}.")
        st.stop()
    return user
