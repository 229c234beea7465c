"""Validation of user-supplied identifiers shared by the gateway, the CLI and the models."""

from __future__ import annotations

import re

#: ivo://authority/path#fragment (IVOA identifiers); Gaia's are ivo://gaia/alerts#Gaia21eeo
_IVORN = re.compile(r"^ivo://[A-Za-z0-9][\w.\-~]*(/[\w.\-~%/:+=@]*)?(#[\w.\-~%/:+=@]+)?$")
MAX_IVORN = 256


def validate_ivorn(value: str) -> str:
    value = (value or "").strip()
    if len(value) > MAX_IVORN or not _IVORN.match(value):
        raise ValueError(
            "an event id (ivorn) looks like ivo://authority/path#name, e.g. ivo://gaia/alerts#Gaia21eeo"
        )
    return value


MAX_URL = 2048


def validate_event_url(value: str | None) -> str | None:
    """An event's web page: http(s) only, so that no page ever links a ``javascript:`` URL."""
    if value is None or not str(value).strip():
        return None
    value = str(value).strip()
    if len(value) > MAX_URL or not value.lower().startswith(("http://", "https://")) or not value.isprintable():
        raise ValueError("url is the event's web page, starting http:// or https://")
    return value
