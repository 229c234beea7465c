"""Parse an observer's SExtractor catalogue into a :class:`SourceTable`.

Accepted, detected from the content (never from the file name):

* ``ascii_head`` -- SExtractor ``CATALOG_TYPE ASCII_HEAD``: ``#   1 NAME ...``
  header lines whose numbers give the (1-based) column of each parameter;
  a vector parameter such as ``MAG_APER`` with 3 apertures spans columns
  5..7 and the next header number jumps.  A bare header line listing the
  names (``# MAG_AUTO MAGERR_AUTO ALPHA_J2000 DELTA_J2000``) also works.
* ``ascii`` -- no header at all: the CPCS manual's column order
  ``MAG_AUTO MAGERR_AUTO ALPHA_J2000 DELTA_J2000`` (extra columns ignored),
  accepted only when the values look like that.
* ``fits`` -- ``CATALOG_TYPE FITS_1.0``: a binary table in HDU 1.
* ``fits_ldac`` -- ``CATALOG_TYPE FITS_LDAC``: ``LDAC_IMHEAD`` + ``LDAC_OBJECTS``
  (several pairs, as from a mosaic camera, are concatenated).

FITS files are walked header by header from the bytes themselves: every
HDU's data size (BITPIX, NAXISn, PCOUNT, GCOUNT) is checked against the bytes
actually present before anything is read, and only the needed columns are
copied out, so a hostile header cannot make us allocate what it claims.

Text is read with pandas' C tokenizer (vectorised); any per-line Python work
happens only on the error path, to say which line is wrong.

Every failure is a :class:`BadCatalogue` (HTTP 400) with a stable ``code``,
or :class:`PayloadTooLarge` (413, ``too_many_rows``).
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shared.arrays import SourceTable
from shared.contracts.errors import ErrorCode
from shared.errors import BadCatalogue, PayloadTooLarge
from services.ingest.rows import read_plain_rows, sanitise_columns

__all__ = [
    "ParsedCatalogue",
    "parse_catalogue",
    "MAG_COLUMNS",
    "POSITION_COLUMNS",
    "ERROR_CODES",
    "DEFAULT_MAX_ROWS",
]

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


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------


def parse_catalogue(data: bytes, filename: str = "", max_rows: int = DEFAULT_MAX_ROWS) -> ParsedCatalogue:
    """Read a SExtractor catalogue (ASCII_HEAD, headerless ASCII, FITS_1.0 or FITS_LDAC).

    Raises :class:`BadCatalogue` (codes in :data:`ERROR_CODES`) or
    :class:`PayloadTooLarge` (``too_many_rows``) and nothing else.
    """
    data = bytes(data)
    if not data.strip(b" \t\r\n\x0b\x0c\x00\x1a"):
        raise _bad(ErrorCode.EMPTY_FILE, "the file is empty; upload the SExtractor catalogue of the image")
    if data[:6] == b"SIMPLE":
        return _parse_fits(data, max_rows)
    _refuse_binary(data, filename)
    _refuse_too_many_lines(data, max_rows)
    return _parse_text(data, max_rows)


def _refuse_too_many_lines(data: bytes, max_rows: int) -> None:
    """Counted in C before any line is looked at: every line costs the reader, a comment too."""
    lines = max(data.count(b"\n"), data.count(b"\r"))  # old Mac files end lines with CR alone
    if lines > max_rows + MAX_HEADER_LINES:
        raise PayloadTooLarge(
            f"the file has {lines:,} lines; a catalogue has at most {max_rows:,} rows "
            f"and {MAX_HEADER_LINES:,} comment lines: upload the SExtractor catalogue itself",
            code=ErrorCode.TOO_MANY_LINES,
        )


# ---------------------------------------------------------------------------
# text
# ---------------------------------------------------------------------------

_NOT_CATALOGUE = "the file is neither a SExtractor ASCII catalogue nor a FITS table"
_COMPRESSED = {b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip", b"BZh": "bzip2", b"\xfd7zXZ": "xz", b"7z\xbc\xaf": "7z"}
# bytes allowed in text: TAB LF VT FF CR, printable ASCII, and all of 0x80..0xff (latin-1/cp1252 in comments)
_TEXT_BYTES = bytes([9, 10, 11, 12, 13]) + bytes(range(32, 127)) + bytes(range(128, 256))


def _refuse_binary(data: bytes, filename: str) -> None:
    for magic, kind in _COMPRESSED.items():
        if data.startswith(magic):
            raise _bad(ErrorCode.NOT_A_CATALOGUE, f"the file is {kind}-compressed; upload the uncompressed catalogue")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return  # UTF-16 with a BOM (Windows Notepad "Unicode"); decoded in _decode
    head = data[:65536]
    control = head.translate(None, _TEXT_BYTES)
    if b"\x00" in head or len(control) > max(2, len(head) // 100):
        hint = " (it is not text)"
        if filename.lower().endswith((".fits", ".fit", ".fts", ".cat", ".ldac")):
            hint = " (it does not start with a FITS header)"
        raise _bad(ErrorCode.NOT_A_CATALOGUE, _NOT_CATALOGUE + hint)


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise _bad(ErrorCode.NOT_A_CATALOGUE, _NOT_CATALOGUE + " (broken UTF-16 text)") from None
        if "\x00" in text:
            raise _bad(ErrorCode.NOT_A_CATALOGUE, _NOT_CATALOGUE + " (it is not text)")
    else:
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        # latin-1 maps every byte: cp1252/latin-1/UTF-8 accents in comments are harmless,
        # and non-ASCII bytes in a data row fail as non-numeric values with their line.
        text = data.decode("latin-1")
    text = text.lstrip("\ufeff")
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        text = text.replace("\r\n", "\n").replace("\r", "\n")  # old Mac line ends (pandas reads CRLF itself)
    return text.rstrip("\x1a")  # DOS end-of-file marker


_INDENTED_COMMENT = re.compile(r"^[ \t]+(?=#)", re.M)
_HEADER_LINE = re.compile(r"#\s*(\d{1,6})\s+([A-Za-z][\w.\-]*)")


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _tokens(line: str) -> list[str]:
    return line.split("#", 1)[0].replace("\t", " ").replace("\r", " ").split(" ") if line else []


def _fields(line: str) -> list[str]:
    return [t for t in _tokens(line) if t]


def _parse_text(data: bytes, max_rows: int) -> ParsedCatalogue:
    text = _decode(data)

    # Header: comment and blank lines up to the first data line (a small Python loop).
    comments: list[str] = []
    pos, lineno = 0, 1
    first: list[str] = []
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        line = text[pos:end]
        first = _fields(line)
        if first:
            break
        if line.lstrip().startswith("#"):
            comments.append(line.strip())
        pos, lineno = end + 1, lineno + 1
        if lineno > MAX_HEADER_LINES:
            raise _bad(
                ErrorCode.BAD_HEADER,
                f"more than {MAX_HEADER_LINES:,} comment or blank lines before the first row; "
                "a SExtractor header has one line per column",
            )
    if not first:
        if any(_HEADER_LINE.match(c) for c in comments):
            raise _bad(ErrorCode.NO_ROWS, "the catalogue has a header but no rows: SExtractor found no sources in the image")
        raise _bad(ErrorCode.NO_ROWS, "the file has no rows, only comments or blank lines; upload the SExtractor catalogue")

    columns: dict[str, int] = {}  # NAME -> 0-based column
    declared = 0  # columns the header accounts for (last header number)
    # "#  12 FLAGS  ..." lines; free-text notes such as "# 2024 Jan 5, seeing 2''" are not columns:
    # a column name is upper case (SExtractor's) or one we know in any case.
    numbered = [
        (int(m.group(1)), m.group(2).upper())
        for c in comments
        if (m := _HEADER_LINE.match(c)) and (m.group(2).isupper() or m.group(2).upper() in _KNOWN)
    ]
    starts = [i for i, (n, _) in enumerate(numbered) if n <= 1]
    numbered = numbered[starts[0] :] if starts else numbered
    if numbered:
        shift = 1 if min(n for n, _ in numbered) == 0 else 0  # a 0-based header
        last = 0
        for n, name in numbered:
            n += shift
            if n <= last:
                continue  # not increasing: a stray comment, not a column definition
            columns.setdefault(name, n - 1)
            last = declared = n
    elif not any(_is_number(t) for t in first) and {t.upper() for t in first} & _KNOWN:
        # an uncommented line of names above the rows
        columns = {}
        for i, t in enumerate(first):
            columns.setdefault(t.upper(), i)
        declared = len(first)
        pos = text.find("\n", pos)
        pos = len(text) if pos < 0 else pos + 1
        lineno += 1
        while pos < len(text):  # move on to the first real data line
            end = text.find("\n", pos)
            end = len(text) if end < 0 else end
            first = _fields(text[pos:end])
            if first:
                break
            pos, lineno = end + 1, lineno + 1
        if pos >= len(text):
            raise _bad(ErrorCode.NO_ROWS, "the catalogue has a header but no rows: SExtractor found no sources in the image")
    elif comments:
        names = comments[-1].lstrip("#").split()
        if names and not any(_is_number(t) for t in names) and {t.upper() for t in names} & _KNOWN and len(
            names
        ) == len(first):
            for i, t in enumerate(names):
                columns.setdefault(t.upper(), i)
            declared = len(names)

    ncols = len(first)
    body = text[pos:]
    if "#" in body and _INDENTED_COMMENT.search(body):
        body = _INDENTED_COMMENT.sub("", body)  # pandas reads "   # note" as a row of empty fields
    if columns:
        fmt = "ascii_head"
        if declared > ncols:
            name = next((k for k, v in columns.items() if v == declared - 1), "?")
            raise _bad(
                ErrorCode.BAD_HEADER,
                f"the header declares column {declared} ({name}) but line {lineno} has only {ncols} values; "
                "the header does not match the rows",
            )
        picked, warn = _pick_columns(columns)
    else:
        fmt = "ascii"
        if ncols < 4:
            raise _bad(
                ErrorCode.NO_HEADER,
                f"no header and only {ncols} columns (headerless means MAG_AUTO MAGERR_AUTO ALPHA_J2000 DELTA_J2000); "
                + _HEADER_HINT,
            )
        picked = {"mag": 0, "mag_err": 1, "ra": 2, "dec": 3, "flags": None}
        warn = [
            "no column header: read the first 4 columns as MAG_AUTO MAGERR_AUTO ALPHA_J2000 DELTA_J2000 "
            "(CPCS order)" + (f"; {ncols - 4} more columns ignored" if ncols > 4 else "")
        ]

    values = _read_rows(body, lineno, ncols, picked, max_rows)
    if fmt == "ascii":
        _check_headerless(values)
    return _finish(values, fmt, warn, line_of=lambda i: _line_of(body, lineno, i), names=_names(picked, columns))


def _names(picked: dict[str, int | None], columns: dict[str, int]) -> dict[str, str]:
    if not columns:
        return {"mag": "MAG_AUTO", "mag_err": "MAGERR_AUTO", "ra": "ALPHA_J2000", "dec": "DELTA_J2000", "flags": "FLAGS"}
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
        warn.append(f"no ALPHA_J2000/DELTA_J2000 columns: used {radec}/{dict(POSITION_COLUMNS)[radec]} as J2000 degrees")
    picked["flags"] = columns.get(FLAGS_COLUMN)
    return picked, warn


def _line_of(body: str, first_lineno: int, row: int) -> int:
    """File line number of data row ``row`` (error path only)."""
    lineno, k = first_lineno, 0
    for line in body.split("\n"):
        if _fields(line):
            if k == row:
                return lineno
            k += 1
        lineno += 1
    return lineno


def _diagnose(body: str, first_lineno: int, ncols: int, used: list[int]) -> BadCatalogue:
    """Find the first malformed row (error path only)."""
    lineno = first_lineno
    for line in body.split("\n"):
        f = _fields(line)
        if f:
            if len(f) != ncols:
                return _bad(
                    ErrorCode.BAD_VALUES,
                    f"line {lineno} has {len(f)} values but the first row has {ncols}; every row needs the same columns",
                )
            for c in used:
                if not _is_number(f[c]):
                    tok = f[c] if len(f[c]) <= 20 else f[c][:20] + "..."
                    return _bad(
                        ErrorCode.BAD_VALUES,
                        f"line {lineno}, column {c + 1}: {tok!r} is not a number; "
                        "rows must hold only numbers (use '.' as the decimal point)",
                    )
        lineno += 1
    return _bad(ErrorCode.BAD_VALUES, "the rows could not be read as numbers; rows must hold only whitespace-separated numbers")


def _read_rows(body: str, first_lineno: int, ncols: int, picked: dict, max_rows: int) -> dict[str, np.ndarray]:
    used = sorted({c for c in picked.values() if c is not None} | {ncols - 1})  # last column catches short rows
    raw = body.encode("latin-1", errors="replace")
    plain = read_plain_rows(raw, ncols, used, max_rows)
    out = dict(zip(used, plain)) if plain is not None else _read_rows_pandas(raw, body, first_lineno, ncols, used, max_rows)
    return {k: (out[c] if c is not None else None) for k, c in picked.items()}


def _read_rows_pandas(
    raw: bytes, body: str, first_lineno: int, ncols: int, used: list[int], max_rows: int
) -> dict[int, np.ndarray]:
    """Rows that are not plain (NaN, text columns) with pandas' C reader, or the first malformed row's error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # No usecols: the tokenizer must see every field to refuse rows that are too long.
            frame = pd.read_csv(
                io.BytesIO(raw),  # bytes: the C reader is faster on them
                encoding="latin-1",
                sep=r"\s+",
                comment="#",
                header=None,
                engine="c",
                keep_default_na=False,  # a missing field stays "" (-> malformed row), not NaN
                na_values=["nan", "NaN", "NAN", "-nan", "+nan", "-NaN", "+NaN"],
                quoting=csv.QUOTE_NONE,
                skip_blank_lines=True,
                nrows=max_rows + 1,
                low_memory=False,
            )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, IndexError, OverflowError):
        raise _diagnose(body, first_lineno, ncols, used) from None
    if frame.shape[1] != ncols:
        raise _diagnose(body, first_lineno, ncols, used)
    if len(frame) > max_rows:
        raise _too_many(None, max_rows)
    if len(frame) == 0:
        raise _bad(ErrorCode.NO_ROWS, "the file has no rows, only comments or blank lines; upload the SExtractor catalogue")
    out: dict[str, np.ndarray] = {}
    for c in used:
        col = frame[c]
        if col.dtype.kind in "iufb":
            arr = col.to_numpy(dtype=np.float64)
        else:
            try:
                arr = col.to_numpy(dtype=object).astype(np.float64)
            except (ValueError, TypeError, OverflowError):
                raise _diagnose(body, first_lineno, ncols, used) from None
        out[c] = arr
    return out


