"""Shared test fixtures: real nats-server and nx-27017 processes on free ports."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.devstack import free_port_block  # noqa: F401  (re-exported for tests)
from tools.infra import ServerProcess, free_port, mongo_server, nats_server

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def nats_proc(tmp_path) -> Iterator[ServerProcess]:
    server = nats_server(tmp_path / "natsdata", free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def mongo_proc(tmp_path) -> Iterator[ServerProcess]:
    server = mongo_server(tmp_path / "mongodata", free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_db_name(request) -> str:
    return "t" + "".join(c for c in request.node.name if c.isalnum())[:40] + str(random.randint(0, 10**6))


@pytest.fixture
def test_env(nats_proc, mongo_proc, tmp_path, fresh_db_name) -> dict[str, str]:
    """Environment for CLI/service subprocesses pointing at the test servers."""
    env = dict(os.environ)
    env.update(
        PHOTCAL_NATS_URL=nats_proc.url,
        PHOTCAL_MONGO_URL=mongo_proc.url,
        PHOTCAL_MONGO_DB=fresh_db_name,
        PHOTCAL_DATA_DIR=str(tmp_path / "data"),
        PHOTCAL_HASHTAG_PEPPER="test-pepper",
        PHOTCAL_LOG_LEVEL="INFO",
    )
    return env
