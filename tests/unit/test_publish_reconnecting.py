"""The gateway's view of a NATS client moving to another cluster node (services/ingest/publish._connected).

nats-py's reconnect loop says RECONNECTING between attempts and CONNECTING during the
handshake with the next node; an upload arriving in either state waits for the move
(a cluster), and is refused at once only when there is nowhere to move (one server) or
the client has given up (closed). The states are nats-py's own constants.
"""

from __future__ import annotations

import asyncio

from nats.aio.client import Client

from services.ingest.publish import _connected


class ClientStates:
    """A client whose status follows a timetable: [(seconds from start, status)]."""

    def __init__(self, timetable: list[tuple[float, int]], servers: int) -> None:
        self.timetable = timetable
        self.servers = list(range(servers))
        self.start = asyncio.get_running_loop().time()

    @property
    def _status(self) -> int:
        elapsed = asyncio.get_running_loop().time() - self.start
        return [status for at, status in self.timetable if at <= elapsed][-1]

    is_connected = property(lambda self: self._status == Client.CONNECTED)
    is_reconnecting = property(lambda self: self._status == Client.RECONNECTING)
    is_connecting = property(lambda self: self._status == Client.CONNECTING)
    is_closed = property(lambda self: self._status == Client.CLOSED)


async def test_an_upload_during_the_handshake_with_the_next_node_waits_for_it() -> None:
    nc = ClientStates([(0.0, Client.CONNECTING), (0.1, Client.CONNECTED)], servers=3)
    assert await _connected(nc)


async def test_an_upload_between_reconnect_attempts_waits_for_the_move() -> None:
    timetable = [(0.0, Client.RECONNECTING), (0.05, Client.CONNECTING), (0.1, Client.RECONNECTING)]
    nc = ClientStates([*timetable, (0.15, Client.CONNECTED)], servers=3)
    assert await _connected(nc)


async def test_one_server_away_is_refused_at_once() -> None:
    nc = ClientStates([(0.0, Client.RECONNECTING), (0.05, Client.CONNECTED)], servers=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert not await _connected(nc)
    assert loop.time() - started < 0.05


async def test_a_client_that_gives_up_is_refused() -> None:
    nc = ClientStates([(0.0, Client.RECONNECTING), (0.05, Client.CLOSED)], servers=3)
    assert not await _connected(nc)