def _check_headerless(v: dict[str, np.ndarray]) -> None:
    """Headerless rows must look like MAG_AUTO MAGERR_AUTO ALPHA_J2000 DELTA_J2000."""
    checks = (
        ("ra", 3, lambda a: (a >= 0) & (a <= 360), "an RA in degrees"),
        ("dec", 4, lambda a: (a >= -90) & (a <= 90), "a Dec in degrees"),
        ("mag", 1, lambda a: (np.abs(a) <= 50) | (np.abs(a) >= _UNUSABLE_MAG), "a magnitude"),
        ("mag_err", 2, lambda a: a >= 0, "a magnitude error"),
    )
    for key, col, ok, what in checks:
        a = v[key]
        bad = np.isfinite(a) & ~ok(a)
        if bad.any():
            raise _bad(
                ErrorCode.NO_HEADER,
                f"no header, and column {col} ({a[bad][0]:.6g}) is not {what} (headerless means "
                f"MAG_AUTO MAGERR_AUTO ALPHA_J2000 DELTA_J2000); {_HEADER_HINT}",
            )


# ---------------------------------------------------------------------------
# common finish: sentinels, sanity, counts
# ---------------------------------------------------------------------------


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
    table = SourceTable.from_columns(ra=ra, dec=dec, mag=mag, mag_err=err, flags=flags)
    return ParsedCatalogue(table=table, format=fmt, n_rows=n, n_usable=n_usable, warnings=warn)


