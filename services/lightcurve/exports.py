"""Light curves that describe themselves: VOTable, ECSV and the AAVSO Extended File Format (issue 20).

The JSON and CSV of ``/api/v1/lightcurves/{ivorn}`` are plain rows; these exports carry what a
reader needs to use the numbers without asking: units, UCDs, the time convention (MJD, UTC,
mid-exposure), the magnitude system of every point (from ``Band.system`` in
shared/contracts/surveys.py, the one place it is said), the calibration error (``zeropoint_err``,
to add in quadrature to ``mag_err``), how a limit was found, the observatory, and the datapoint's id
and page. One table builder (:func:`lightcurve_table`) serves the single and the bulk export; the
writers only translate it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy import units as u
from astropy.io.votable.tree import Info, Param, Resource, TimeSys, VOTableFile
from astropy.io.votable.tree import TableElement as VOTableElement
from astropy.table import MaskedColumn, Table

from shared.contracts.surveys import SURVEYS, get_survey
from shared.provenance import software_version

#: ``?format=`` values of one light curve, and of the bulk export (AAVSO files are one star each)
FORMATS = ("json", "csv", "votable", "ecsv", "aavso")
BULK_FORMATS = ("json", "csv", "votable", "ecsv")
#: alerts one bulk request may ask for: a few MB of table at most
MAX_BULK_ALERTS = 200

CONTENT_TYPES = {
    "votable": "application/x-votable+xml",
    "ecsv": "text/plain",
    "aavso": "text/plain",
}
EXTENSIONS = {"votable": "vot", "ecsv": "ecsv", "aavso": "txt", "csv": "csv", "json": "json"}

TIME_CONVENTION = "MJD (UTC) of mid-exposure, days"
CALIBRATION_ERROR = "zeropoint_err: the calibration's (zero point's) error, mag; add it in quadrature to mag_err"

#: Johnson-Cousins bands, which the UCD vocabulary names (em.opt.U ... em.opt.I); Sloan and Gaia bands it does not
_UCD_BANDS = frozenset("UBVRI")


@dataclass(frozen=True)
class AlertCurve:
    """One alert's light curve as the exports take it: the alert (``ra``/``dec`` in degrees) and its
    datapoint documents, deleted ones included (they are left out here)."""

    ivorn: str
    name: str
    ra: float
    dec: float
    docs: Sequence[dict[str, Any]]

    @property
    def alert(self) -> dict[str, Any]:
        return {"ivorn": self.ivorn, "name": self.name, "ra": self.ra, "dec": self.dec}


def magnitude_system(survey: str | None, band: str | None) -> str:
    """``"Vega"`` or ``"AB"`` for a survey's band (shared/contracts/surveys.py); ``""`` when unknown
    (an imported point whose band no survey here has)."""
    if not survey or not band:
        return ""
    try:
        return get_survey(survey).band(band).system
    except KeyError:
        return ""


def band_ucd_word(survey: str | None, band: str | None) -> str | None:
    """The UCD word of a Johnson-Cousins band (``em.opt.V``), None for others (Sloan, Gaia, unknown)."""
    if band in _UCD_BANDS and magnitude_system(survey, band) == "Vega":
        return f"em.opt.{band}"
    return None


def systems_by_survey() -> dict[str, dict[str, str]]:
    """Every survey's bands with their magnitude system, e.g. ``{"APASS": {"B": "Vega", ..., "g'": "AB"}}``."""
    return {s.name: {b.name: b.system for b in s.bands} for s in SURVEYS.values()}


def server_version() -> str:
    version = software_version()
    commit = f" ({version.commit[:12]}{', modified' if version.dirty else ''})" if version.commit else ""
    return f"photcal {version.package}{commit}"


