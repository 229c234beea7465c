"""Property tests for parse_catalogue: it only ever raises our errors; tables round-trip."""

from __future__ import annotations

import io

import numpy as np
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.parsing import parse_catalogue
from shared.errors import BadCatalogue, PayloadTooLarge

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def only_our_errors(data: bytes, max_rows: int = 1000) -> None:
    try:
        r = parse_catalogue(data, max_rows=max_rows)
    except (BadCatalogue, PayloadTooLarge) as err:
        assert err.code and err.message and len(err.message) <= 300
        return
    assert r.n_rows == len(r.table) >= r.n_usable >= 1
    assert r.format in ("ascii_head", "ascii", "fits", "fits_ldac")


@FAST
@given(st.binary(max_size=4000))
def test_arbitrary_bytes(data: bytes) -> None:
    only_our_errors(data)


TOKENS = [
    "#", " ", "  ", "\t", "\n", "\r\n", "\r", "1", "-2.5", "99.0", "nan", "inf", "1e400", "-1e-400", "360", "-91",
    "0", "# 1 MAG_AUTO", "# 2 MAGERR_AUTO", "# 3 ALPHA_J2000", "# 4 DELTA_J2000", "# 5 FLAGS", "# 0 MAG_APER",
    "MAG_AUTO", "RA", "DEC", '"', "'", ",", "\x00", "\xe9", "\ufeff", "abc", "1.5.5", "+", "-", ".", "e",
    "\x0b", "\x0c", "\xa0", "\x1a", "   #", "12 0.1 10 20", "MAG_AUTO MAGERR_AUTO RA DEC", "0x1p3", "1_0", "-0",
]  # fmt: skip


@FAST
@given(st.lists(st.sampled_from(TOKENS), max_size=120), st.sampled_from(["latin-1", "utf-8", "utf-16"]))
def test_catalogue_like_text(tokens: list[str], encoding: str) -> None:
    only_our_errors("".join(tokens).encode(encoding, errors="replace"), max_rows=20)


@FAST
@given(st.text(alphabet=st.characters(codec="latin-1"), max_size=400))
def test_arbitrary_text_after_a_header(text: str) -> None:
    head = "#   1 MAG_AUTO\n#   2 MAGERR_AUTO\n#   3 ALPHA_J2000\n#   4 DELTA_J2000\n"
    only_our_errors((head + text).encode("latin-1"))


def _valid_fits() -> bytes:
    cols = [
        fits.Column(name="MAG_AUTO", format="1E", array=np.array([12.0, 13.0, 99.0], dtype=np.float32)),
        fits.Column(name="MAGERR_AUTO", format="1E", array=np.array([0.1, 0.2, 99.0], dtype=np.float32)),
        fits.Column(name="ALPHA_J2000", format="1D", array=np.array([1.0, 2.0, 3.0])),
        fits.Column(name="DELTA_J2000", format="1D", array=np.array([4.0, 5.0, 6.0])),
        fits.Column(name="FLAGS", format="1I", array=np.array([0, 1, 2], dtype=np.int16)),
    ]
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols, name="LDAC_OBJECTS")]).writeto(buf)
    return buf.getvalue()


VALID_FITS = _valid_fits()


@FAST
@given(
    st.lists(st.tuples(st.integers(0, len(VALID_FITS) - 1), st.binary(min_size=1, max_size=12)), max_size=6),
    st.integers(0, len(VALID_FITS)),
)
def test_mutated_fits(edits: list[tuple[int, bytes]], cut: int) -> None:
    data = bytearray(VALID_FITS)
    for pos, chunk in edits:
        data[pos : pos + len(chunk)] = chunk
    only_our_errors(bytes(data))
    only_our_errors(bytes(data[:cut]))


DIGITS = st.sampled_from([b"0", b"1", b"9", b"99", b"1000000000000", b"-5", b"X", b"  ", b"'", b"2.5"])


@FAST
@given(st.sampled_from([b"NAXIS1  =", b"NAXIS2  =", b"BITPIX  =", b"PCOUNT  =", b"TFIELDS =", b"NAXIS   ="]), DIGITS)
def test_hostile_fits_numbers(key: bytes, value: bytes) -> None:
    data = bytearray(VALID_FITS)
    start = VALID_FITS.index(b"XTENSION")
    i = VALID_FITS.index(key, start)
    data[i + 10 : i + 30] = value.rjust(20)
    only_our_errors(bytes(data))