def _where_row(line_of, i: int) -> str:
    if line_of is None:
        return f"row {i + 1}"
    try:
        return f"line {line_of(i)}"
    except Exception:  # pragma: no cover - message detail only
        return f"row {i + 1}"


# ---------------------------------------------------------------------------
# FITS
# ---------------------------------------------------------------------------

_BLOCK = 2880
_MAX_HDUS = 1000
_TFORM = re.compile(r"^\s*(\d*)\s*([LXBIJKAEDCMPQ])")
_WIDTH = {"L": 1, "B": 1, "I": 2, "J": 4, "K": 8, "A": 1, "E": 4, "D": 8, "C": 8, "M": 16, "P": 8, "Q": 16}
_NUMERIC = {"B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}


def _card_value(raw: str):
    """Value of a FITS card's value field (after '= '); strings, ints, floats, logicals."""
    s = raw.strip()
    if s.startswith("'"):
        out, i = [], 1
        while i < len(s):
            if s[i] == "'":
                if s[i + 1 : i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(s[i])
            i += 1
        return "".join(out).rstrip()
    s = s.split("/", 1)[0].strip()
    if s in ("T", "F"):
        return s == "T"
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s.replace("D", "E").replace("d", "e"))
    except ValueError:
        return s


def _read_header(data: bytes, pos: int, index: int) -> tuple[dict, int]:
    """Parse one FITS header starting at ``pos``; return (keywords, data start)."""
    cards: dict = {}
    p = pos
    while True:
        if p + _BLOCK > len(data):
            raise _bad(ErrorCode.BAD_FITS, f"FITS header of HDU {index} has no END card: the file is truncated or corrupt")
        block = data[p : p + _BLOCK]
        p += _BLOCK
        for k in range(0, _BLOCK, 80):
            card = block[k : k + 80].decode("latin-1")
            key = card[:8].rstrip()
            if key == "END":
                return cards, p
            if card[8:10] == "= " and key and key not in cards:
                cards[key] = _card_value(card[10:])


def _int_kw(h: dict, key: str, index: int, lo: int = 0, default: int | None = None) -> int:
    v = h.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise _bad(ErrorCode.BAD_FITS, f"FITS HDU {index} has a missing or invalid {key}; the file is corrupt")
    return v


@dataclass
class _Hdu:
    index: int
    header: dict
    start: int  # data offset in the file
    size: int  # data bytes (unpadded)


def _walk_fits(data: bytes, max_rows: int) -> list[_Hdu]:
    hdus: list[_Hdu] = []
    pos = 0
    while pos + _BLOCK <= len(data) and len(hdus) < _MAX_HDUS:
        index = len(hdus)
        if index and data[pos : pos + 8] != b"XTENSION":
            break  # trailing padding or junk after the last HDU
        h, start = _read_header(data, pos, index)
        bitpix = _int_kw(h, "BITPIX", index, lo=-64)
        if bitpix not in (8, 16, 32, 64, -32, -64):
            raise _bad(ErrorCode.BAD_FITS, f"FITS HDU {index} has BITPIX = {bitpix}; the file is corrupt")
        naxis = _int_kw(h, "NAXIS", index)
        if naxis > 999:
            raise _bad(ErrorCode.BAD_FITS, f"FITS HDU {index} has NAXIS = {naxis}; the file is corrupt")
        dims = [_int_kw(h, f"NAXIS{i}", index) for i in range(1, naxis + 1)]
        pcount = _int_kw(h, "PCOUNT", index, default=0)
        gcount = _int_kw(h, "GCOUNT", index, lo=1, default=1)
        if index == 0 and naxis and dims[0] == 0 and h.get("GROUPS") is True:
            dims = dims[1:]  # random groups
        n = 1
        for d in dims:
            n *= d
        size = 0 if naxis == 0 else abs(bitpix) // 8 * gcount * (pcount + n)
        if index and str(h.get("XTENSION", "")).strip() == "BINTABLE" and naxis == 2 and dims[1] > max_rows:
            raise _too_many(dims[1], max_rows)
        if size > len(data) - start:
            raise _bad(
                ErrorCode.BAD_FITS,
                f"FITS HDU {index} claims {size:,} bytes of data but only {len(data) - start:,} remain; "
                "the file is truncated or corrupt",
            )
        hdus.append(_Hdu(index, h, start, size))
        pos = start + -(-size // _BLOCK) * _BLOCK
    return hdus


@dataclass
class _Table:
    hdu: _Hdu
    nrows: int
    width: int
    columns: dict[str, tuple[int, int, str]]  # NAME -> (byte offset, repeat, type letter)


def _table(hdu: _Hdu) -> _Table:
    h, i = hdu.header, hdu.index
    if h.get("BITPIX") != 8 or h.get("NAXIS") != 2:
        raise _bad(ErrorCode.BAD_FITS, f"FITS binary table in HDU {i} must have BITPIX = 8 and NAXIS = 2")
    width, nrows = h["NAXIS1"], h["NAXIS2"]
    tfields = _int_kw(h, "TFIELDS", i)
    if tfields > 999:
        raise _bad(ErrorCode.BAD_FITS, f"FITS HDU {i} has TFIELDS = {tfields}; the file is corrupt")
    columns: dict[str, tuple[int, int, str]] = {}
    offset = 0
    for k in range(1, tfields + 1):
        form = h.get(f"TFORM{k}")
        m = _TFORM.match(form) if isinstance(form, str) else None
        if not m:
            raise _bad(ErrorCode.BAD_FITS, f"FITS HDU {i}: column {k} has an invalid TFORM{k} = {form!r}")
        repeat = int(m.group(1)) if m.group(1) else 1
        kind = m.group(2)
        nbytes = (repeat + 7) // 8 if kind == "X" else repeat * _WIDTH[kind]
        name = h.get(f"TTYPE{k}")
        if isinstance(name, str) and name.strip():
            columns.setdefault(name.strip().upper(), (offset, repeat, kind))
        offset += nbytes
    if offset != width:
        raise _bad(ErrorCode.BAD_FITS, f"FITS HDU {i}: the columns take {offset} bytes per row but NAXIS1 = {width}")
    return _Table(hdu, nrows, width, columns)


def _column(data: bytes, t: _Table, name: str) -> np.ndarray:
    offset, repeat, kind = t.columns[name]
    if kind not in _NUMERIC or repeat < 1:
        raise _bad(ErrorCode.BAD_VALUES, f"FITS column {name} has type {repeat}{kind}, not a number")
    dtype = np.dtype(_NUMERIC[kind])
    rows = np.frombuffer(data, dtype=np.uint8, count=t.nrows * t.width, offset=t.hdu.start)
    rows = rows.reshape(t.nrows, t.width)
    # first element of the (possibly vector) column, copied: only what we need is allocated
    cell = np.ascontiguousarray(rows[:, offset : offset + dtype.itemsize]).view(dtype).reshape(t.nrows)
    out = cell.astype(np.float64)
    k = _column_number(t, name)
    scale, zero = t.hdu.header.get(f"TSCAL{k}", 1), t.hdu.header.get(f"TZERO{k}", 0)
    if isinstance(scale, (int, float)) and isinstance(zero, (int, float)) and (scale != 1 or zero != 0):
        if not isinstance(scale, bool) and not isinstance(zero, bool):
            out = out * scale + zero
    return out


def _column_number(t: _Table, name: str) -> int:
    h = t.hdu.header
    for k in range(1, int(h.get("TFIELDS", 0)) + 1):
        v = h.get(f"TTYPE{k}")
        if isinstance(v, str) and v.strip().upper() == name:
            return k
    return 0


def _parse_fits(data: bytes, max_rows: int) -> ParsedCatalogue:
    hdus = _walk_fits(data, max_rows)
    ext = [u for u in hdus[1:]]
    bintables = [u for u in ext if str(u.header.get("XTENSION", "")).strip() == "BINTABLE"]
    for u in bintables:
        nrows = u.header.get("NAXIS2", 0)
        if isinstance(nrows, int) and nrows > max_rows:
            raise _too_many(nrows, max_rows)
    if not bintables:
        if any(str(u.header.get("XTENSION", "")).strip() == "TABLE" for u in ext):
            raise _bad(ErrorCode.NOT_A_CATALOGUE, "FITS ASCII tables are not supported; use CATALOG_TYPE FITS_1.0, FITS_LDAC or ASCII_HEAD")
        if any(u.size for u in hdus):
            raise _bad(
                ErrorCode.NOT_A_CATALOGUE,
                "this is a FITS image, not a catalogue; run SExtractor on it and upload the catalogue it writes",
            )
        raise _bad(ErrorCode.NOT_A_CATALOGUE, "the FITS file holds no table; upload the SExtractor catalogue")

    names = [str(u.header.get("EXTNAME", "")).strip().upper() for u in bintables]
    ldac = "LDAC_OBJECTS" in names or "LDAC_IMHEAD" in names
    warn: list[str] = []
    if ldac:
        chosen = [_table(u) for u, n in zip(bintables, names) if n == "LDAC_OBJECTS"]
        if not chosen:
            raise _bad(ErrorCode.NOT_A_CATALOGUE, "the FITS_LDAC file has no LDAC_OBJECTS table")
        if len(chosen) > 1:
            warn.append(f"{len(chosen)} LDAC_OBJECTS tables (one per chip) concatenated")
    else:
        tables = [_table(u) for u in bintables]
        chosen = [next((t for t in tables if t.columns.keys() & {m for m, _ in MAG_COLUMNS}), tables[0])]
        if tables[0] is not chosen[0]:
            warn.append(f"read the binary table in HDU {chosen[0].hdu.index}")

    parts = []
    picked = None
    for t in chosen:
        p, w = _pick_columns({name: name for name in t.columns})
        if picked is not None and p != picked:
            raise _bad(ErrorCode.BAD_VALUES, "the LDAC_OBJECTS tables have different columns; upload one chip per file")
        picked, warn = p, warn + [x for x in w if x not in warn]
        parts.append({k: (_column(data, t, c) if c is not None else None) for k, c in p.items()})
    values = {
        k: (np.concatenate([p[k] for p in parts]) if parts[0][k] is not None else None) for k in parts[0]
    }
    if len(values["mag"]) > max_rows:
        raise _too_many(len(values["mag"]), max_rows)
    if len(values["mag"]) == 0:
        raise _bad(ErrorCode.NO_ROWS, "the catalogue has no rows: SExtractor found no sources in the image")
    return _finish(values, "fits_ldac" if ldac else "fits", warn, line_of=None, names={**picked, "flags": "FLAGS"} if picked else {})
