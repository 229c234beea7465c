"""Reading VizieR extracts (CSV, TSV, CSV.gz, FITS tables, VOTables) of a survey.

An extract is read into plain numpy columns under the survey's VizieR names
(shared/contracts/surveys.py): positions float64, magnitudes and errors float32, NaN
where a cell was empty or a band column is absent. A file without the
survey's position columns is refused with a message naming them.
"""

from __future__ import annotations

import gzip
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.catalog.layout import Columns
from shared.contracts.errors import ErrorCode
from shared.errors import BadInput

_NULLS = ["", "NaN", "nan", "NAN", "null", "NULL", "None", "--", "-", "---"]
_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fz")
_VOT_SUFFIXES = (".vot", ".votable", ".xml", ".vot.gz", ".xml.gz", ".votable.gz")


@dataclass
class Extract:
    """The usable rows of one file: columns by VizieR name, and what was dropped."""

    path: Path
    columns: dict[str, np.ndarray]
    rows_read: int
    rows_without_position: int

    def __len__(self) -> int:
        return self.rows_read - self.rows_without_position


def _position_aliases(name: str, other: str) -> list[str]:
    # VizieR's computed positions (_RAJ2000) stand in for the catalogue's own.
    out = [name, f"_{name}"]
    out += [f"_{other}", other]
    return out


def _find(names: list[str], candidates: list[str]) -> str | None:
    for cand in candidates:
        if cand in names:
            return cand
    lower = {n.lower(): n for n in names}
    for cand in candidates:
        if cand.lower() in lower:
            return lower[cand.lower()]
    # VOTable IDs and some tools turn "g'mag" into "g_mag"
    squashed = {_squash(n): n for n in names}
    for cand in candidates:
        if _squash(cand) in squashed:
            return squashed[_squash(cand)]
    return None


def _squash(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower())


def _resolve(names: list[str], cols: Columns, path: Path) -> tuple[str, str, dict[str, str]]:
    """Map the file's column names to the stored ones: (ra, dec, {stored: in file})."""
    names = [n.strip() for n in names]
    other_ra = "RA_ICRS" if cols.ra == "RAJ2000" else "RAJ2000"
    other_dec = "DE_ICRS" if cols.dec == "DEJ2000" else "DEJ2000"
    ra = _find(names, _position_aliases(cols.ra, other_ra))
    dec = _find(names, _position_aliases(cols.dec, other_dec))
    if ra is None or dec is None:
        shown = ", ".join(names[:30]) + (" ..." if len(names) > 30 else "")
        raise BadInput(
            f"{path.name}: no position columns; expected {cols.ra!r} and {cols.dec!r} "
            f"(VizieR names) but the file has: {shown or 'no columns'}",
            code=ErrorCode.BAD_EXTRACT,
        )
    values: dict[str, str] = {}
    stored_lower: dict[str, int] = {}
    for stored in cols.value_columns:
        stored_lower[stored.lower()] = stored_lower.get(stored.lower(), 0) + 1
    for stored in cols.value_columns:
        if stored_lower[stored.lower()] > 1:
            # GaiaSP has Rmag (Cousins) and rmag (Sloan): only the exact name will do
            found = stored if stored in names else None
        else:
            found = _find(names, [stored])
        if found is not None:
            values[stored] = found
    return ra, dec, values


