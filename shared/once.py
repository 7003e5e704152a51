"""Process-wide objects built on first use, exactly once.

`functools.lru_cache` does not lock: callers that arrive together before the first build
ends each build their own object and all but one are dropped. For a database engine, a
Redis pool, Gemini clients (which close their connections when dropped, under a call still
using them) or a 300 MB OCR model, that is wasted memory at best and a failed call at worst.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Once(Generic[T]):
    """`once()` returns `build()`'s result, built by the first caller while the others
    wait; `cache_clear()` forgets it (tests, a changed configuration)."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._built = False
        self._value: T | None = None
        functools.update_wrapper(self, build)

    def __call__(self) -> T:
        if not self._built:  # after the first build: no lock taken
            with self._lock:
                if not self._built:
                    self._value = self._build()
                    self._built = True
        return self._value  # type: ignore[return-value]

    def cache_clear(self) -> None:
        with self._lock:
            self._built, self._value = False, None


def once(build: Callable[[], T]) -> Once[T]:
    """Decorator: see `Once`."""
    return Once(build)
