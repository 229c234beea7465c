"""The rows of a text catalogue read by one compiled pass over its bytes.

Almost every upload is plain: whitespace-separated decimal numbers, the
same count on every line, perhaps ``#`` comments. :func:`read_plain_rows`
reads those at memory speed; anything else (a ``nan``, a text column we
need, a short row, too many rows, a control character) makes it answer
None, and the pandas reader reads the rows or says exactly what is wrong
with them. So this reader never has to explain an error, and it never
accepts a file the pandas reader would refuse once ``parse_catalogue`` has
normalised it (old Mac line ends to ``\n``, indented comment lines
removed; a lone ``\r`` here is left to pandas). One difference in bits, not
value: a ``-0`` in a column of whole numbers is -0.0 here, +0 in pandas'
integer column.

Numbers are converted exactly as ``float()`` does (correctly rounded):
with at most 2**53 in the digits and a power of ten within 1e+-22, the
product or quotient of two exact doubles is correctly rounded (Clinger
1990, the "fast path"); any other number is left to pandas.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from shared.jit import JIT

_HASH, _NL, _CR, _TAB, _SPACE = ord("#"), ord("\n"), ord("\r"), ord("\t"), ord(" ")
_PLUS, _MINUS, _DOT, _ZERO, _NINE = ord("+"), ord("-"), ord("."), ord("0"), ord("9")
_E_LOWER, _E_UPPER = ord("e"), ord("E")
_MAX_EXACT = 2**53
#: 1e0 ... 1e22, all exact in binary64
_POW10 = np.array([10.0**k for k in range(23)])


@njit(**JIT)
def _is_delimiter(b):  # pragma: no cover - compiled
    return b == _SPACE or b == _TAB or b == _NL or b == _CR or b == _HASH


@njit(**JIT)
def _parse_number(buf, i, n):  # pragma: no cover - compiled
    """(ok, value, end) of the decimal number at ``buf[i]``; ok False if it is not one on the fast path."""
    negative = False
    if buf[i] == _PLUS or buf[i] == _MINUS:
        negative = buf[i] == _MINUS
        i += 1
    mantissa = 0
    digits = 0
    exp10 = 0
    while i < n:
        d = np.uint8(buf[i] - _ZERO)  # wraps below '0': one comparison
        if d > 9:
            break
        mantissa = mantissa * 10 + d  # type: ignore[assignment]  # int + uint8 stays an integer (int64 in numba)
        digits += 1
        i += 1
    if i < n and buf[i] == _DOT:
        i += 1
        while i < n:
            d = np.uint8(buf[i] - _ZERO)
            if d > 9:
                break
            mantissa = mantissa * 10 + d  # type: ignore[assignment]  # int + uint8 stays an integer (int64 in numba)
            digits += 1
            exp10 -= 1
            i += 1
    # beyond 18 digits the mantissa may have overflowed (leading zeros count: rare, left to pandas)
    if digits == 0 or digits > 18:
        return False, 0.0, i
    if i < n and (buf[i] == _E_LOWER or buf[i] == _E_UPPER):
        i += 1
        exp_negative = False
        if i < n and (buf[i] == _PLUS or buf[i] == _MINUS):
            exp_negative = buf[i] == _MINUS
            i += 1
        start = i
        exponent = 0
        while i < n and _ZERO <= buf[i] <= _NINE and exponent < 1000:
            exponent = exponent * 10 + (buf[i] - _ZERO)
            i += 1
        if i == start:
            return False, 0.0, i
        exp10 += -exponent if exp_negative else exponent
    if mantissa > _MAX_EXACT or (i < n and not _is_delimiter(buf[i])):
        return False, 0.0, i
    if mantissa == 0:
        value = 0.0
    elif 0 <= exp10 <= 22:
        value = mantissa * _POW10[exp10]
    elif -22 <= exp10 < 0:
        value = mantissa / _POW10[-exp10]
    else:
        return False, 0.0, i
    return True, -value if negative else value, i


@njit(**JIT)
def _scan(buf, ncols, slot_of_column, nslots, max_rows):  # pragma: no cover - compiled
    """(ok, rows read, values[slot, row]) of whitespace-separated rows with ``ncols`` fields each."""
    n = buf.shape[0]
    # a row takes at least two bytes per field (a character and a separator)
    out = np.empty((nslots, min(n // (2 * ncols) + 1, max_rows + 1)))
    row = 0
    col = 0
    i = 0
    while i < n:
        b = buf[i]
        if b == _SPACE or b == _TAB:
            i += 1
            continue
        if b == _CR:
            if i + 1 < n and buf[i + 1] != _NL:
                return False, 0, out  # an old Mac line end: pandas' business
            i += 1
            continue
        if b == _NL or b == _HASH:
            if b == _HASH:  # a comment runs to the end of its line
                while i < n and buf[i] != _NL:
                    i += 1
            if col:
                if col != ncols:
                    return False, 0, out
                row += 1
                col = 0
                if row > max_rows:
                    return False, 0, out
            i += 1
            continue
        if col >= ncols:
            return False, 0, out
        slot = slot_of_column[col]
        if slot >= 0:
            ok, value, i = _parse_number(buf, i, n)
            if not ok:
                return False, 0, out
            out[slot, row] = value
        else:
            while i < n and not _is_delimiter(buf[i]):
                if buf[i] < 32 or buf[i] == 127:
                    return False, 0, out
                i += 1
        col += 1
    if col:
        if col != ncols:
            return False, 0, out
        row += 1
        if row > max_rows:
            return False, 0, out
    return True, row, out


@njit(**JIT)
def sanitise_columns(mag, err, ra, dec, flags, unusable):  # pragma: no cover - compiled
    """Unusable values to NaN, in place; the first bad position and FLAGS value.

    A magnitude that is not finite or is SExtractor's 99 sentinel (``|mag|
    >= unusable``), an error that is not finite, the sentinel or negative,
    and a position that is not finite become NaN; RA 360 becomes 0. Returns
    the number of negative errors, the first row with a Dec outside [-90,
    90], with an RA outside [0, 360], with a FLAGS value that is not a
    non-negative 32-bit integer (-1: none; ``flags`` may be empty), and the
    number of usable rows (finite magnitude and position).
    """
    n_negative = 0
    bad_dec = bad_ra = bad_flag = -1
    n_usable = 0
    for i in range(mag.shape[0]):
        if not (math.isfinite(mag[i]) and abs(mag[i]) < unusable):
            mag[i] = np.nan
        if not (math.isfinite(err[i]) and err[i] < unusable):
            err[i] = np.nan
        elif err[i] < 0:
            n_negative += 1
            err[i] = np.nan
        if not math.isfinite(ra[i]):
            ra[i] = np.nan
        elif (ra[i] < 0.0 or ra[i] > 360.0) and bad_ra < 0:
            bad_ra = i
        if not math.isfinite(dec[i]):
            dec[i] = np.nan
        elif (dec[i] < -90.0 or dec[i] > 90.0) and bad_dec < 0:
            bad_dec = i
        if flags.shape[0] and bad_flag < 0:
            f = flags[i]
            if not math.isfinite(f) or f < 0 or f > 2**31 - 1 or f != math.floor(f):
                bad_flag = i
        if ra[i] == 360.0:
            ra[i] = 0.0
        n_usable += math.isfinite(mag[i]) and math.isfinite(ra[i]) and math.isfinite(dec[i])
    return n_negative, bad_dec, bad_ra, bad_flag, n_usable


def read_plain_rows(body: bytes, ncols: int, columns: list[int], max_rows: int) -> list[np.ndarray] | None:
    """The values of ``columns`` (0-based) in every row, or None if the rows are not plain.

    Plain: every non-blank line has ``ncols`` whitespace-separated fields
    (after removing a ``#`` comment), the wanted ones decimal numbers on the
    fast path (see the module docstring); at most ``max_rows`` rows, at
    least one.
    """
    if len(set(columns)) != len(columns):
        raise ValueError(f"columns must be distinct, got {columns}")
    slot_of_column = np.full(ncols, -1, dtype=np.int64)
    for slot, c in enumerate(columns):
        slot_of_column[c] = slot
    ok, nrows, out = _scan(np.frombuffer(body, dtype=np.uint8), ncols, slot_of_column, len(columns), max_rows)
    if not ok or nrows == 0:
        return None
    return [out[slot, :nrows] for slot in range(len(columns))]


def warm_up() -> None:
    """Compile (or load from the cache) the reader before the first upload needs it."""
    columns = read_plain_rows(b"1 2.5e-1 3\n", 3, [0, 1, 2], 10)
    assert columns is not None, "the compiled reader refused a plain row"
    (mag, err, ra), dec = columns, np.zeros(1)
    sanitise_columns(mag, err, ra, dec, np.zeros(1), 90.0)
    sanitise_columns(mag, err, ra, dec, np.zeros(0), 90.0)