def _sexagesimal(values: np.ndarray, hours: bool) -> np.ndarray:
    """'12 34 56.7' / '12:34:56.7' / '-01 02 03' -> degrees (NaN if unparsable)."""
    import pandas as pd

    s = pd.Series(values, dtype="string").str.strip()
    numeric = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    parts = s.str.replace(":", " ", regex=False).str.split(r"\s+", regex=True, n=2, expand=True)
    if parts.shape[1] < 3:
        return numeric
    a = pd.to_numeric(parts[0], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    b = pd.to_numeric(parts[1], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    c = pd.to_numeric(parts[2], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    neg = s.str.startswith("-").fillna(False).to_numpy(dtype=bool)
    deg = np.abs(a) + b / 60.0 + c / 3600.0
    deg = np.where(neg, -deg, deg)
    if hours:
        deg = deg * 15.0
    return np.where(np.isfinite(numeric), numeric, deg)


def _as_float(values, *, hours: bool | None = None) -> np.ndarray:
    arr = np.ma.asarray(values)
    if arr.dtype.kind in "USO":
        strings = np.asarray(arr.filled("") if np.ma.is_masked(arr) else arr).astype(str)
        if hours is None:
            import pandas as pd

            return pd.to_numeric(pd.Series(strings).str.strip(), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        return _sexagesimal(strings, hours)
    out = np.ma.asarray(arr, dtype=np.float64)
    return np.asarray(out.filled(np.nan), dtype=np.float64)


def _finish(path: Path, ra: np.ndarray, dec: np.ndarray, values: dict[str, np.ndarray], cols: Columns) -> Extract:
    n = len(ra)
    ok = np.isfinite(ra) & np.isfinite(dec) & (dec >= -90.0) & (dec <= 90.0)
    out: dict[str, np.ndarray] = {
        cols.ra: np.mod(ra[ok], 360.0),
        cols.dec: dec[ok],
    }
    nan = None
    for stored in cols.value_columns:
        if stored in values:
            v = values[stored][ok].astype(np.float32)
            # VizieR/SExtractor-style "no measurement" sentinels
            v[(v >= 99.0) | (v <= -99.0)] = np.nan
            out[stored] = v
        else:
            if nan is None:
                nan = np.full(int(ok.sum()), np.nan, dtype=np.float32)
            out[stored] = nan
    return Extract(path=path, columns=out, rows_read=n, rows_without_position=int(n - ok.sum()))


# --------------------------------------------------------------------------- CSV / TSV


def _open_text(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _looks_numeric(cell: str) -> bool:
    cell = cell.strip().strip('"')
    if cell == "":
        return True  # an empty cell is a data row without a value
    try:
        float(cell)
        return True
    except ValueError:
        pass
    parts = cell.replace(":", " ").split()
    if len(parts) == 3:
        try:
            [float(p) for p in parts]
            return True
        except ValueError:
            return False
    return False


def _sniff(path: Path) -> tuple[int, str, list[str], int]:
    """(header line index, delimiter, names, junk lines after the header)."""
    head: list[str] = []
    with _open_text(path) as fh:
        for _ in range(200):
            line = fh.readline()
            if not line:
                break
            head.append(line.rstrip("\r\n"))
    header_idx = None
    for i, line in enumerate(head):
        if line.strip() and not line.lstrip().startswith("#"):
            header_idx = i
            break
    if header_idx is None:
        raise BadInput(
            f"{path.name}: no header line found (is it an empty or non-CSV file?)", code=ErrorCode.BAD_EXTRACT
        )
    header = head[header_idx]
    delim = max(["\t", ",", ";", "|"], key=header.count)
    if header.count(delim) == 0:
        delim = ","
    names = [n.strip().strip('"') for n in header.split(delim)]
    # VizieR TSV: a units line and a dashes line follow the names
    junk = 0
    for line in head[header_idx + 1 : header_idx + 4]:
        cells = line.split(delim)
        if line.strip() and not all(_looks_numeric(c) for c in cells[: min(3, len(cells))]):
            junk += 1
        else:
            break
    return header_idx, delim, names, junk


def _read_csv(path: Path, cols: Columns) -> Extract:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    header_idx, delim, names, junk = _sniff(path)
    ra_name, dec_name, value_names = _resolve(names, cols, path)
    wanted = [ra_name, dec_name, *value_names.values()]
    with open(path, "rb") as fh:
        compression = "gzip" if fh.read(2) == b"\x1f\x8b" else None
    try:
        with pa.input_stream(str(path), compression=compression) as stream:
            table = pacsv.read_csv(
                stream,
                read_options=pacsv.ReadOptions(skip_rows=header_idx, skip_rows_after_names=junk, block_size=8 << 20),
                parse_options=pacsv.ParseOptions(delimiter=delim),
                convert_options=pacsv.ConvertOptions(
                    include_columns=wanted,
                    column_types={c: pa.float64() for c in value_names.values()},
                    null_values=_NULLS,
                    strings_can_be_null=True,
                ),
            )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        table = None
    if table is None:
        # padded cells, stray text: the forgiving (slower) route
        import pandas as pd

        df = pd.read_csv(
            path,
            sep=delim,
            skiprows=list(range(header_idx)) + list(range(header_idx + 1, header_idx + 1 + junk)),
            usecols=wanted,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            compression="gzip" if compression else None,
        )
        ra = _as_float(df[ra_name].to_numpy(dtype=str), hours=True)
        dec = _as_float(df[dec_name].to_numpy(dtype=str), hours=False)
        values = {k: _as_float(df[v].to_numpy(dtype=str)) for k, v in value_names.items()}
        return _finish(path, ra, dec, values, cols)

    def col(name: str, hours: bool | None) -> np.ndarray:
        c = table.column(name)
        if pa.types.is_floating(c.type) or pa.types.is_integer(c.type):
            return c.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        if pa.types.is_null(c.type):
            return np.full(len(c), np.nan)
        return _as_float(np.asarray(c.to_pylist(), dtype=object).astype(str), hours=hours)

    ra = col(ra_name, True)
    dec = col(dec_name, False)
    values = {k: col(v, None) for k, v in value_names.items()}
    return _finish(path, ra, dec, values, cols)


# --------------------------------------------------------------------------- FITS / VOTable


def _read_astropy(path: Path, cols: Columns, fmt: str) -> Extract:
    import warnings

    from astropy.table import Table

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "votable":
                table = Table.read(path, format=fmt, use_names_over_ids=True)
            else:
                table = Table.read(path, format=fmt)
    except Exception as exc:
        raise BadInput(f"{path.name}: cannot read as {fmt}: {exc}", code=ErrorCode.BAD_EXTRACT) from exc
    ra_name, dec_name, value_names = _resolve(list(table.colnames), cols, path)
    ra = _as_float(table[ra_name], hours=True)
    dec = _as_float(table[dec_name], hours=False)
    values = {k: _as_float(table[v]) for k, v in value_names.items()}
    return _finish(path, ra, dec, values, cols)


def detect_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(_FITS_SUFFIXES):
        return "fits"
    if name.endswith(_VOT_SUFFIXES):
        return "votable"
    with open(path, "rb") as fh:
        start = fh.read(512)
    if start[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as unzipped:
                start = unzipped.read(512)
        except OSError:
            return "csv"
    if start.startswith(b"SIMPLE  ="):
        return "fits"
    stripped = start.lstrip()
    if stripped.startswith(b"<?xml") or stripped.startswith(b"<VOTABLE"):
        return "votable"
    return "csv"


def read_extract(path: Path, cols: Columns) -> Extract:
    """Read one VizieR extract into the survey's stored columns."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such file", code=ErrorCode.BAD_EXTRACT)
    fmt = detect_format(path)
    if fmt == "csv":
        return _read_csv(path, cols)
    return _read_astropy(path, cols, fmt)
