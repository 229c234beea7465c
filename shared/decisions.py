"""What the worker does with an upload that did not calibrate: a pure function, tested as a table.

``decide(failure, deliveries=, crashes=, age_s=, policy=)`` -> ack / NAK after a delay / dead letter.

- ``Failure.OUTAGE``: a backend is down (catalogue service not answering,
  database, NATS). Retried, but not forever: once the upload is older than
  ``policy.outage_limit_s`` (counted from its ``received_at``) it is
  dead-lettered and answered with the backend's name (``catalog_unavailable``, 503).
- ``Failure.PERMANENT``: retrying cannot cure it (a reply too large, a
  malformed reply, a cone the catalogue refuses): dead letter at once, with
  its own code.
- ``Failure.CRASH``: an unexpected exception (ours or the catalogue
  service's). It may be passing (memory, a file being replaced), so it is
  retried until it has crashed ``policy.max_crashes`` times, or the outage
  limit has passed, then dead-lettered.
- ``Failure.POISON``: the message is not an upload at all: dead letter at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Failure(enum.StrEnum):
    OUTAGE = "outage"
    PERMANENT = "permanent"
    CRASH = "crash"
    POISON = "poison"


class Action(enum.StrEnum):
    ACK = "ack"
    NAK = "nak"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class Policy:
    #: dead-letter after this many crashes of one upload
    max_crashes: int = 5
    #: seconds between retries
    retry_delay: float = 2.0
    #: an upload older than this (s since received_at) is not retried any more
    outage_limit_s: float = 300.0


@dataclass(frozen=True)
class Decision:
    action: Action
    #: NAK: redeliver after this many seconds
    delay: float = 0.0
    #: DEAD_LETTER: why, in a word ("permanent", "crashes", "outage_limit", "poison")
    why: str = ""


def decide(
    failure: Failure | None,
    *,
    deliveries: int = 1,
    crashes: int = 0,
    age_s: float = 0.0,
    policy: Policy = Policy(),
) -> Decision:
    """The fate of one delivery; ``failure`` None means it calibrated (its result is stored and published).

    An upload met first when it is already past the limit (a long backlog) still gets one retry:
    a single hiccup of a backend is not an outage.
    """
    if failure is None:
        return Decision(Action.ACK)
    if failure is Failure.POISON:
        return Decision(Action.DEAD_LETTER, why="poison")
    if failure is Failure.PERMANENT:
        return Decision(Action.DEAD_LETTER, why="permanent")
    remaining = policy.outage_limit_s - max(age_s, 0.0)
    if failure is Failure.CRASH and crashes >= policy.max_crashes:
        return Decision(Action.DEAD_LETTER, why="crashes")
    if remaining <= 0:
        if deliveries <= 1:
            return Decision(Action.NAK, delay=policy.retry_delay)
        return Decision(Action.DEAD_LETTER, why="outage_limit")
    # never sleep past the limit: the last try comes right at it, and its failure is the answer
    return Decision(Action.NAK, delay=max(min(policy.retry_delay, remaining), 0.05))