def _live_sorted(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    live = [d for d in docs if not d.get("deleted")]
    live.sort(key=lambda d: (d["mjd"], d.get("followup_id", 0)))
    return live


def _masked(values: list[Any], dtype: Any, fill: Any) -> MaskedColumn:
    mask = [v is None for v in values]
    return MaskedColumn([fill if v is None else v for v in values], dtype=dtype, mask=mask)


def lightcurve_table(
    curves: Sequence[AlertCurve], limit_methods: dict[str, str], origin: str, *, bulk: bool = False
) -> Table:
    """The light curves as one table, a row per live datapoint by (alert, MJD).

    Columns: ``mjd`` (d, UTC, mid-exposure), ``mag``, ``mag_err``, ``zeropoint_err``, ``limit_mag``
    (mag; ``mag``/``mag_err`` masked for a non-detection), ``detected``, ``limit_method``, ``survey``,
    ``band``, ``system`` (Vega/AB), ``observatory``, ``exptime`` (s), ``followup_id``, ``url`` (the
    datapoint's page), ``imported`` (``"cpcs"`` for a CPCS archive point, ``""`` for one uploaded
    here), ``comment``; with ``bulk``, first ``alert`` (the ivorn) and ``alert_name``.
    ``limit_methods``: by upload id (:func:`shared.db.calibrations.limit_methods_of`);
    ``origin``: ``scheme://host`` the page URLs start with.
    """
    rows: list[tuple[AlertCurve, dict[str, Any]]] = [(c, d) for c in curves for d in _live_sorted(c.docs)]
    detected = [bool(d.get("detected", True)) for _, d in rows]
    surveys = [d.get("survey") or "" for _, d in rows]
    bands = [d.get("filter") or "" for _, d in rows]

    def values(key: str) -> list[Any]:
        return [d.get(key) for _, d in rows]

    def measured(key: str) -> list[Any]:
        # a non-detection has a limit, not a magnitude or its error
        return [d.get(key) if det else None for (_, d), det in zip(rows, detected, strict=True)]

    ucd_words = {band_ucd_word(s, b) for s, b in zip(surveys, bands, strict=True)}
    # a column has one UCD: the band's only when every point is in that one Johnson-Cousins band
    band_word = next(iter(ucd_words)) if len(ucd_words) == 1 else None
    mag_ucd = f"phot.mag;{band_word}" if band_word else "phot.mag"

    table = Table()
    if bulk:
        table["alert"] = [c.ivorn for c, _ in rows] if rows else np.array([], dtype=str)
        table["alert_name"] = [c.name for c, _ in rows] if rows else np.array([], dtype=str)
        table["alert"].description = "the alert's ivorn"
        table["alert"].meta["ucd"] = "meta.id;meta.main"
        table["alert_name"].description = "the alert's name"
        table["alert_name"].meta["ucd"] = "meta.id"
    columns: list[tuple[str, Any, Any, str, str]] = [
        # name, column, unit, ucd, description
        ("mjd", np.array(values("mjd"), dtype=np.float64), u.d, "time.epoch", TIME_CONVENTION),
        ("mag", _masked(measured("mag"), np.float64, np.nan), u.mag, mag_ucd, "calibrated magnitude, in `system`"),
        ("mag_err", _masked(measured("mag_err"), np.float64, np.nan), u.mag, "stat.error;phot.mag", "error of mag"),
        ("zeropoint_err", _masked(values("zeropoint_err"), np.float64, np.nan), u.mag, "stat.error", CALIBRATION_ERROR),
        (
            "limit_mag",
            _masked(values("limit_mag"), np.float64, np.nan),
            u.mag,
            "phot.mag;stat.max",
            "the frame's limiting magnitude, in `system`; a non-detection is fainter than it",
        ),
        (
            "detected",
            np.array(detected, dtype=bool),
            None,
            "meta.code",
            "false: not detected (mag, mag_err masked): fainter than limit_mag",
        ),
        (
            "limit_method",
            np.array([limit_methods.get(str(d.get("upload_id")), "") for _, d in rows], dtype=str),
            None,
            "meta.code",
            "how limit_mag was found: completeness (50% of reference stars that faint detected), mag_err (5 sigma) "
            "or forced_aperture; empty when not recorded",
        ),
        ("survey", np.array(surveys, dtype=str), None, "meta.id", "reference survey calibrated against"),
        ("band", np.array(bands, dtype=str), None, "meta.id;instr.filter", "the survey's band"),
        (
            "system",
            np.array([magnitude_system(s, b) for s, b in zip(surveys, bands, strict=True)], dtype=str),
            None,
            "meta.code",
            "magnitude system of mag and limit_mag: Vega or AB",
        ),
        (
            "observatory",
            np.array([d.get("observatory") or "" for _, d in rows], dtype=str),
            None,
            "meta.id;instr.obsty",
            "the observatory that uploaded it",
        ),
        ("exptime", _masked(values("exptime"), np.float64, np.nan), u.s, "time.duration;obs.exposure", "exposure"),
        (
            "followup_id",
            np.array([int(d.get("followup_id") or 0) for _, d in rows], dtype=np.int64),
            None,
            "meta.id",
            "the datapoint's id",
        ),
        (
            "url",
            np.array([f"{origin}/datapoints/{d.get('followup_id')}" for _, d in rows], dtype=str),
            None,
            "meta.ref.url",
            "the datapoint's page: its calibration, plot and history",
        ),
        (
            "imported",
            np.array([d.get("imported") or "" for _, d in rows], dtype=str),
            None,
            "meta.code",
            "cpcs: imported from the CPCS archive (no instrumental data); empty: uploaded here",
        ),
        ("comment", np.array([d.get("comment") or "" for _, d in rows], dtype=str), None, "meta.note", "observer's"),
    ]
    for name, column, unit, ucd, description in columns:
        table[name] = column
        table[name].unit = unit
        table[name].description = description or name
        table[name].meta["ucd"] = ucd
    alerts = [c.alert for c in curves]
    table.meta["description"] = "photcal light curve" + ("s" if bulk else f" of {curves[0].name}" if curves else "")
    if bulk:
        table.meta["alerts"] = alerts
    elif curves:
        table.meta["alert"] = alerts[0]
    table.meta["time"] = TIME_CONVENTION
    table.meta["coordinates"] = "alert ra, dec: ICRS, degrees"
    table.meta["magnitude_systems"] = systems_by_survey()
    table.meta["calibration_error"] = CALIBRATION_ERROR
    table.meta["datapoint_url"] = f"{origin}/datapoints/{{followup_id}}"
    table.meta["server"] = server_version()
    return table


def ecsv_text(table: Table) -> str:
    """The table as ECSV (units, dtypes, descriptions and meta in its YAML header)."""
    buffer = io.StringIO()
    table.write(buffer, format="ascii.ecsv")
    return buffer.getvalue()


def votable_bytes(table: Table) -> bytes:
    """The table as a VOTable 1.4: FIELDs with units, UCDs and descriptions; ``mjd`` refers to a TIMESYS
    (UTC, MJD origin, topocentric: as observed, no barycentric correction) so that TOPCAT and astropy read
    it as times; the alert(s) as PARAMs (one alert) and INFOs, the magnitude systems as INFOs."""
    meta = table.meta
    plain = table.copy(copy_data=False)
    plain.meta = {"description": meta.get("description", "")}  # nested meta has no VOTable element: INFOs below
    votable = VOTableFile(version="1.4")
    votable.time_systems.append(
        TimeSys(
            ID="utc_mjd",
            timeorigin="MJD-origin",
            timescale="UTC",
            refposition="TOPOCENTER",
            config={"version_1_4_or_later": True},
        )
    )
    resource = Resource()
    votable.resources.append(resource)
    element = VOTableElement.from_table(votable, plain)
    element.name = "lightcurve"
    for votable_field in element.fields:
        if votable_field.name == "mjd":
            votable_field.ref = "utc_mjd"
    resource.tables.append(element)
    alert = meta.get("alert")
    if alert is not None:
        element.params.extend(
            [
                Param(
                    votable, name="ivorn", datatype="char", arraysize="*", value=alert["ivorn"], ucd="meta.id;meta.main"
                ),
                Param(votable, name="name", datatype="char", arraysize="*", value=alert["name"], ucd="meta.id"),
                Param(votable, name="ra", datatype="double", value=alert["ra"], unit="deg", ucd="pos.eq.ra;meta.main"),
                Param(
                    votable, name="dec", datatype="double", value=alert["dec"], unit="deg", ucd="pos.eq.dec;meta.main"
                ),
            ]
        )
    for listed in meta.get("alerts", []):
        info = Info(name="alert", value=listed["ivorn"])
        info.content = f"{listed['name']}: ra {listed['ra']} deg, dec {listed['dec']} deg (ICRS)"
        resource.infos.append(info)
    infos = [
        ("time", meta["time"]),
        ("calibration_error", meta["calibration_error"]),
        ("datapoint_url", meta["datapoint_url"]),
        ("server", meta["server"]),
    ]
    for survey, systems in meta["magnitude_systems"].items():
        infos.append((f"system_{survey}", " ".join(f"{band}:{system}" for band, system in systems.items())))
    for name, value in infos:
        resource.infos.append(Info(name=name, value=value))
    buffer = io.BytesIO()
    votable.to_xml(buffer)
    return buffer.getvalue()


# -- the AAVSO Extended File Format (version 1.2): https://www.aavso.org/aavso-extended-file-format

#: photcal band (survey, band) -> AAVSO FILT. Johnson-Cousins by name, Sloan as SU/SG/SR/SI/SZ; Gaia's broad
#: bands as AAVSO's clear ones: a clear frame is calibrated in Gaia G (shared/bands.py), CV ("clear, V zero
#: point") the nearest, and RP's as CR; PS1 y as Y
AAVSO_HEADER = "#NAME,DATE,MAG,MERR,FILT,TRANS,MTYPE,CNAME,CMAG,KNAME,KMAG,AMASS,GROUP,CHART,NOTES"
_AAVSO_SLOAN = {"u": "SU", "g": "SG", "r": "SR", "i": "SI", "z": "SZ", "y": "Y"}
_AAVSO_GAIA = {"G": "CV", "BP": "CV", "RP": "CR"}


def aavso_filter(survey: str, band: str) -> str:
    """AAVSO's FILT code of a survey band (``V``, ``SR``, ``CV``); ``na`` for one it has no code for."""
    if survey.upper() == "GAIA":
        return _AAVSO_GAIA.get(band, "na")
    if band in _AAVSO_SLOAN or band.rstrip("'") in _AAVSO_SLOAN:
        return _AAVSO_SLOAN[band.rstrip("'")]
    return band if band in _UCD_BANDS else "na"


def _aavso_field(text: str, limit: int) -> str:
    # DELIM is "," and the format has no quoting: a delimiter in a name would shift every later field
    return (text.replace(",", ";").replace("\n", " ").strip() or "na")[:limit]


def aavso_text(table: Table, *, obscode: str = "na") -> str:
    """One light curve (:func:`lightcurve_table`, not bulk) in the AAVSO Extended File Format.

    DATE is the JD of mid-exposure (MJD + 2400000.5); MAG a detection's magnitude, or ``<limit`` for a
    non-detection; MERR the total error, mag_err and zeropoint_err in quadrature (``na`` for a limit);
    MTYPE STD (standardised against the survey's ensemble of stars: CNAME ENSEMBLE), TRANS NO (no
    transformation to the standard system beyond the fitted colour term). NOTES say photcal's band,
    its system, the limit's method and the datapoint's page. ``obscode``: the observer's AAVSO code
    (photcal does not know it: ``?obscode=``).
    """
    alert = table.meta["alert"]
    star = _aavso_field(alert["name"], 30)
    lines = [
        "#TYPE=EXTENDED",
        f"#OBSCODE={_aavso_field(obscode, 20)}",
        f"#SOFTWARE={table.meta['server']}"[:265],
        "#DELIM=,",
        "#DATE=JD",
        "#OBSTYPE=CCD",
        f"# {alert['ivorn']}: {TIME_CONVENTION}; JD = MJD + 2400000.5",
        AAVSO_HEADER,
    ]
    for row in table:
        jd = float(row["mjd"]) + 2400000.5
        if row["detected"] and not np.ma.is_masked(row["mag"]):
            mag = f"{float(row['mag']):.3f}"
            errors = [float(row[k]) for k in ("mag_err", "zeropoint_err") if not np.ma.is_masked(row[k])]
            merr = f"{math.hypot(*errors):.3f}" if errors else "na"
        elif not np.ma.is_masked(row["limit_mag"]):
            mag, merr = f"<{float(row['limit_mag']):.3f}", "na"
        else:
            continue  # neither a magnitude nor a limit: nothing AAVSO can take
        notes = "|".join(
            f"{key}={value}"
            for key, value in (
                ("PHOTCAL", f"{row['survey']}/{row['band']}"),
                ("SYSTEM", row["system"]),
                ("LIMIT", row["limit_method"]),
                ("OBS", row["observatory"]),
                ("URL", row["url"]),
            )
            if value
        )
        fields = [
            star,
            f"{jd:.5f}",
            mag,
            merr,
            aavso_filter(str(row["survey"]), str(row["band"])),
            "NO",
            "STD",
            "ENSEMBLE",
            "na",
            "na",
            "na",
            "na",
            "na",
            "na",
            _aavso_field(notes, 2000),
        ]
        lines.append(",".join(fields))
    return "\n".join(lines) + "\n"
