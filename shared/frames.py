"""What a FITS frame's header says about the exposure: :func:`frame_header`.

Pure: an astropy ``Header`` (and the image's shape) in, a :class:`FrameHeader`
out. Every value says where it came from (``from_header``: field -> the
keyword or rule that gave it), so the answer to an upload can tell the
observer what was read from the header and what the form gave
(:func:`merge_form`: the form wins where both give a value).

Conventions followed, as observatories write them:

* ``MJD-OBS`` and ``DATE-OBS`` (+ ``TIME-OBS`` or ``UT`` when ``DATE-OBS`` is a
  date alone) are the *start* of the exposure (FITS standard, section 9.2);
  mid-exposure adds ``EXPTIME / 2``. ``MJD-MID``, when present, is already
  mid-exposure.
* Exposure in seconds: ``EXPTIME``, else ``EXPOSURE`` (a few cameras), else ``ITIME``.
* Site: ``OBSERVAT`` (name), ``SITELAT``/``SITELONG`` or ``LAT-OBS``/``LONG-OBS``
  (degrees, or sexagesimal ``+37:13:25``), east-positive longitude.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:  # astropy is imported where a header is read: the message contract imports this module
    from astropy.io.fits import Header

#: seconds in a day
_DAY_S = 86400.0
#: the MJD range a real exposure can have (1858 to ~2132)
_MJD_RANGE = (0.0, 100_000.0)


class FrameSite(BaseModel):
    """Where the frame was taken, as far as the header says: name, latitude and east longitude (deg)."""

    name: str | None = None
    lat: float | None = None
    lon: float | None = None


class FrameHeader(BaseModel):
    """A frame's exposure, read from its header (None where the header is silent).

    ``mjd``: mid-exposure MJD (UTC); ``exptime`` s; ``gain`` e-/ADU;
    ``saturate`` ADU; ``naxis1``/``naxis2`` px (width, height).
    ``from_header``: field name -> the keyword (or rule) that gave it,
    e.g. ``{"mjd": "DATE-OBS+EXPTIME/2", "exptime": "EXPTIME"}``.
    """

    mjd: float | None = None
    exptime: float | None = Field(None, ge=0)
    filter: str | None = None
    gain: float | None = None
    saturate: float | None = None
    airmass: float | None = None
    site: FrameSite | None = None
    has_wcs: bool = False
    naxis1: int = 0
    naxis2: int = 0
    from_header: dict[str, str] = Field(default_factory=dict)


def _number(header: Header, *keys: str, positive: bool = False) -> tuple[float | None, str | None]:
    """The first keyword of ``keys`` holding a finite number (numeric strings too)."""
    for key in keys:
        value = header.get(key)
        if value is None or isinstance(value, bool):
            continue
        try:
            number = float(str(value).strip().replace(",", ".")) if isinstance(value, str) else float(value)
        except ValueError:
            continue
        if math.isfinite(number) and (number > 0 or not positive):
            return number, key
    return None, None


def _text(header: Header, *keys: str) -> tuple[str | None, str | None]:
    for key in keys:
        value = header.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:80], key
    return None, None


def _angle(header: Header, keys: tuple[str, ...], unit: str) -> tuple[float | None, str | None]:
    """Degrees from a number or a sexagesimal string (``unit``: how a sexagesimal one is read)."""
    from astropy.coordinates import Angle

    for key in keys:
        value = header.get(key)
        if value is None or isinstance(value, bool):
            continue
        try:
            if isinstance(value, str):
                text = value.strip()
                number = float(text) if _is_float(text) else float(Angle(text, unit=unit).degree)
            else:
                number = float(value)
        except (ValueError, TypeError):
            continue
        if math.isfinite(number):
            return number, key
    return None, None


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _start_mjd(header: Header) -> tuple[float | None, str | None, bool]:
    """(MJD, the keyword(s) it came from, whether it is already mid-exposure)."""
    from astropy.time import Time

    mid, key = _number(header, "MJD-MID")
    if mid is not None and _MJD_RANGE[0] < mid < _MJD_RANGE[1]:
        return mid, key, True
    mjd, key = _number(header, "MJD-OBS", "MJD_OBS")
    if mjd is not None and _MJD_RANGE[0] < mjd < _MJD_RANGE[1]:
        return mjd, key, False
    date = header.get("DATE-OBS")
    if not isinstance(date, str) or not date.strip():
        return None, None, False
    text, source = date.strip(), "DATE-OBS"
    if "T" not in text:
        for time_key in ("TIME-OBS", "UT", "UTC-OBS", "UTSTART"):
            clock = header.get(time_key)
            if isinstance(clock, str) and clock.strip():
                text, source = f"{text}T{clock.strip()}", f"DATE-OBS+{time_key}"
                break
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mjd = float(Time(text, format="isot", scale="utc").mjd)
    except ValueError:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mjd = float(Time(text, scale="utc").mjd)
        except ValueError:
            return None, None, False
    if not (_MJD_RANGE[0] < mjd < _MJD_RANGE[1]):
        return None, None, False
    return mjd, source, False


def _has_celestial_wcs(header: Header) -> bool:
    from astropy.wcs import WCS

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(WCS(header, naxis=2).has_celestial)
    except Exception:  # an unreadable WCS is no WCS: the frame is solved, or refused with why
        return False


def frame_header(header: Header, shape: tuple[int, ...] | None = None) -> FrameHeader:
    """Read a frame's exposure from its header.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The image HDU's header (a tile-compressed image's *image* header).
    shape : tuple of int, optional
        The image's numpy shape (rows, columns); NAXIS2, NAXIS1 when omitted.

    Returns
    -------
    FrameHeader
        ``mjd`` is mid-exposure (start + EXPTIME/2 when the header gives the start).
    """
    sources: dict[str, str] = {}
    values: dict[str, Any] = {}
    exptime, key = _number(header, "EXPTIME", "EXPOSURE", "ITIME", "EXP_TIME")
    if exptime is not None and exptime >= 0:
        values["exptime"], sources["exptime"] = exptime, str(key)
    start, key, is_mid = _start_mjd(header)
    if start is not None:
        if is_mid or exptime is None:
            values["mjd"], sources["mjd"] = start, str(key)
        else:
            values["mjd"], sources["mjd"] = start + exptime / 2.0 / _DAY_S, f"{key}+{sources['exptime']}/2"
    for name, keys, positive in (
        ("gain", ("GAIN", "EGAIN", "CCDGAIN"), True),
        ("saturate", ("SATURATE", "SATLEVEL", "MAXLIN"), True),
        ("airmass", ("AIRMASS", "SECZ"), True),
    ):
        number, key = _number(header, *keys, positive=positive)
        if number is not None:
            values[name], sources[name] = number, str(key)
    band, key = _text(header, "FILTER", "FILTER1", "FILTNAME", "BAND")
    if band is not None:
        values["filter"], sources["filter"] = band, str(key)
    site_name, name_key = _text(header, "OBSERVAT", "TELESCOP")
    lat, lat_key = _angle(header, ("SITELAT", "LAT-OBS", "OBSLAT", "LATITUDE"), "deg")
    lon, lon_key = _angle(header, ("SITELONG", "LONG-OBS", "OBSLONG", "LONGITUD"), "deg")
    if lat is not None and not -90.0 <= lat <= 90.0:
        lat, lat_key = None, None
    if site_name is not None or lat is not None or lon is not None:
        values["site"] = FrameSite(name=site_name, lat=lat, lon=lon)
        sources["site"] = "+".join(k for k in (name_key, lat_key, lon_key) if k)
    rows, cols = (shape[-2], shape[-1]) if shape is not None and len(shape) >= 2 else (0, 0)
    naxis1 = cols or _int(header.get("NAXIS1"))
    naxis2 = rows or _int(header.get("NAXIS2"))
    return FrameHeader(**values, has_wcs=_has_celestial_wcs(header), naxis1=naxis1, naxis2=naxis2, from_header=sources)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def merge_form(frame: FrameHeader, *, mjd: float | None, exptime: float | None) -> tuple[FrameHeader, dict[str, str]]:
    """The form's MJD and exposure time where it gives them (the form wins); what still came from the header.

    Returns the frame with the form's values in place and ``from_header``
    restricted to what the answer took from the header.
    """
    taken = dict(frame.from_header)
    update: dict[str, Any] = {}
    if mjd is not None:
        update["mjd"] = mjd
        taken.pop("mjd", None)
    if exptime is not None:
        update["exptime"] = exptime
        taken.pop("exptime", None)
    merged = frame.model_copy(update=update | {"from_header": taken})
    return merged, taken
