"""Before the unique indexes exist nothing may be written: a duplicate would have nothing to stop it."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shared.http_errors import json_errors
from shared.runtime import _writes_wait_for_indexes


async def test_writes_answer_503_until_the_indexes_exist_reads_go_through():
    indexed = asyncio.Event()
    app = web.Application(middlewares=[json_errors, _writes_wait_for_indexes(indexed)])

    async def ok(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/api/v1/alerts", ok)
    app.router.add_post("/api/v1/uploads", ok)
    app.router.add_get("/cgi/newevent", ok)  # CPCS clients write by GET too
    async with TestClient(TestServer(app)) as client:  # real HTTP over a socket
        assert (await client.get("/api/v1/alerts")).status == 200
        refused = await client.post("/api/v1/uploads", data=b"x")
        body = await refused.json()
        assert refused.status == 503 and body["error"] == "backend_unavailable"
        assert "database is starting" in body["message"]
        assert (await client.get("/cgi/newevent?EventID=x")).status == 503
        indexed.set()
        assert (await client.get("/cgi/newevent?EventID=x")).status == 200
        assert (await client.post("/api/v1/uploads", data=b"x")).status == 200
