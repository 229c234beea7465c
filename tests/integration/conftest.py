"""The whole stack as a user runs it: `photcal run` against test NATS and database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DATA, free_port_block
from tools.devstack import PHOTCAL, Stack  # noqa: F401  (re-exported for tests)


@pytest.fixture
def stack(test_env) -> Iterator[Stack]:
    port = free_port_block(7)  # the gateway and the services' health ports (+1 to +6)
    s = Stack(env=test_env | {"PHOTCAL_HTTP_PORT": str(port), "PHOTCAL_UPLOAD_TIMEOUT": "30"}, port=port)
    yield s
    s.stop()


def field_dir(name: str) -> Path:
    return DATA / "fields" / name


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
