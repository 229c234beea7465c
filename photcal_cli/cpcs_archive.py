"""Reading the CPCS archive: the light curves CPCS published, as plain data (no database here).

What CPCS served, and what this reads:

- ``get_alert_lc_data``: one JSON object of parallel arrays ``mjd``, ``mag``,
  ``magerr``, ``caliberr``, ``filter`` (the band), ``catalog`` (the survey),
  ``observatory``, ``id`` (the CPCS followup id). A non-detection has
  ``magerr = -1`` and its limit in ``mag`` (services/lightcurve/cpcs.py serves
  photcal's own points so); a negative or null ``magerr``, or a true value in a
  parallel ``limit``/``is_limit``/``upper_limit`` array, is a limit here.
  ``mag_err`` is read where ``magerr`` is missing.
- the per-alert files that archive holds: one such object per alert, named
  ``alert-<CPCS alert id>.json`` (the way harvesters cached
  ``get_alert_lc_data?alert_id=N``) beside the ``list_of_alerts`` answer
  (a JSON list of ``{"id", "ivorn", "ra", "dec", ...}``, the index), or an
  object carrying its alert (``ivorn``, ``alert_name``, ``name``, ``ra``, ``dec``);
- one file of many alerts: an object keyed by alert name or ivorn whose values
  are such objects, or a list of such objects each naming its alert;
- photcal's own light curve JSON (``{"ivorn", "ra", "dec", "points": [...]}``,
  a limit with ``mag_err`` null and ``limit_mag``).

Bands: CPCS's ``catalog``/``filter`` are mapped to photcal's survey and band
names (:func:`map_band`: ``Gaia`` is ``GAIA``, APASS ``r`` is ``r'``); a survey
or band photcal does not know is kept as written and reported.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from shared.contracts.surveys import SURVEYS, get_survey

#: CPCS marks a non-detection with this magerr (its limit is in ``mag``); any negative value is read so
NON_DETECTION_MAGERR = -1.0
#: the parallel arrays of a get_alert_lc_data answer; ``mjd``, ``mag``, ``magerr`` and ``observatory`` are required
LC_ARRAYS = ("mjd", "mag", "magerr", "caliberr", "filter", "catalog", "observatory", "id")
REQUIRED_ARRAYS = ("mjd", "mag", "magerr", "observatory")
#: parallel arrays of flags some exports carry beside magerr = -1: a true value is a limit
LIMIT_FLAG_ARRAYS = ("limit", "is_limit", "upper_limit", "nondetection")
#: keys that name the alert a light curve belongs to, in the order they are trusted
ALERT_KEYS = ("ivorn", "alert_ivorn", "alert_name", "name", "alert")
#: survey names CPCS and its clients wrote -> photcal's (case-insensitive); others go through get_survey
SURVEY_ALIASES = {
    "gaia": "GAIA",
    "gaiadr2": "GAIA",
    "gaiadr3": "GAIA",
    "gaiasp": "GaiaSP",
    "gaiasynphot": "GaiaSP",
    "ps1": "PS1",
    "panstarrs": "PS1",
    "panstarrs1": "PS1",
    "ps": "PS1",
    "apass": "APASS",
    "apassdr9": "APASS",
    "sdss": "SDSS",
    "sdssdr12": "SDSS",
}
#: an MJD outside this range is not a date of CCD photometry (a JD written as MJD, a 0 for "unknown")
MJD_RANGE = (15000.0, 100000.0)
#: the file name harvesters gave get_alert_lc_data?alert_id=N
_ALERT_FILE = re.compile(r"alert[-_]?0*(\d+)\.json(\.gz)?$", re.IGNORECASE)


class ArchiveError(ValueError):
    """A document that is not a CPCS light curve (or an index): nothing of it can be read."""


@dataclass(frozen=True)
class ArchivePoint:
    """One CPCS point, read: a magnitude (``mag``, ``mag_err``) or a limit (``limit_mag``), in magnitudes."""

    #: its place in the light curve as written (0-based), for messages
    index: int
    mjd: float
    observatory: str
    mag: float | None
    mag_err: float | None
    limit_mag: float | None
    detected: bool
    #: the calibration's error CPCS served as caliberr, mag (clients add it in quadrature); None if absent
    caliberr: float | None
    #: photcal's survey and band names where known, else as CPCS wrote them
    survey: str | None
    filter: str | None
    #: the CPCS followup id (an int as CPCS served it; text if the file had text)
    cpcs_id: int | str | None
    #: the survey/band as written, when photcal has no such band (reported, kept as written)
    unknown_band: str | None = None

    @property
    def label(self) -> str:
        ident = f" (id {self.cpcs_id})" if self.cpcs_id is not None else ""
        return f"point {self.index}{ident} at MJD {self.mjd:.5f}"


@dataclass
class ArchiveLightcurve:
    """The points of one alert as one document held them, and what names the alert."""

    #: where it was read (a file, a URL, a key in a file), for messages
    source: str
    points: list[ArchivePoint]
    #: the alert's ivorn or name as the document gave it (or None: the index or --alert says)
    alert_key: str | None = None
    #: the CPCS alert id (from the file name or an alert_id= URL), looked up in the index
    cpcs_alert_id: int | None = None
    #: the alert's position where the document gives one, decimal degrees
    ra: float | None = None
    dec: float | None = None
    #: points that could not be read, with why
    refused: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class IndexEntry:
    """One alert of CPCS's ``list_of_alerts`` answer."""

    cpcs_alert_id: int
    ivorn: str
    name: str | None
    ra: float | None
    dec: float | None


