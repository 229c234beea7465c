"""What every catalogue format shares: the columns looked for, the result, the errors, the finish.

A format's reader (:mod:`.text`, :mod:`.fits`) finds the columns
(:func:`_pick_columns`) and reads them; :func:`_finish` turns them into a
:class:`ParsedCatalogue`: SExtractor's 99 sentinels, the range checks, the
usable count and the warnings, the same for every format.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from services.ingest.rows import sanitise_columns
from shared.arrays import SourceTable
from shared.contracts.errors import ErrorCode
from shared.errors import BadCatalogue, PayloadTooLarge

DEFAULT_MAX_ROWS = 200_000
#: comment and blank lines a catalogue may have besides its rows: SExtractor writes one header line per
#: column (a few hundred at most); beyond this a file is not a catalogue, and reading it line by line costs
#: seconds of CPU (9.4 M one-character comment lines: 8 s), so it is refused before it is read
MAX_HEADER_LINES = 10_000

#: (magnitude, its error) in order of preference.
MAG_COLUMNS: tuple[tuple[str, str], ...] = (
    ("MAG_AUTO", "MAGERR_AUTO"),
    ("MAG_BEST", "MAGERR_BEST"),
    ("MAG_ISOCOR", "MAGERR_ISOCOR"),
    ("MAG_APER", "MAGERR_APER"),
    ("MAG_PSF", "MAGERR_PSF"),
)
#: (right ascension, declination) in degrees, in order of preference.
POSITION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ALPHA_J2000", "DELTA_J2000"),
    ("ALPHAWIN_J2000", "DELTAWIN_J2000"),
    ("X_WORLD", "Y_WORLD"),
    ("XWIN_WORLD", "YWIN_WORLD"),
    ("ALPHA_SKY", "DELTA_SKY"),
    ("RA", "DEC"),
)
FLAGS_COLUMN = "FLAGS"
#: the first fixed aperture, kept beside the chosen magnitude when present: a crowded frame's target is
#: measured in it (services/calibrate/core/aperture.py)
APERTURE_COLUMNS = ("MAG_APER", "MAGERR_APER")
_KNOWN = {n for pair in MAG_COLUMNS + POSITION_COLUMNS for n in pair} | {FLAGS_COLUMN}

#: Every code parse_catalogue raises (BadCatalogue unless noted).
ERROR_CODES = (
    ErrorCode.EMPTY_FILE,
    ErrorCode.NOT_A_CATALOGUE,
    ErrorCode.BAD_FITS,
    ErrorCode.BAD_HEADER,
    ErrorCode.NO_HEADER,
    ErrorCode.MISSING_COLUMNS,
    ErrorCode.NO_ROWS,
    ErrorCode.BAD_VALUES,
    ErrorCode.TOO_MANY_ROWS,  # PayloadTooLarge, HTTP 413
    ErrorCode.TOO_MANY_LINES,  # PayloadTooLarge, HTTP 413: far more lines than rows plus a header
    ErrorCode.NO_USABLE_SOURCES,
)

_REQUIRED_HINT = "add MAG_AUTO, MAGERR_AUTO, ALPHA_J2000, DELTA_J2000 to the SExtractor .param file"
_HEADER_HINT = "use CATALOG_TYPE ASCII_HEAD or add '#   1 MAG_AUTO' .. '#   4 DELTA_J2000'"
_UNUSABLE_MAG = 90.0  # SExtractor writes 99.0 for magnitudes it could not measure


@dataclass
class ParsedCatalogue:
    table: SourceTable
    format: str  # "ascii_head" | "ascii" | "fits" | "fits_ldac"
    n_rows: int
    n_usable: int  # finite magnitude with |mag| < 90 and finite RA, Dec
    warnings: list[str] = field(default_factory=list)


def _bad(code: str, message: str) -> BadCatalogue:
    return BadCatalogue(message, code=code)


def _too_many(n: int | None, max_rows: int) -> PayloadTooLarge:
    has = f"{n:,} rows" if n is not None else f"more than {max_rows:,} rows"
    return PayloadTooLarge(
        f"the catalogue has {has}; at most {max_rows:,} are accepted: "
        "raise DETECT_THRESH or cut faint sources before uploading",
        code=ErrorCode.TOO_MANY_ROWS,
    )


def _names(picked: dict[str, int | None], columns: dict[str, int]) -> dict[str, str]:
    if not columns:
        return {
            "mag": "MAG_AUTO",
            "mag_err": "MAGERR_AUTO",
            "ra": "ALPHA_J2000",
            "dec": "DELTA_J2000",
            "flags": "FLAGS",
        }
    inv = {}
    for k, v in picked.items():
        inv[k] = next((n for n, c in columns.items() if c == v), k) if v is not None else k
    return inv


def _pick_columns(columns: dict) -> tuple[dict, list[str]]:
    """Choose magnitude/error and RA/Dec columns by name (``columns``: NAME -> where); raise missing_columns."""
    have = columns
    warn: list[str] = []
    missing: list[str] = []
    picked: dict = {}

    def choose(pairs, keys):
        for a, b in pairs:
            if a in have and b in have:
                picked[keys[0]], picked[keys[1]] = columns[a], columns[b]
                return a
        for a, b in pairs:  # report the half-present preferred pair, else the standard one
            if a in have or b in have:
                missing.append(b if a in have else a)
                return None
        missing.extend(pairs[0])
        return None

    mag = choose(MAG_COLUMNS, ("mag", "mag_err"))
    radec = choose(POSITION_COLUMNS, ("ra", "dec"))
    if missing:
        found = [name if len(name) <= 20 else name[:20] + "..." for name in columns]  # echo, bounded
        shown = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "")
        s = "s" if len(missing) > 1 else ""
        raise _bad(
            ErrorCode.MISSING_COLUMNS,
            f"missing column{s} {', '.join(missing)} (found: {shown}); {_REQUIRED_HINT}",
        )
    if mag != "MAG_AUTO":
        warn.append(f"no MAG_AUTO column: used {mag}" + (" (first aperture)" if mag == "MAG_APER" else ""))
    if radec not in ("ALPHA_J2000", "ALPHAWIN_J2000"):
        warn.append(
            f"no ALPHA_J2000/DELTA_J2000 columns: used {radec}/{dict(POSITION_COLUMNS)[radec]} as J2000 degrees"
        )
    picked["flags"] = columns.get(FLAGS_COLUMN)
    aper, aper_err = APERTURE_COLUMNS
    if mag != aper and aper in have and aper_err in have:
        picked["mag_aper"], picked["mag_aper_err"] = columns[aper], columns[aper_err]
    return picked, warn


def _finish(v: dict, fmt: str, warn: list[str], line_of, names: dict[str, str]) -> ParsedCatalogue:
    n = len(v["mag"])
    mag, err, ra, dec = (np.array(v[k], dtype=np.float64) for k in ("mag", "mag_err", "ra", "dec"))
    has_flags = v.get("flags") is not None
    f = np.array(v["flags"], dtype=np.float64) if has_flags else np.zeros(0)
    n_negative, bad_dec, bad_ra, bad_flag, n_usable = sanitise_columns(mag, err, ra, dec, f, _UNUSABLE_MAG)
    if n_negative:
        warn.append(f"{n_negative} negative magnitude errors set to NaN")
    for key, i, lo, hi, arr in (("dec", bad_dec, -90.0, 90.0, v["dec"]), ("ra", bad_ra, 0.0, 360.0, v["ra"])):
        if i >= 0:
            raise _bad(
                ErrorCode.BAD_VALUES,
                f"{names[key]} is {float(arr[i]):.6g} on {_where_row(line_of, i)}, outside [{lo:g}, {hi:g}]; "
                "positions must be J2000 degrees (is the image astrometrically calibrated?)",
            )
    flags = None
    if has_flags:
        if bad_flag >= 0:
            raise _bad(
                ErrorCode.BAD_VALUES,
                f"{names['flags']} is {f[bad_flag]:.6g} on {_where_row(line_of, bad_flag)}; "
                "FLAGS must be a non-negative integer",
            )
        flags = f.astype(np.int32)
    if n_usable == 0:
        raise _bad(
            ErrorCode.NO_USABLE_SOURCES,
            f"none of the {n} sources has a usable magnitude and position (all 99, NaN or inf); "
            "check the image and SExtractor's MAG_ZEROPOINT/GAIN settings",
        )
    if n_usable < n:
        warn.append(f"{n - n_usable} of {n} sources have no usable magnitude or position and are skipped")
    aper = aper_err = None
    if v.get("mag_aper") is not None and v.get("mag_aper_err") is not None:
        aper, aper_err = (np.array(v[k], dtype=np.float64) for k in ("mag_aper", "mag_aper_err"))
        with np.errstate(invalid="ignore"):
            unusable = ~(np.isfinite(aper) & (np.abs(aper) < _UNUSABLE_MAG) & np.isfinite(aper_err))
            unusable |= ~(aper_err >= 0) | (aper_err >= _UNUSABLE_MAG)
        aper[unusable] = np.nan
        aper_err[unusable] = np.nan
    table = SourceTable.from_columns(
        ra=ra, dec=dec, mag=mag, mag_err=err, flags=flags, mag_aper=aper, mag_aper_err=aper_err
    )
    return ParsedCatalogue(table=table, format=fmt, n_rows=n, n_usable=n_usable, warnings=warn)


def _where_row(line_of, i: int) -> str:
    if line_of is None:
        return f"row {i + 1}"
    try:
        return f"line {line_of(i)}"
    except Exception:  # pragma: no cover - message detail only
        return f"row {i + 1}"