# ---------------------------------------------------------------------------
# round trip
# ---------------------------------------------------------------------------

finite_mag = st.floats(-30, 40, allow_nan=False, width=32)
mags = st.one_of(finite_mag, finite_mag, finite_mag, st.sampled_from([99.0, float("nan"), float("inf")]))


@st.composite
def tables(draw):
    n = draw(st.integers(1, 40))
    rows = st.tuples(
        finite_mag,
        mags,
        st.floats(0, 2, allow_nan=False),
        st.floats(0, 360, allow_nan=False, exclude_max=True),
        st.floats(-90, 90, allow_nan=False),
        st.integers(0, 2**16),
    )
    data = draw(st.lists(rows, min_size=n, max_size=n))
    first, mag, err, ra, dec, flags = (np.array(c) for c in zip(*data))
    mag[0] = first[0]  # at least one usable source
    return {"MAG_AUTO": mag, "MAGERR_AUTO": err, "ALPHA_J2000": ra, "DELTA_J2000": dec, "FLAGS": flags}


def write_ascii_head(cols: dict, order: list[str], aper: int) -> str:
    """SExtractor-style ASCII_HEAD text; a MAG_APER vector of ``aper`` columns before the last column."""
    names = list(order)
    if aper:
        names.insert(len(names) - 1, "MAG_APER")
    head, n, number = [], len(cols["MAG_AUTO"]), 1
    parts = []
    for name in names:
        head.append(f"#{number:4d} {name:<22s} description   [unit]")
        if name == "MAG_APER":
            parts.extend([np.full(n, 20.0)] * aper)
            number += aper
        else:
            parts.append(cols[name])
            number += 1
    body = [" ".join(repr(float(v)) for v in row) for row in zip(*parts)]
    return "\n".join(head + body) + "\n"


def check_equal(r, cols) -> None:
    with np.errstate(invalid="ignore"):
        mag = np.where(np.isfinite(cols["MAG_AUTO"]) & (np.abs(cols["MAG_AUTO"]) < 90), cols["MAG_AUTO"], np.nan)
    np.testing.assert_array_equal(r.table.mag, mag.astype(np.float32))
    np.testing.assert_array_equal(r.table.mag_err, cols["MAGERR_AUTO"].astype(np.float32))
    np.testing.assert_array_equal(r.table.ra, cols["ALPHA_J2000"])
    np.testing.assert_array_equal(r.table.dec, cols["DELTA_J2000"])
    np.testing.assert_array_equal(r.table.flags, cols["FLAGS"])
    assert r.n_rows == len(mag) and r.n_usable == int(np.isfinite(mag).sum())


@FAST
@given(tables(), st.permutations(["MAG_AUTO", "MAGERR_AUTO", "ALPHA_J2000", "DELTA_J2000", "FLAGS"]), st.integers(0, 4))
def test_round_trip_ascii_head(cols, order, aper) -> None:
    r = parse_catalogue(write_ascii_head(cols, order, aper).encode())
    assert r.format == "ascii_head"
    check_equal(r, cols)


TEXT_VARIANTS = {
    "crlf": lambda t: t.replace("\n", "\r\n"),
    "cr": lambda t: t.replace("\n", "\r"),
    "tabs": lambda t: t.replace(" ", "\t"),
    "blank_lines": lambda t: t.replace("\n", "\n\n  \t\n"),
    "comments": lambda t: "# caf\xe9 \u201cx\u201d \xb0C\n" + t + "# the end\n",
    "leading_spaces": lambda t: t.replace("\n", "\n   "),
}
ENCODINGS = {
    "utf-8": lambda t: t.encode("utf-8"),
    "bom": lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"),
    "cp1252": lambda t: t.encode("cp1252"),
    "utf-16": lambda t: t.encode("utf-16"),
}


@FAST
@given(
    tables(),
    st.lists(st.sampled_from(sorted(TEXT_VARIANTS)), max_size=3, unique=True),
    st.sampled_from(sorted(ENCODINGS)),
)
def test_variants_parse_equal(cols, variants, encoding) -> None:
    text = write_ascii_head(cols, ["MAG_AUTO", "MAGERR_AUTO", "ALPHA_J2000", "DELTA_J2000", "FLAGS"], 0)
    for name in variants:
        text = TEXT_VARIANTS[name](text)
    check_equal(parse_catalogue(ENCODINGS[encoding](text)), cols)
