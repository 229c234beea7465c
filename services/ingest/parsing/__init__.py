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

Modules: :mod:`.common` (the columns, the result, the checks every format
shares), :mod:`.text` (the ASCII formats), :mod:`.fits` (the FITS walker);
this one tells them apart.

Every failure is a :class:`BadCatalogue` (HTTP 400) with a stable ``code``,
or :class:`PayloadTooLarge` (413, ``too_many_rows``).
"""

from __future__ import annotations

from services.ingest.parsing.common import (
    DEFAULT_MAX_ROWS,
    ERROR_CODES,
    MAG_COLUMNS,
    MAX_HEADER_LINES,
    POSITION_COLUMNS,
    ParsedCatalogue,
    _bad,
)
from services.ingest.parsing.fits import _parse_fits
from services.ingest.parsing.text import _parse_text, _refuse_binary
from shared.contracts.errors import ErrorCode
from shared.errors import PayloadTooLarge

__all__ = [
    "ParsedCatalogue",
    "parse_catalogue",
    "MAG_COLUMNS",
    "POSITION_COLUMNS",
    "ERROR_CODES",
    "DEFAULT_MAX_ROWS",
    "MAX_HEADER_LINES",
]


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
