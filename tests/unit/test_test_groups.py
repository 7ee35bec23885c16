"""The suite's own contract with pytest-xdist: files run whole in one process, and the files that
use PostgreSQL, Redis or RabbitMQ all in the same one (tests/conftest.py groups them)."""

from __future__ import annotations

import pytest


def test_this_test_runs_in_its_group(request: pytest.FixtureRequest) -> None:
    config = request.config
    if not (hasattr(config, "workerinput") and config.getvalue("loadgroup")):
        pytest.skip("not running in pytest-xdist processes with --dist loadgroup")
    # pytest-xdist sends a test to its group's process by a suffix on the test's id; with pytest 9.2
    # the suffix was silently lost, and the service files ran at once in two processes, flushing
    # Redis and dropping schemas under each other
    assert request.node.nodeid.endswith("@tests.unit.test_test_groups"), (
        f"{request.node.nodeid}: pytest-xdist did not apply the test groups; "
        "use the pytest and pytest-xdist versions in constraints.txt"
    )