@dataclass
class ArchiveDocument:
    """What one file or URL held: light curves, index entries, or why nothing could be read."""

    source: str
    lightcurves: list[ArchiveLightcurve] = field(default_factory=list)
    index: list[IndexEntry] = field(default_factory=list)


# --------------------------------------------------------------------------
# bands
# --------------------------------------------------------------------------


def map_band(catalog: Any, band: Any) -> tuple[str | None, str | None, bool]:
    """CPCS's (catalog, filter) as photcal's (survey, band, known).

    ``known`` is False for a survey photcal does not serve (``2MASS``, ``USNO-B1``)
    or a band the survey lacks: both are then returned stripped, as written.
    APASS's ``r``/``g``/``i`` are ``r'``/``g'``/``i'``, as forceFilter reads them.
    """
    cat = _text(catalog)
    name = _text(band)
    if cat is None and name is None:
        return None, None, False
    survey = None
    if cat is not None:
        squashed = re.sub(r"[\s_\-.]+", "", cat).lower()
        alias = SURVEY_ALIASES.get(squashed)
        try:
            survey = SURVEYS[alias] if alias else get_survey(cat)
        except KeyError:
            survey = None
    if survey is None or name is None:
        return cat, name, False
    # single letters are case-sensitive, as observers write them: R is Cousins R, r (r') Sloan r
    for candidate in (name, name.rstrip("'") + "'"):
        if candidate in survey.band_names:
            return survey.name, candidate, True
    if len(name) > 1:  # "bp", "Rp": Gaia's BP, RP
        folded = [b for b in survey.band_names if b.lower() == name.lower()]
        if len(folded) == 1:
            return survey.name, folded[0], True
    return survey.name, name, False


# --------------------------------------------------------------------------
# documents
# --------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _number(value: Any) -> float | None:
    """A finite float from a number or its text; None for null, empty, NaN, not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "t", "y"}
    return bool(value)


def _cpcs_id(value: Any) -> int | str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value).strip()
    if not text:
        return None
    return int(text) if text.isdigit() else text


def cpcs_alert_id_of(name: str) -> int | None:
    """The CPCS alert id a harvested file's name carries (``alert-07.json`` -> 7), or None."""
    found = _ALERT_FILE.search(name.rsplit("/", 1)[-1])
    return int(found.group(1)) if found else None


