"""``POST /api/v1/voevents``: an administrator hands in a VOEvent 2.0 document; its event is created or updated.

A thin adapter over :func:`shared.usecases.alert_intake.take_in_voevent`: the administrator's hashtag
(query parameter, cookie or login, as the recalibration routes take it), the XML body in, the event out.
The same document twice changes nothing (200, ``changed: false``).
"""

from __future__ import annotations

from aiohttp import web

from services.ingest.state import Gateway
from shared.auth import authenticate, hashtag_of
from shared.contracts.errors import ErrorCode
from shared.errors import BadInput
from shared.logging import get_logger
from shared.usecases.alert_intake import take_in_voevent

log = get_logger(__name__)

XML_TYPES = {"application/xml", "text/xml", "application/voevent+xml"}


async def handle_voevent(request: web.Request) -> web.Response:
    gw: Gateway = request.app["gateway"]
    admin = await authenticate(gw.db, gw.pepper, hashtag_of(request), admin=True)
    if request.content_type not in XML_TYPES:
        raise BadInput(
            "send the VOEvent document as the body, Content-Type: application/xml", code=ErrorCode.BAD_VOEVENT
        )
    document = await request.read()  # bounded by the gateway's body limit (guards.SMALL_BODY_BYTES)
    if not document.strip():
        raise BadInput("the body is empty: send the VOEvent document", code=ErrorCode.BAD_VOEVENT)
    alert, outcome = await take_in_voevent(gw.db, document)
    log.info("voevent_taken_in", ivorn=alert.ivorn, outcome=outcome, by=admin.name)
    said = {"added": "added", "updated": "updated", "unchanged": "already known, unchanged"}[outcome]
    return web.json_response(
        {
            "status": "ok",
            "message": f"event {alert.ivorn} {said}",
            "ivorn": alert.ivorn,
            "id": alert.alert_id,
            "created": outcome == "added",
            "changed": outcome != "unchanged",
            "warnings": [],
        },
        status=201 if outcome == "added" else 200,
    )
