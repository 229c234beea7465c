"""SExtractor's FITS catalogues: ``FITS_1.0`` (a binary table in HDU 1) and ``FITS_LDAC``.

Walked header by header from the bytes themselves: every HDU's data size
(BITPIX, NAXISn, PCOUNT, GCOUNT) is checked against the bytes actually
present before anything is read, and only the needed columns are copied
out, so a hostile header cannot make us allocate what it claims.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from services.ingest.parsing.common import (
    MAG_COLUMNS,
    ParsedCatalogue,
    _bad,
    _finish,
    _pick_columns,
    _too_many,
)
from shared.contracts.errors import ErrorCode

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
            raise _bad(
                ErrorCode.BAD_FITS, f"FITS header of HDU {index} has no END card: the file is truncated or corrupt"
            )
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
    numeric = isinstance(scale, (int, float)) and isinstance(zero, (int, float))
    booleans = isinstance(scale, bool) or isinstance(zero, bool)
    if numeric and not booleans and (scale != 1 or zero != 0):
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
    ext = list(hdus[1:])
    bintables = [u for u in ext if str(u.header.get("XTENSION", "")).strip() == "BINTABLE"]
    for u in bintables:
        nrows = u.header.get("NAXIS2", 0)
        if isinstance(nrows, int) and nrows > max_rows:
            raise _too_many(nrows, max_rows)
    if not bintables:
        if any(str(u.header.get("XTENSION", "")).strip() == "TABLE" for u in ext):
            raise _bad(
                ErrorCode.NOT_A_CATALOGUE,
                "FITS ASCII tables are not supported; use CATALOG_TYPE FITS_1.0, FITS_LDAC or ASCII_HEAD",
            )
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
    values = {k: (np.concatenate([p[k] for p in parts]) if parts[0][k] is not None else None) for k in parts[0]}
    mag = values["mag"]
    assert mag is not None  # _pick_columns refuses a table without a magnitude
    if len(mag) > max_rows:
        raise _too_many(len(mag), max_rows)
    if len(mag) == 0:
        raise _bad(ErrorCode.NO_ROWS, "the catalogue has no rows: SExtractor found no sources in the image")
    return _finish(
        values,
        "fits_ldac" if ldac else "fits",
        warn,
        line_of=None,
        names={**picked, "flags": "FLAGS"} if picked else {},
    )