def _point(
    i: int,
    *,
    mjd: Any,
    mag: Any,
    magerr: Any,
    caliberr: Any,
    band: Any,
    catalog: Any,
    observatory: Any,
    ident: Any,
    limit_flag: bool,
    limit_mag: Any = None,
) -> ArchivePoint:
    """One point; raises ValueError saying what is wrong with it."""
    day = _number(mjd)
    if day is None or not MJD_RANGE[0] < day < MJD_RANGE[1]:
        raise ValueError(f"point {i}: mjd {mjd!r} is not an MJD between {MJD_RANGE[0]:g} and {MJD_RANGE[1]:g}")
    obs = _text(observatory)
    if obs is None:
        raise ValueError(f"point {i} at MJD {day:.5f}: no observatory")
    value = _number(mag)
    err = _number(magerr)
    limit = limit_flag or err is None or err < 0
    survey, band_name, known = map_band(catalog, band)
    unknown = None if known or (survey is None and band_name is None) else f"{band_name or '?'}({survey or '?'})"
    common = dict(
        index=i,
        mjd=day,
        observatory=obs,
        caliberr=_number(caliberr),
        survey=survey,
        filter=band_name,
        cpcs_id=_cpcs_id(ident),
        unknown_band=unknown,
    )
    if limit:
        bound = _number(limit_mag) if limit_mag is not None else value
        if bound is None:
            raise ValueError(f"point {i} at MJD {day:.5f}: a non-detection without its limit in mag")
        return ArchivePoint(mag=None, mag_err=None, limit_mag=bound, detected=False, **common)  # type: ignore[arg-type]
    if value is None:
        raise ValueError(f"point {i} at MJD {day:.5f}: mag {mag!r} is not a magnitude")
    return ArchivePoint(mag=value, mag_err=err, limit_mag=_number(limit_mag), detected=True, **common)  # type: ignore[arg-type]


def _parallel(doc: dict[str, Any], source: str) -> ArchiveLightcurve:
    """A get_alert_lc_data object (parallel arrays) as a light curve; ArchiveError if the arrays do not align."""
    arrays = dict(doc)
    if "magerr" not in arrays and "mag_err" in arrays:
        arrays["magerr"] = arrays["mag_err"]
    missing = [k for k in REQUIRED_ARRAYS if k not in arrays]
    if missing:
        raise ArchiveError(f"{source}: no {', '.join(missing)} array: not a get_alert_lc_data answer")
    present = [k for k in (*LC_ARRAYS, *LIMIT_FLAG_ARRAYS) if k in arrays and arrays[k] is not None]
    for key in present:
        if not isinstance(arrays[key], list):
            raise ArchiveError(f"{source}: {key} is not an array")
    lengths = {k: len(arrays[k]) for k in present}
    if len(set(lengths.values())) > 1:
        told = ", ".join(f"{k} {n}" for k, n in lengths.items())
        raise ArchiveError(f"{source}: the arrays differ in length ({told}): points cannot be paired")
    n = lengths["mjd"]

    def column(key: str) -> list[Any]:
        return arrays[key] if key in present else [None] * n

    flags = [any(_flag(arrays[k][i]) for k in LIMIT_FLAG_ARRAYS if k in present) for i in range(n)]
    lc = _with_alert(ArchiveLightcurve(source=source, points=[]), doc)
    rows = zip(
        column("mjd"), column("mag"), column("magerr"), column("caliberr"), column("filter"),
        column("catalog"), column("observatory"), column("id"), flags,
    )  # fmt: skip
    for i, (mjd, mag, magerr, caliberr, band, catalog, obs, ident, flag) in enumerate(rows):
        try:
            lc.points.append(
                _point(
                    i,
                    mjd=mjd,
                    mag=mag,
                    magerr=magerr,
                    caliberr=caliberr,
                    band=band,
                    catalog=catalog,
                    observatory=obs,
                    ident=ident,
                    limit_flag=flag,
                )  # fmt: skip
            )
        except ValueError as exc:
            lc.refused.append(f"{source}: {exc}")
    return lc


