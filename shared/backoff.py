"""The one back-off rule the service uses everywhere: exponential, capped, and spread by
a random factor so that many waiters do not come back in step."""

from __future__ import annotations

import random


def exponential_backoff(step: int, first_s: float, cap_s: float,
                        spread: tuple[float, float] = (1.0, 1.0)) -> float:
    """`first_s`·2^step (step 0 is the first wait), at most `cap_s`, times a factor drawn
    uniformly from `spread` (e.g. (0.5, 1.0), or (0.8, 1.2) for ±20%)."""
    delay = min(cap_s, first_s * 2 ** max(0, step))
    low, high = spread
    return delay if low == high else delay * random.uniform(low, high)
