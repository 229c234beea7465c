"""The worker's decision for an upload that did not calibrate, as a whole table.

(failure kind, crashes, age) -> ack / NAK after a delay / dead letter
(shared/decisions.py), and which exceptions are which kind.
"""

from __future__ import annotations

from datetime import timedelta

import nats.errors
import pytest
from pymongo.errors import ServerSelectionTimeoutError

from services.calibrate.cone import CatalogFailed, CatalogRefused, CatalogReplyMalformed, CatalogUnavailable
from services.calibrate.worker import classify, failure_result, upload_age_s
from shared.contracts.messages import UploadRequested, utcnow
from shared.decisions import Action, Decision, Failure, Policy, decide
from shared.errors import BackendUnavailable, CalibrationFailed

POLICY = Policy(max_crashes=5, retry_delay=2.0, outage_limit_s=300.0)

NAK = Decision(Action.NAK, delay=2.0)
TABLE = [
    # failure, deliveries, crashes, age_s -> decision
    (None, 1, 0, 0.0, Decision(Action.ACK)),
    (None, 9, 0, 10_000.0, Decision(Action.ACK)),  # a late success is still a success
    (Failure.OUTAGE, 1, 0, 0.0, NAK),
    (Failure.OUTAGE, 40, 0, 299.0, Decision(Action.NAK, delay=1.0)),  # never sleeps past the limit
    (Failure.OUTAGE, 40, 0, 299.99, Decision(Action.NAK, delay=0.05)),
    (Failure.OUTAGE, 40, 0, 300.0, Decision(Action.DEAD_LETTER, why="outage_limit")),
    (Failure.OUTAGE, 2, 0, 5_000.0, Decision(Action.DEAD_LETTER, why="outage_limit")),
    (Failure.OUTAGE, 1, 0, 5_000.0, NAK),  # first met past the limit (a backlog): one retry
    (Failure.OUTAGE, 1, 0, -30.0, NAK),  # the gateway's clock ahead of ours: counted as new
    (Failure.PERMANENT, 1, 0, 0.0, Decision(Action.DEAD_LETTER, why="permanent")),
    (Failure.PERMANENT, 7, 3, 100.0, Decision(Action.DEAD_LETTER, why="permanent")),
    (Failure.CRASH, 1, 1, 0.0, NAK),
    (Failure.CRASH, 30, 4, 0.0, NAK),  # deliveries count outages too: crashes decide
    (Failure.CRASH, 5, 5, 0.0, Decision(Action.DEAD_LETTER, why="crashes")),
    (Failure.CRASH, 9, 9, 0.0, Decision(Action.DEAD_LETTER, why="crashes")),
    (Failure.CRASH, 3, 1, 301.0, Decision(Action.DEAD_LETTER, why="outage_limit")),  # a crash loop is bounded too
    (Failure.POISON, 1, 0, 0.0, Decision(Action.DEAD_LETTER, why="poison")),
]


@pytest.mark.parametrize("failure, deliveries, crashes, age, expected", TABLE)
def test_decision_table(failure, deliveries, crashes, age, expected):
    assert decide(failure, deliveries=deliveries, crashes=crashes, age_s=age, policy=POLICY) == expected


def test_every_failure_kind_is_in_the_table():
    assert {row[0] for row in TABLE} == {None, *Failure}


@pytest.mark.parametrize(
    "exc, expected",
    [
        (ServerSelectionTimeoutError("no primary"), (Failure.OUTAGE, "database")),
        (nats.errors.TimeoutError(), (Failure.OUTAGE, "nats")),
        (nats.errors.ConnectionClosedError(), (Failure.OUTAGE, "nats")),
        (CatalogUnavailable("not answering"), (Failure.OUTAGE, "catalog")),
        (BackendUnavailable("object store"), (Failure.OUTAGE, "backend_unavailable")),
        (CatalogReplyMalformed("garbage"), (Failure.PERMANENT, "catalog_reply_malformed")),
        (CatalogRefused("too many", code="cone_too_large"), (Failure.PERMANENT, "cone_too_large")),
        (CatalogFailed("boom"), (Failure.CRASH, "catalog_error")),
        (ZeroDivisionError("a bug"), (Failure.CRASH, "ZeroDivisionError")),
    ],
)
def test_classify(exc, expected):
    assert classify(exc) == expected


def upload(age_s: float = 0.0) -> UploadRequested:
    return UploadRequested(
        upload_id="u1",
        ivorn="ivo://x#1",
        alert_ra=1.0,
        alert_dec=2.0,
        observatory_id="o",
        observatory_name="O",
        mjd=60000.0,
        n_sources=10,
        received_at=utcnow() - timedelta(seconds=age_s),
    )


def test_upload_age_counts_from_received_at():
    assert 119.0 < upload_age_s(upload(120.0)) < 125.0
    assert upload_age_s(upload(-60.0)) == 0.0


@pytest.mark.parametrize(
    "exc, failure, reason, why, code, status",
    [
        (CatalogUnavailable("x"), Failure.OUTAGE, "catalog", "outage_limit", "catalog_unavailable", 503),
        (ServerSelectionTimeoutError("x"), Failure.OUTAGE, "database", "outage_limit", "database_unavailable", 503),
        (
            CatalogReplyMalformed("unreadable"),
            Failure.PERMANENT,
            "catalog_reply_malformed",
            "permanent",
            "catalog_reply_malformed",
            502,
        ),
        (
            CatalogRefused("big", code="cone_too_large"),
            Failure.PERMANENT,
            "cone_too_large",
            "permanent",
            "cone_too_large",
            502,
        ),
        (CatalogFailed("boom"), Failure.CRASH, "catalog_error", "crashes", "catalog_error", 502),
        (KeyError("bug"), Failure.CRASH, "KeyError", "crashes", "internal_error", 500),
    ],
)
def test_the_answer_names_what_failed(exc, failure, reason, why, code, status):
    result = failure_result(upload(301), exc, failure, reason, Decision(Action.DEAD_LETTER, why=why), 301.0, POLICY)
    assert (result.status, result.error, result.http_status) == ("error", code, status)
    assert result.upload_id == "u1" and result.message


def test_outage_answer_says_how_long():
    result = failure_result(
        upload(301),
        CatalogUnavailable("x"),
        Failure.OUTAGE,
        "catalog",
        Decision(Action.DEAD_LETTER, why="outage_limit"),
        301.0,
        POLICY,
    )
    assert result.message.startswith("the reference catalogue service did not answer for 301 s")


def test_a_user_error_is_not_the_workers_decision():
    # CalibrationFailed becomes the upload's error result in the pipeline (no "failure" attribute)
    assert getattr(CalibrationFailed("x"), "failure", None) is None
