"""Fixtures for the simulation tests: the session cluster as the server scratch databases go on,
and the shipped policy (helpers: tests/simulate_support.py)."""

from __future__ import annotations

import pytest
from simulate_support import REPO_RULES

from engine.simulate.run import PolicyUnderTest


@pytest.fixture
def server_url(pg_cluster) -> str:
    return pg_cluster.url


@pytest.fixture
def shipped(shipped_objects) -> PolicyUnderTest:
    policy, objects = shipped_objects
    return PolicyUnderTest("baseline", REPO_RULES, policy, objects)
