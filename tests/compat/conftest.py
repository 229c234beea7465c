"""One real stack for the whole compatibility suite: `photcal run` on its own nats-server and nx-27017.

The clients below are the network's own, read from their code: BHTOM (Python
``requests``: upload, ``get_alert_lc_data`` with a ``hashtag`` cookie), the
observers' shell scripts (``curl -F`` to ``cgi/upload`` and ``cgi/newevent``),
and catalogue harvesters (``list_of_alerts?format=json...&hashtag=``, then
``get_alert_lc_data?alert_id=``). The stack is started once per module (a
start costs seconds on a 2-core machine); each test uses its own event or MJD.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.integration.conftest import Stack, field_dir
from tools.devstack import standalone_stack, stop_all

FIELD = field_dir("north_V")


@dataclass
class CompatStack:
    stack: Stack
    truth: dict
    hashtag: str  # an ordinary observatory
    other_hashtag: str  # a second observatory
    admin_hashtag: str  # an administrator (photcal observatory add --admin)

    @property
    def url(self) -> str:
        return self.stack.url


def _hashtag(out: str) -> str:
    found = re.search(r"hashtag: (\S+)", out)
    assert found is not None, out
    return found.group(1)


@pytest.fixture(scope="module")
def compat(tmp_path_factory) -> Iterator[CompatStack]:
    stack, servers = standalone_stack(
        tmp=tmp_path_factory.mktemp("compat"),
        PHOTCAL_MONGO_DB="compat",
        PHOTCAL_UPLOAD_TIMEOUT="60",
        PHOTCAL_LOG_LEVEL="INFO",
    )
    try:
        truth = stack.load_field(FIELD)
        hashtag = stack.add_observatory("Compat Observatory")
        other = stack.add_observatory("Other Observatory")
        admin = _hashtag(stack.cli("observatory", "add", "--name", "Network Admin", "--admin").stdout)
        stack.start()
        yield CompatStack(stack, truth, hashtag, other, admin)
    finally:
        stop_all(stack, servers)
