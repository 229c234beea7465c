"""When a failed delivery is tried again, and when it is given up: a pure function of its attempts and age."""

from __future__ import annotations


def next_delay(attempts: int, *, initial_s: float, max_s: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones (1, 2...): initial, doubled each time, capped."""
    return min(initial_s * 2 ** max(attempts - 1, 0), max_s)


def retry_in(attempts: int, age_s: float, *, initial_s: float, max_s: float, retry_for_s: float) -> float | None:
    """Seconds until the next try, or None: the delivery has been tried for ``retry_for_s`` and is failed.

    ``age_s``: seconds since the delivery was recorded (or released by a resume). A next try that would
    start after the bound is not made: the last try is the last one inside it.
    """
    delay = next_delay(attempts, initial_s=initial_s, max_s=max_s)
    if age_s + delay > retry_for_s:
        return None
    return delay