def _rows(doc: dict[str, Any], source: str) -> ArchiveLightcurve:
    """photcal's own light curve JSON (``points`` of dicts) as a light curve."""
    points = doc["points"]
    if not isinstance(points, list):
        raise ArchiveError(f"{source}: points is not a list")
    lc = _with_alert(ArchiveLightcurve(source=source, points=[]), doc)
    for i, p in enumerate(points):
        if not isinstance(p, dict):
            lc.refused.append(f"{source}: point {i} is not an object")
            continue
        err = p.get("magerr", p.get("mag_err"))
        limit = p.get("detected") is False or (err is None and p.get("limit_mag") is not None)
        try:
            lc.points.append(
                _point(
                    i,
                    mjd=p.get("mjd"),
                    mag=p.get("mag"),
                    magerr=err,
                    caliberr=p.get("caliberr", p.get("zeropoint_err")),
                    band=p.get("filter"),
                    catalog=p.get("catalog", p.get("survey")),
                    observatory=p.get("observatory"),
                    ident=p.get("id", p.get("followup_id")),
                    limit_flag=limit,
                    limit_mag=p.get("limit_mag"),
                )  # fmt: skip
            )
        except ValueError as exc:
            lc.refused.append(f"{source}: {exc}")
    return lc


def _with_alert(lc: ArchiveLightcurve, doc: dict[str, Any]) -> ArchiveLightcurve:
    for key in ALERT_KEYS:
        text = _text(doc.get(key)) if isinstance(doc.get(key), (str, int)) else None
        if text:
            lc.alert_key = text
            break
    alert_id = doc.get("alert_id")
    if isinstance(alert_id, int) and not isinstance(alert_id, bool):
        lc.cpcs_alert_id = alert_id
    lc.ra, lc.dec = _number(doc.get("ra")), _number(doc.get("dec"))
    return lc


def _is_lightcurve(value: Any) -> bool:
    return isinstance(value, dict) and ("mjd" in value or isinstance(value.get("points"), list))


def _lightcurve(doc: dict[str, Any], source: str) -> ArchiveLightcurve:
    return _rows(doc, source) if "mjd" not in doc else _parallel(doc, source)


def _index_entry(item: dict[str, Any]) -> IndexEntry | None:
    ident, ivorn = _cpcs_id(item.get("id")), _text(item.get("ivorn"))
    if not isinstance(ident, int) or ivorn is None:
        return None
    return IndexEntry(ident, ivorn, _text(item.get("name")), _number(item.get("ra")), _number(item.get("dec")))


