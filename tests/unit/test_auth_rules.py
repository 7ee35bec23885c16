"""Roles and key lookup, the one place the API and the console both ask."""

from __future__ import annotations

from core.auth import actor_name, allows, role_of

KEYS = {"k-annotate": "annotator", "k-review": "reviewer", "k-admin": "admin"}


def test_a_key_has_its_configured_role_and_anything_else_has_none() -> None:
    assert role_of("k-review", KEYS) == "reviewer"
    assert role_of("k-revie", KEYS) is None
    assert role_of("", KEYS) is None and role_of(None, KEYS) is None


def test_roles_are_ordered_annotator_reviewer_admin() -> None:
    assert allows("admin", "reviewer") and allows("reviewer", "reviewer")
    assert not allows("annotator", "reviewer") and not allows("nobody", "annotator")


def test_the_audit_name_never_holds_the_key() -> None:
    name = actor_name(" Ada\x00\n", "k-admin")
    assert "k-admin" not in name and name.startswith("Ada (key-") and "\x00" not in name
    assert actor_name("", "k-admin").startswith("key-")
    assert actor_name("Grace") == "Grace"
