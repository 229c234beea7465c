"""Sky positions as observers type them: decimal degrees or sexagesimal, and a cone "RA Dec [radius]".

Pure functions (no astropy: a page parses them on every search). RA in sexagesimal is hours
(``12:34:56.7`` or ``12h34m56.7s``), Dec is degrees (``-12:34:56`` or ``-12d34m56s``); a decimal
number is degrees for both. A decimal comma is read as a point (what some keyboards type).
"""

from __future__ import annotations

import math
import re

#: hours/degrees, minutes, seconds separated by ":", spaces or the letters h/d/m/s (and ° ' ")
_SEXAGESIMAL = re.compile(
    r"""^\s*(?P<sign>[+\-−]?)\s*(?P<a>\d{1,3})\s*(?:[:hd°\s])\s*(?P<b>\d{1,2})\s*(?:[:m'′\s])\s*"""
    r"""(?P<c>\d{1,2}(?:\.\d*)?)\s*[s"″]?\s*$""",
    re.IGNORECASE,
)
_DECIMAL = re.compile(r"^\s*[+\-−]?(\d+(\.\d*)?|\.\d+)([eE][+\-]?\d+)?\s*$")


def _decimal(text: str) -> float | None:
    cleaned = text.replace(",", ".").replace("−", "-").strip()
    if not _DECIMAL.match(cleaned):
        return None
    number = float(cleaned)
    return number if math.isfinite(number) else None


def _sexagesimal(text: str) -> tuple[float, float] | None:
    """(sign, unsigned value in the first field's unit) of ``a:b:c``; None if it is not one."""
    m = _SEXAGESIMAL.match(text.replace(",", "."))
    if not m:
        return None
    a, b, c = int(m["a"]), int(m["b"]), float(m["c"])
    if b >= 60 or c >= 60:
        return None
    sign = -1.0 if m["sign"] in ("-", "−") else 1.0
    return sign, a + b / 60 + c / 3600


def _angle(value: str | float | int, *, hours: bool) -> float | None:
    """Degrees from a number, a decimal text or sexagesimal text (hours when ``hours``, where a sign
    is refused: a right ascension has none); None if none of these, or not finite."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number: float | None = float(value)
    else:
        number = _decimal(value)
        if number is None:
            parsed = _sexagesimal(value)
            if parsed is None or (hours and parsed[0] < 0):
                return None
            number = parsed[1] * 15.0 if hours else parsed[0] * parsed[1]
    return number if number is not None and math.isfinite(number) else None


def parse_ra(value: str | float | int) -> float | None:
    """Right ascension in degrees, 0 <= RA < 360, from degrees or sexagesimal hours; None if neither."""
    number = _angle(value, hours=True)
    return number if number is not None and 0.0 <= number < 360.0 else None


def parse_dec(value: str | float | int) -> float | None:
    """Declination in degrees, -90 <= Dec <= 90, from degrees or sexagesimal degrees; None if neither."""
    number = _angle(value, hours=False)
    return number if number is not None and -90.0 <= number <= 90.0 else None


#: a cone's radius when the search gives none, degrees (a few arcminutes: an alert and its neighbours)
DEFAULT_CONE_RADIUS_DEG = 0.05
MAX_CONE_RADIUS_DEG = 10.0


def parse_cone(text: str) -> tuple[float, float, float] | None:
    """``"RA Dec [radius]"`` as (ra, dec, radius), all degrees; None when the text is not a position.

    RA and Dec each in degrees or sexagesimal (``"12:34:56.7 -12:34:56"``, ``"188.7 -12.58 0.1"``,
    ``"12h34m56.7s -12d34m56s 0.5"``); the radius is decimal degrees (default
    :data:`DEFAULT_CONE_RADIUS_DEG`, at most :data:`MAX_CONE_RADIUS_DEG`). A comma between the
    parts is allowed (``"188.7, -12.58"``).
    """
    parts = [p for p in re.split(r"[\s;]+|,(?=\s)|,(?=[+\-−])", text.strip()) if p]
    if len(parts) == 6 or len(parts) == 7:  # "12 34 56.7 -12 34 56 [r]": space-separated sexagesimal
        parts = [" ".join(parts[:3]), " ".join(parts[3:6]), *parts[6:]]
    if len(parts) not in (2, 3):
        return None
    ra, dec = parse_ra(parts[0]), parse_dec(parts[1])
    if ra is None or dec is None:
        return None
    radius = DEFAULT_CONE_RADIUS_DEG
    if len(parts) == 3:
        given = _decimal(parts[2])
        if given is None or not 0.0 < given <= MAX_CONE_RADIUS_DEG:
            return None
        radius = given
    return ra, dec, radius


def separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Angular distance between two positions, degrees (haversine: exact at small separations)."""
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = math.sin((d2 - d1) / 2) ** 2 + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))