def read_document(data: bytes | str, source: str) -> ArchiveDocument:
    """Everything one file or URL holds (see the module's docstring for the shapes); ArchiveError if none fits.

    ``source`` is its file name or URL: ``alert-<N>.json`` and ``alert_id=N`` name the CPCS
    alert, ``alert_name=X`` the alert, of a single light curve without an alert of its own.
    """
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArchiveError(f"{source}: not JSON ({exc})") from None
    out = ArchiveDocument(source=source)
    if _is_lightcurve(parsed):
        lc = _lightcurve(parsed, source)
        hint_name, hint_id = _hints(source)
        lc.alert_key = lc.alert_key or hint_name
        lc.cpcs_alert_id = lc.cpcs_alert_id if lc.cpcs_alert_id is not None else hint_id
        out.lightcurves.append(lc)
    elif isinstance(parsed, list) and parsed and all(isinstance(x, dict) for x in parsed):
        if all(_is_lightcurve(x) for x in parsed):
            out.lightcurves.extend(_lightcurve(x, f"{source}[{i}]") for i, x in enumerate(parsed))
        elif all("ivorn" in x and "id" in x for x in parsed):  # list_of_alerts
            out.index.extend(e for e in (_index_entry(x) for x in parsed) if e is not None)
        else:
            raise ArchiveError(f"{source}: a list of neither light curves nor list_of_alerts' alerts")
    elif isinstance(parsed, dict) and parsed and all(_is_lightcurve(v) for v in parsed.values()):
        for key, value in parsed.items():  # many alerts keyed by name or ivorn
            lc = _lightcurve(value, f"{source}[{key}]")
            lc.alert_key = lc.alert_key or _text(key)
            out.lightcurves.append(lc)
    elif isinstance(parsed, list) and not parsed:
        pass  # an empty list_of_alerts or an empty archive: nothing to import
    else:
        raise ArchiveError(
            f"{source}: not a get_alert_lc_data answer (parallel arrays mjd, mag, magerr, ..., observatory), "
            "an object of them keyed by alert, or list_of_alerts"
        )
    return out


def _hints(source: str) -> tuple[str | None, int | None]:
    """(alert name, CPCS alert id) a URL's query (``alert_name=``, ``alert_id=``) or a file's name gives."""
    if "://" in source:
        query = parse_qs(urlsplit(source).query)
        name = query.get("alert_name", [""])[0]
        ident = query.get("alert_id", [""])[0].strip()
        return _text(name), int(ident) if ident.isdigit() else None
    return None, cpcs_alert_id_of(source)


# --------------------------------------------------------------------------
# the observatory map
# --------------------------------------------------------------------------

_MAP_HEADERS = {"cpcs", "cpcs_name", "cpcs_observatory", "old", "old_name", "observatory", "name", "from"}


def read_observatory_map(text: str, source: str = "the observatory map") -> dict[str, str]:
    """``old CPCS observatory name -> photcal observatory id or name``, from JSON or CSV.

    JSON: an object ``{"old name": "photcal name or id"}``. CSV: two columns, old
    then new; ``#`` starts a comment line; a first row ``cpcs,photcal`` (or
    ``old,new``...) is a header. ValueError says what is wrong.
    """
    stripped = text.lstrip("\ufeff").strip()
    if stripped.startswith("{"):
        try:
            parsed = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: not JSON ({exc})") from None
        if not all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in parsed.items()):
            raise ValueError(f'{source}: a JSON map is {{"old CPCS name": "photcal observatory name or id"}}')
        return {k.strip(): v.strip() for k, v in parsed.items()}
    out: dict[str, str] = {}
    rows = [r for r in csv.reader(io.StringIO(stripped)) if r and any(c.strip() for c in r)]
    first = True
    for n, row in enumerate(rows, 1):
        cells = [c.strip() for c in row]
        if cells[0].startswith("#"):
            continue
        if first and cells[0].lower() in _MAP_HEADERS:
            first = False
            continue
        first = False
        if len(cells) < 2 or not cells[0] or not cells[1]:
            raise ValueError(f"{source} line {n}: two columns, the old CPCS name and the photcal observatory")
        if cells[0] in out and out[cells[0]] != cells[1]:
            raise ValueError(f"{source} line {n}: {cells[0]!r} is mapped twice ({out[cells[0]]!r}, {cells[1]!r})")
        out[cells[0]] = cells[1]
    return out


def map_key(name: str) -> str:
    """How CPCS observatory names are compared: case and runs of spaces ignored."""
    return " ".join(name.split()).casefold()


def unknown_bands(points: Iterable[ArchivePoint]) -> dict[str, int]:
    """``"R(USNO)" -> how many points`` of the bands photcal does not know, kept as written."""
    out: dict[str, int] = {}
    for p in points:
        if p.unknown_band:
            out[p.unknown_band] = out.get(p.unknown_band, 0) + 1
    return out
