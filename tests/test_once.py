"""`once`: process-wide objects are built exactly once, even by callers arriving together."""

from __future__ import annotations

import time

import pytest

from shared.once import once
from tests.helpers import call_together


def test_callers_arriving_together_share_one_build() -> None:
    builds = []

    @once
    def build() -> object:
        time.sleep(0.1)  # the window a second caller would enter
        builds.append(1)
        return object()

    seen = call_together(build, 8)
    assert len(builds) == 1 and len({id(value) for value in seen}) == 1


def test_a_failed_build_is_not_kept_and_cache_clear_builds_again() -> None:
    attempts = []

    @once
    def build() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("database down at cold start")
        return len(attempts)

    with pytest.raises(ConnectionError):
        build()
    assert build() == 2 and build() == 2  # built on the next call, then kept
    build.cache_clear()
    assert build() == 3
