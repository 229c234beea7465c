"""SExtractor's text catalogues: ``ASCII_HEAD`` (numbered header lines) and headerless ``ASCII``.

Read with the plain-row reader (:func:`services.ingest.rows.read_plain_rows`)
or pandas' C tokenizer; per-line Python work happens only on the error path,
to say which line is wrong.
"""

from __future__ import annotations

import csv
import io
import re
import warnings

import numpy as np
import pandas as pd

from services.ingest.parsing.common import (
    _HEADER_HINT,
    _KNOWN,
    _UNUSABLE_MAG,
    MAX_HEADER_LINES,
    ParsedCatalogue,
    _bad,
    _finish,
    _names,
    _pick_columns,
    _too_many,
)
from services.ingest.rows import read_plain_rows
from shared.contracts.errors import ErrorCode
from shared.errors import BadCatalogue

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
            raise _bad(
                ErrorCode.NO_ROWS, "the catalogue has a header but no rows: SExtractor found no sources in the image"
            )
        raise _bad(
            ErrorCode.NO_ROWS, "the file has no rows, only comments or blank lines; upload the SExtractor catalogue"
        )

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
            raise _bad(
                ErrorCode.NO_ROWS, "the catalogue has a header but no rows: SExtractor found no sources in the image"
            )
    elif comments:
        names = comments[-1].lstrip("#").split()
        if (
            names
            and not any(_is_number(t) for t in names)
            and {t.upper() for t in names} & _KNOWN
            and len(names) == len(first)
        ):
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
                    (
                        f"line {lineno} has {len(f)} values but the first row has {ncols}; every row needs the same "
                        "columns"
                    ),
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
    return _bad(
        ErrorCode.BAD_VALUES, "the rows could not be read as numbers; rows must hold only whitespace-separated numbers"
    )


def _read_rows(body: str, first_lineno: int, ncols: int, picked: dict, max_rows: int) -> dict[str, np.ndarray | None]:
    used = sorted({c for c in picked.values() if c is not None} | {ncols - 1})  # last column catches short rows
    raw = body.encode("latin-1", errors="replace")
    plain = read_plain_rows(raw, ncols, used, max_rows)
    out = (
        dict(zip(used, plain))
        if plain is not None
        else _read_rows_pandas(raw, body, first_lineno, ncols, used, max_rows)
    )
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
        raise _bad(
            ErrorCode.NO_ROWS, "the file has no rows, only comments or blank lines; upload the SExtractor catalogue"
        )
    out: dict[int, np.ndarray] = {}
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


def _check_headerless(v: dict[str, np.ndarray | None]) -> None:
    """Headerless rows must look like MAG_AUTO MAGERR_AUTO ALPHA_J2000 DELTA_J2000."""
    checks = (
        ("ra", 3, lambda a: (a >= 0) & (a <= 360), "an RA in degrees"),
        ("dec", 4, lambda a: (a >= -90) & (a <= 90), "a Dec in degrees"),
        ("mag", 1, lambda a: (np.abs(a) <= 50) | (np.abs(a) >= _UNUSABLE_MAG), "a magnitude"),
        ("mag_err", 2, lambda a: a >= 0, "a magnitude error"),
    )
    for key, col, ok, what in checks:
        a = v[key]
        assert a is not None  # headerless: the four columns are taken by their positions
        bad = np.isfinite(a) & ~ok(a)
        if bad.any():
            raise _bad(
                ErrorCode.NO_HEADER,
                f"no header, and column {col} ({a[bad][0]:.6g}) is not {what} (headerless means "
                f"MAG_AUTO MAGERR_AUTO ALPHA_J2000 DELTA_J2000); {_HEADER_HINT}",
            )
