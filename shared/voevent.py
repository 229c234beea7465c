"""A VOEvent 2.0 document read into the event it announces (pure: bytes in, fields out).

What photcal takes from it (IVOA VOEvent 2.0, https://www.ivoa.net/documents/VOEvent/):

- the event's ivorn: the root's ``ivorn`` attribute;
- its position: ``WhereWhen/ObsDataLocation/ObservationLocation/AstroCoords/Position2D`` (``unit="deg"``),
  ``Value2/C1`` right ascension and ``C2`` declination, decimal degrees, ICRS or FK5 (J2000) (a
  galactic or ecliptic system is refused: photcal stores RA and Dec);
- its page: the first ``Reference`` whose ``uri`` is http(s), else the first http(s) URL in a
  ``Description``;
- ``Who/Date`` (when the document was written), the ``role`` and the first ``Position2D``'s
  ``Error2Radius`` (degrees) are kept with the event.

A document with a DOCTYPE is refused: a VOEvent has none, and entity declarations are how XML is
made to expand without bound or reach files.
"""

from __future__ import annotations

import contextlib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from shared.contracts.errors import ErrorCode
from shared.errors import BadInput

_URL = re.compile(r"https?://[^\s<>\"']+")
#: coordinate systems whose Position2D is RA and Dec (STC's ids: UTC-FK5-GEO, UTC-ICRS-TOPO, TT-ICRS-...)
_EQUATORIAL = ("ICRS", "FK5")


@dataclass(frozen=True)
class VoEventFields:
    """The event a VOEvent announces: ivorn, position (decimal degrees), web page, and what is kept beside."""

    ivorn: str
    ra: float
    dec: float
    url: str | None
    extra: dict[str, Any] = field(default_factory=dict)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(element: ET.Element, *path: str) -> ET.Element | None:
    """The first descendant along ``path`` (local names, whatever the namespace), one level at a time."""
    found: ET.Element | None = element
    for name in path:
        if found is None:
            return None
        found = next((child for child in found if _local(child.tag) == name), None)
    return found


def _text(element: ET.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _incomplete(what: str) -> BadInput:
    return BadInput(f"the VOEvent has no {what}", code=ErrorCode.VOEVENT_INCOMPLETE)


def parse_voevent(document: bytes) -> VoEventFields:
    """The event ``document`` announces. 400 ``bad_voevent``: not XML, not a VOEvent 2.0, a DOCTYPE;
    400 ``voevent_incomplete``: no ivorn, or no position in decimal degrees of RA and Dec."""
    if b"<!DOCTYPE" in document.upper() or b"<!ENTITY" in document.upper():
        raise BadInput("a VOEvent has no DOCTYPE or entity declarations: remove them", code=ErrorCode.BAD_VOEVENT)
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise BadInput(
            f"the body is not well-formed XML ({exc}): send the VOEvent document", code=ErrorCode.BAD_VOEVENT
        ) from None
    if _local(root.tag) != "VOEvent":
        raise BadInput(
            f"the document's root is <{_local(root.tag)[:50]}>, not <VOEvent>: send a VOEvent 2.0 document",
            code=ErrorCode.BAD_VOEVENT,
        )
    version = root.get("version", "")
    if version != "2.0":
        raise BadInput(f"VOEvent version {version[:20]!r}: only 2.0 is read", code=ErrorCode.BAD_VOEVENT)
    ivorn = (root.get("ivorn") or "").strip()
    if not ivorn:
        raise _incomplete('ivorn attribute: <VOEvent ivorn="ivo://...">')

    coords = _find(root, "WhereWhen", "ObsDataLocation", "ObservationLocation", "AstroCoords")
    position = _find(coords, "Position2D") if coords is not None else None
    if coords is None or position is None:
        raise _incomplete("position: WhereWhen/ObsDataLocation/ObservationLocation/AstroCoords/Position2D")
    system = coords.get("coord_system_id", "")
    if system and not any(name in system.upper() for name in _EQUATORIAL):
        raise BadInput(
            f"the position is in {system[:50]}: photcal takes RA and Dec (ICRS or FK5), decimal degrees",
            code=ErrorCode.VOEVENT_INCOMPLETE,
        )
    unit = position.get("unit", "deg")
    if unit != "deg":
        raise BadInput(f"the position's unit is {unit[:20]!r}: give it in degrees", code=ErrorCode.VOEVENT_INCOMPLETE)
    try:
        ra = float(_text(_find(position, "Value2", "C1")))
        dec = float(_text(_find(position, "Value2", "C2")))
    except ValueError:
        raise _incomplete("position: Position2D/Value2 needs C1 (RA) and C2 (Dec), decimal degrees") from None

    url = next(
        (
            uri
            for element in root.iter()
            if _local(element.tag) == "Reference"
            and (uri := (element.get("uri") or "").strip()).startswith(("http://", "https://"))
        ),
        None,
    )
    if url is None:
        described = (_URL.search(element.text or "") for element in root.iter() if _local(element.tag) == "Description")
        url = next((m.group(0).rstrip(".,;)") for m in described if m), None)

    extra: dict[str, Any] = {"source": "voevent", "voevent_role": root.get("role", "")}
    if date := _text(_find(root, "Who", "Date")):
        extra["voevent_date"] = date
    if error := _text(_find(position, "Error2Radius")):
        with contextlib.suppress(ValueError):  # an unreadable error radius is left out, not a refusal
            extra["position_error_deg"] = float(error)
    return VoEventFields(ivorn=ivorn, ra=ra, dec=dec, url=url, extra=extra)
