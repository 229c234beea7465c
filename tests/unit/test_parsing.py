"""parse_catalogue: every format, the robustness cases, every error code."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from numpy.typing import ArrayLike

from services.ingest.parsing import ERROR_CODES, ParsedCatalogue, parse_catalogue
from shared.errors import BadCatalogue, PayloadTooLarge

DATA = Path(__file__).resolve().parents[1] / "data" / "parsing"

MINIMAL = b"#   1 MAG_AUTO\n#   2 MAGERR_AUTO\n#   3 ALPHA_J2000\n#   4 DELTA_J2000\n"
ROWS = b" -12.3456   0.0123 150.1234567 -20.1234567\n -10.0001   0.0456 150.2000000 -20.0500000\n"


def bad(data: bytes, code: str, **kw) -> BadCatalogue:
    with pytest.raises(BadCatalogue) as info:
        parse_catalogue(data, **kw)
    err = info.value
    assert err.code == code, (err.code, err.message)
    assert code in ERROR_CODES
    assert len(err.message) <= 220, err.message
    return err


def ascii_head(cols: dict[str, ArrayLike]) -> bytes:
    names = list(cols)
    head = "".join(f"#{i + 1:4d} {n:<22s} some description [unit]\n" for i, n in enumerate(names))
    rows = np.column_stack([np.asarray(cols[n], dtype=float) for n in names])
    return (head + "\n".join(" ".join(repr(float(v)) for v in r) for r in rows) + "\n").encode()


# ---------------------------------------------------------------------------
# formats
# ---------------------------------------------------------------------------


def test_minimal_cpcs_file() -> None:
    r = parse_catalogue((DATA / "cpcs_minimal.cat").read_bytes())
    assert isinstance(r, ParsedCatalogue)
    assert r.format == "ascii_head" and r.n_rows == 3 and r.n_usable == 2
    np.testing.assert_allclose(r.table.mag[:2], [-12.3456, -10.0001], rtol=1e-6)
    assert np.isnan(r.table.mag[2]) and np.isnan(r.table.mag_err[2])
    np.testing.assert_array_equal(r.table.ra, [150.1234567, 150.2, 150.3])
    np.testing.assert_array_equal(r.table.dec, [-20.1234567, -20.05, -20.2])
    np.testing.assert_array_equal(r.table.flags, [0, 0, 0])
    assert r.table.ra.dtype == np.dtype("<f8") and r.table.mag.dtype == np.dtype("<f4")
    assert any("1 of 3" in w for w in r.warnings)


def test_real_sextractor_ascii_head_with_vector_columns() -> None:
    r = parse_catalogue((DATA / "sextractor_ascii_head.cat").read_bytes())
    assert r.format == "ascii_head" and r.n_rows == 6 and r.n_usable == 6
    # MAG_APER (3 apertures) occupies columns 4..6, ALPHA_J2000 is column 10
    np.testing.assert_allclose(r.table.mag, [-9.7542, -10.1963, -10.7526, -8.6781, -6.9986, -9.2399], rtol=1e-6)
    np.testing.assert_allclose(r.table.mag_err[0], 0.0052, rtol=1e-6)
    assert r.table.ra[0] == 149.9784150 and r.table.dec[0] == -20.0241722
    assert r.warnings == []


def test_windows_file_vector_aper_fallback_x_world() -> None:
    r = parse_catalogue((DATA / "windows_vector_aper.cat").read_bytes(), filename="x.cat")
    assert r.format == "ascii_head" and r.n_rows == 3 and r.n_usable == 2
    assert np.isnan(r.table.mag[0])  # 99.0 with a negative flux
    np.testing.assert_allclose(r.table.mag[1:], [-11.1, -8.2], rtol=1e-6)  # first aperture
    np.testing.assert_allclose(r.table.mag_err[1:], [0.010, 0.05], rtol=1e-6)
    np.testing.assert_array_equal(r.table.ra, [10.5, 10.6, 10.7])
    np.testing.assert_array_equal(r.table.dec, [45.25, 45.3, 45.35])
    assert any("MAG_APER" in w for w in r.warnings)
    assert any("X_WORLD" in w for w in r.warnings)


@pytest.mark.parametrize(
    ("mag", "err", "ra", "dec", "warn"),
    [
        ("MAG_BEST", "MAGERR_BEST", "ALPHA_J2000", "DELTA_J2000", "MAG_BEST"),
        ("MAG_ISOCOR", "MAGERR_ISOCOR", "ALPHA_SKY", "DELTA_SKY", "MAG_ISOCOR"),
        ("MAG_PSF", "MAGERR_PSF", "RA", "DEC", "MAG_PSF"),
        ("mag_auto", "magerr_auto", "alphawin_j2000", "deltawin_j2000", None),
    ],
)
def test_column_fallbacks(mag, err, ra, dec, warn) -> None:
    data = ascii_head({"NUMBER": [1, 2], mag: [12.5, 13.5], err: [0.01, 0.02], ra: [1.0, 2.0], dec: [3.0, 4.0]})
    r = parse_catalogue(data)
    np.testing.assert_allclose(r.table.mag, [12.5, 13.5])
    np.testing.assert_array_equal(r.table.ra, [1.0, 2.0])
    if warn:
        assert any(warn in w for w in r.warnings)


def test_mag_auto_preferred_and_flags_read() -> None:
    data = ascii_head(
        {
            "MAG_BEST": [1.0, 2.0],
            "MAGERR_BEST": [0.1, 0.1],
            "MAG_AUTO": [12.0, 13.0],
            "MAGERR_AUTO": [0.01, 0.02],
            "FLAGS": [0, 3],
            "ALPHA_J2000": [10.0, 11.0],
            "DELTA_J2000": [-5.0, -6.0],
            "EXTRA": [7, 8],
        }
    )
    r = parse_catalogue(data)
    np.testing.assert_allclose(r.table.mag, [12.0, 13.0])
    np.testing.assert_array_equal(r.table.flags, [0, 3])
    assert r.table.flags.dtype == np.dtype("<i4")
    assert r.warnings == []


def test_names_only_header_lines() -> None:
    for head in (
        b"# MAG_AUTO MAGERR_AUTO ALPHA_J2000 DELTA_J2000\n",
        b"MAG_AUTO MAGERR_AUTO ALPHA_J2000 DELTA_J2000\n",
    ):
        r = parse_catalogue(head + ROWS)
        assert r.format == "ascii_head" and r.n_rows == 2 and r.warnings == []


def test_headerless_cpcs_order_with_warning() -> None:
    r = parse_catalogue((DATA / "headerless.cat").read_bytes())
    assert r.format == "ascii" and r.n_rows == 2
    np.testing.assert_allclose(r.table.mag, [-12.3456, -10.0001], rtol=1e-6)
    np.testing.assert_array_equal(r.table.ra, [150.1234567, 150.2])
    assert any("MAG_AUTO MAGERR_AUTO ALPHA_J2000 DELTA_J2000" in w for w in r.warnings)
    r = parse_catalogue(b"12.1 0.01 10.0 20.0 5 6\n13.1 0.02 11.0 21.0 5 6\n")
    assert r.format == "ascii" and any("2 more columns ignored" in w for w in r.warnings)


@pytest.mark.parametrize(
    "data",
    [
        b"100.5 200.0 300.1 400.2\n101 201 301 401\n",  # pixel coordinates, not RA/Dec
        b"150.1 -20.1 12.3 0.01\n150.2 -20.2 12.4 0.02\n",  # RA Dec MAG ERR order: Dec in mag slot
        b"12.3 -0.5 150.1 -20.1\n",  # negative error
    ],
)
def test_headerless_not_in_cpcs_order(data) -> None:
    err = bad(data, "no_header")
    assert "MAG_AUTO" in err.message


def fits_table(cols: dict[str, np.ndarray], ldac: bool = False, chips: int = 1) -> bytes:
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name=k, array=np.asarray(v), format=_tform(v), bzero=_bzero(v)) for k, v in cols.items()]
    )
    hdus = [fits.PrimaryHDU()]
    if ldac:
        head = fits.BinTableHDU.from_columns(
            [fits.Column(name="Field Header Card", format="1680A", array=np.array(["SIMPLE = T" + " " * 1670]))]
        )
        for _ in range(chips):
            hdus += [head.copy(), table.copy()]
            hdus[-2].name, hdus[-1].name = "LDAC_IMHEAD", "LDAC_OBJECTS"
    else:
        table.name = "OBJECTS"
        hdus.append(table)
    buf = __import__("io").BytesIO()
    fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


def _bzero(v):
    a = np.asarray(v)
    return 2 ** (8 * a.dtype.itemsize - 1) if a.dtype.kind == "u" else None


def _tform(v) -> str:
    a = np.asarray(v)
    per = int(np.prod(a.shape[1:])) if a.ndim > 1 else 1
    kinds = {"f": {4: "E", 8: "D"}, "i": {2: "I", 4: "J", 8: "K"}, "u": {2: "I", 4: "J"}}
    return f"{per}" + kinds[a.dtype.kind][a.dtype.itemsize]


COLS = {
    "NUMBER": np.array([1, 2, 3], dtype=np.int32),
    "MAG_AUTO": np.array([12.5, 99.0, 13.25], dtype=np.float32),
    "MAGERR_AUTO": np.array([0.01, 99.0, 0.02], dtype=np.float32),
    "MAG_APER": np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.float32),
    "ALPHA_J2000": np.array([10.1, 10.2, 10.3]),
    "DELTA_J2000": np.array([-5.1, -5.2, -5.3]),
    "FLAGS": np.array([0, 2, 16], dtype=np.int16),
}


@pytest.mark.parametrize(("ldac", "fmt"), [(False, "fits"), (True, "fits_ldac")])
def test_fits_tables(ldac, fmt) -> None:
    r = parse_catalogue(fits_table(COLS, ldac=ldac))
    assert r.format == fmt and r.n_rows == 3 and r.n_usable == 2
    np.testing.assert_array_equal(r.table.mag, np.array([12.5, np.nan, 13.25], dtype=np.float32))
    np.testing.assert_array_equal(r.table.ra, COLS["ALPHA_J2000"])
    np.testing.assert_array_equal(r.table.dec, COLS["DELTA_J2000"])
    np.testing.assert_array_equal(r.table.flags, [0, 2, 16])


def test_fits_vector_aper_first_aperture_and_ldac_chips() -> None:
    cols = {k: v for k, v in COLS.items() if k not in ("MAG_AUTO", "MAGERR_AUTO")}
    cols["MAGERR_APER"] = cols["MAG_APER"] / 100
    r = parse_catalogue(fits_table(cols))
    np.testing.assert_array_equal(r.table.mag, [1, 4, 7])
    np.testing.assert_allclose(r.table.mag_err, [0.01, 0.04, 0.07], rtol=1e-6)
    r = parse_catalogue(fits_table(COLS, ldac=True, chips=2))
    assert r.n_rows == 6 and any("concatenated" in w for w in r.warnings)


def test_fits_scaled_and_unsigned_columns() -> None:
    cols = dict(COLS, FLAGS=np.array([0, 40000, 65535], dtype=np.uint16))  # TZERO = 32768
    r = parse_catalogue(fits_table(cols))
    np.testing.assert_array_equal(r.table.flags, [0, 40000, 65535])


# ---------------------------------------------------------------------------
# robustness
# ---------------------------------------------------------------------------


def test_variants_parse_equal() -> None:
    base = parse_catalogue(MINIMAL + ROWS)
    variants = [
        (MINIMAL + ROWS).replace(b"\n", b"\r\n"),
        (MINIMAL + ROWS).replace(b"\n", b"\r"),
        b"\xef\xbb\xbf" + MINIMAL + ROWS,
        (MINIMAL + ROWS).replace(b"   ", b"\t").replace(b" ", b"\t"),
        b"\n\n" + MINIMAL + b"\n  \t \n" + ROWS.replace(b"\n", b"\n\n") + b"# trailing comment\n# 5 NOT_A_COLUMN\n",
        b"# 2024 Jan 5, observer notes\n# 99 bad rows removed\n" + MINIMAL + b"# 7 sources kept\n" + ROWS,
        MINIMAL + b"   # an indented note\n" + ROWS + b"\t# another\n",
        b"# r\xe9duit \x93cp1252\x94 \xb0\n" + MINIMAL + ROWS + b"# caf\xc3\xa9 utf-8\n",
        ("\ufeff" + (MINIMAL + ROWS).decode()).encode("utf-16"),
        MINIMAL + ROWS.replace(b"-12.3456", b"-1.23456e+01").replace(b"150.2000000", b"1.502E2"),
        MINIMAL + ROWS + b"\x1a",
    ]
    for v in variants:
        r = parse_catalogue(v)
        assert r.format == "ascii_head", v
        for k in ("mag", "mag_err", "ra", "dec", "flags"):
            np.testing.assert_array_equal(getattr(r.table, k), getattr(base.table, k), err_msg=repr(v))


@pytest.mark.parametrize("token", [b"99", b"99.0", b"99.0000", b"NaN", b"nan", b"inf", b"-inf", b"Infinity", b"1e30"])
def test_unusable_magnitudes_kept_as_nan(token) -> None:
    r = parse_catalogue(MINIMAL + ROWS + b" " + token + b" 99.0 150.3 -20.3\n")
    assert r.n_rows == 3 and r.n_usable == 2
    assert np.isnan(r.table.mag[2]) and np.isnan(r.table.mag_err[2])


def test_nan_position_is_unusable_not_an_error() -> None:
    r = parse_catalogue(MINIMAL + ROWS + b"12.0 0.1 nan -20.3\n")
    assert r.n_rows == 3 and r.n_usable == 2 and np.isnan(r.table.ra[2])


def test_ra_360_wraps_and_bad_positions_refused() -> None:
    assert parse_catalogue(MINIMAL + b"12 0.1 360.0 0.0\n").table.ra[0] == 0.0
    err = bad(MINIMAL + ROWS + b"12 0.1 10.0 95.0\n", "bad_values")
    assert "DELTA_J2000" in err.message and "line 7" in err.message
    err = bad(MINIMAL + b"12 0.1 1024.5 12.0\n", "bad_values")
    assert "ALPHA_J2000" in err.message


def test_bad_flags() -> None:
    head = b"# 1 MAG_AUTO\n# 2 MAGERR_AUTO\n# 3 ALPHA_J2000\n# 4 DELTA_J2000\n# 5 FLAGS\n"
    err = bad(head + b"12 0.1 10 10 0\n12 0.1 10 10 1.5\n", "bad_values")
    assert "FLAGS" in err.message and "line 7" in err.message


def test_twenty_and_two_hundred_thousand_rows_are_read() -> None:
    rng = np.random.default_rng(1)
    n = 200_000
    cols = {
        "NUMBER": np.arange(n),
        "MAG_AUTO": rng.uniform(-15, -5, n).round(4),
        "MAGERR_AUTO": rng.uniform(0, 0.5, n).round(4),
        "MAG_APER": rng.uniform(-15, -5, n).round(4),
        "ALPHA_J2000": rng.uniform(0, 360, n).round(7),
        "DELTA_J2000": rng.uniform(-90, 90, n).round(7),
        "FLAGS": rng.integers(0, 4, n),
    }
    head = "".join(f"#{i + 1:4d} {k}\n" for i, k in enumerate(cols)).encode()
    body = "\n".join(
        " ".join(f"{v:.7f}" for v in row) for row in np.column_stack(list(cols.values()))[:20_000]
    ).encode()
    small = head + body + b"\n"
    big = head + (body + b"\n") * 10
    # their times (< 0.1 s and < 0.8 s) are figures of `python -m bench kernels`
    r = parse_catalogue(small)
    r_big = parse_catalogue(big)
    assert r.n_rows == 20_000 and r_big.n_rows == 200_000


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"   \n\r\n\t", b"\x00\x00\x00"])
def test_empty_file(data) -> None:
    bad(data, "empty_file")


@pytest.mark.parametrize(
    "data",
    [
        bytes(range(256)) * 4,
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"\x1f\x8b\x08\x00" + b"\x00" * 20,
        b"PK\x03\x04" + b"\x01" * 30,
        "MAG_AUTO 12.0".encode("utf-16-le"),  # UTF-16 without BOM: NULs
    ],
)
def test_not_a_catalogue(data) -> None:
    err = bad(data, "not_a_catalogue")
    assert "catalogue" in err.message


def test_not_a_catalogue_messages() -> None:
    assert bad(bytes(range(256)), "not_a_catalogue").message.startswith(
        "the file is neither a SExtractor ASCII catalogue nor a FITS table"
    )
    assert "gzip" in bad(b"\x1f\x8b\x08\x00\x00", "not_a_catalogue").message
    image = __import__("io").BytesIO()
    fits.PrimaryHDU(np.zeros((8, 8), dtype=np.float32)).writeto(image)
    assert "FITS image" in bad(image.getvalue(), "not_a_catalogue").message
    empty = __import__("io").BytesIO()
    fits.PrimaryHDU().writeto(empty)
    assert "no table" in bad(empty.getvalue(), "not_a_catalogue").message


def test_missing_columns() -> None:
    err = bad(b"# 1 NUMBER\n# 2 MAG_AUTO\n# 3 X_IMAGE\n# 4 Y_IMAGE\n1 12.0 3 4\n", "missing_columns")
    msg = err.message
    assert msg.startswith("missing columns MAGERR_AUTO, ALPHA_J2000, DELTA_J2000")
    assert "found: NUMBER, MAG_AUTO, X_IMAGE, Y_IMAGE" in msg and ".param" in msg
    cols = {k: v for k, v in COLS.items() if k != "DELTA_J2000"}
    assert "DELTA_J2000" in bad(fits_table(cols), "missing_columns").message
    assert (
        "MAGERR_AUTO"
        in bad(fits_table({k: v for k, v in COLS.items() if k != "MAGERR_AUTO"}), "missing_columns").message
    )


def test_no_rows() -> None:
    bad(MINIMAL, "no_rows")
    bad(MINIMAL + b"\n\n# only comments\n", "no_rows")
    bad(b"# just a comment\n", "no_rows")
    bad(fits_table({k: v[:0] for k, v in COLS.items()}), "no_rows")
    bad(fits_table({k: v[:0] for k, v in COLS.items()}, ldac=True), "no_rows")


def test_bad_values_say_which_line() -> None:
    err = bad(MINIMAL + ROWS + b"12.0 0.1 12:30:00.0 -20.3\n", "bad_values")
    assert err.message.startswith("line 7, column 3: '12:30:00.0' is not a number"), err.message
    err = bad(MINIMAL + ROWS + b"12,5 0.1 150.0 -20.3\n", "bad_values")
    assert "line 7" in err.message
    err = bad(MINIMAL + ROWS + b"12.0 0.1 150.0\n" + ROWS, "bad_values")  # short row
    assert err.message.startswith("line 7 has 3 values"), err.message
    err = bad(MINIMAL + ROWS + b"12.0 0.1 150.0 -20.3 5\n", "bad_values")  # long row
    assert err.message.startswith("line 7 has 5 values"), err.message
    err = bad(MINIMAL + ROWS + b'12.0 "0.1 150.0 -20.3\n' + ROWS, "bad_values")
    assert "line 7" in err.message


def test_bad_header() -> None:
    err = bad(
        b"# 1 MAG_AUTO\n# 2 MAGERR_AUTO\n# 3 ALPHA_J2000\n# 4 DELTA_J2000\n# 5 FLAGS\n12 0.1 10 10\n", "bad_header"
    )
    assert "column 5 (FLAGS)" in err.message


def test_too_many_rows() -> None:
    text = MINIMAL + ROWS * 6
    assert parse_catalogue(text, max_rows=12).n_rows == 12
    with pytest.raises(PayloadTooLarge) as info:
        parse_catalogue(text, max_rows=11)
    assert info.value.code == "too_many_rows" and info.value.http_status == 413
    with pytest.raises(PayloadTooLarge) as info:
        parse_catalogue(fits_table(COLS), max_rows=2)
    assert info.value.code == "too_many_rows" and "3 rows" in info.value.message
    with pytest.raises(PayloadTooLarge):
        parse_catalogue(fits_table(COLS, ldac=True, chips=2), max_rows=5)


def test_no_usable_sources() -> None:
    err = bad(MINIMAL + b"99.0 99.0 10 10\nnan 0.1 11 11\n inf 0.2 12 12\n", "no_usable_sources")
    assert "99" in err.message
    bad(fits_table(dict(COLS, MAG_AUTO=np.full(3, 99.0, dtype=np.float32))), "no_usable_sources")


# ---------------------------------------------------------------------------
# hostile FITS: checked from the header, never allocated from its claims
# ---------------------------------------------------------------------------


def _set_card(data: bytes, key: str, value: str) -> bytes:
    """Rewrite the first card ``key`` found after the primary header."""
    start = data.index(b"XTENSION")
    i = data.index(key.ljust(8).encode() + b"=", start)
    card = f"{key:<8s}= {value:>20s}".ljust(80).encode()
    return data[:i] + card + data[i + 80 :]


@pytest.mark.parametrize(
    ("key", "value", "exc", "code"),
    [
        ("NAXIS2", "1000000000000", PayloadTooLarge, "too_many_rows"),
        ("NAXIS2", "150000", BadCatalogue, "bad_fits"),  # fewer than max_rows but more than the file holds
        ("NAXIS1", "99999999", BadCatalogue, "bad_fits"),
        ("BITPIX", "7", BadCatalogue, "bad_fits"),
        ("BITPIX", "16", BadCatalogue, "bad_fits"),  # size still fits? then a table must be BITPIX 8
        ("NAXIS", "1000", BadCatalogue, "bad_fits"),
        ("PCOUNT", "-1", BadCatalogue, "bad_fits"),
        ("PCOUNT", "999999999", BadCatalogue, "bad_fits"),
        ("GCOUNT", "99999", BadCatalogue, "bad_fits"),
        ("TFIELDS", "3", BadCatalogue, "bad_fits"),
        ("TFORM2", "'9E'", BadCatalogue, "bad_fits"),
        ("TFORM2", "'Z'", BadCatalogue, "bad_fits"),
    ],
)
def test_hostile_fits_headers(key, value, exc, code) -> None:
    data = _set_card(fits_table(COLS), key, value)
    with pytest.raises(exc) as info:
        parse_catalogue(data)
    assert info.value.code == code, info.value.message


def test_truncated_and_corrupt_fits() -> None:
    data = fits_table(COLS)
    for cut in (100, 2880, 2880 * 2 + 100, len(data) - 2880):
        with pytest.raises(BadCatalogue) as info:
            parse_catalogue(data[:cut])
        assert info.value.code in ("bad_fits", "not_a_catalogue"), info.value.message
    noend = data.replace(b"END" + b" " * 77, b"XND" + b" " * 77)
    assert "END" in bad(noend, "bad_fits").message
    assert "NAXIS1" in bad(_set_card(data, "TFORM2", "'20A'"), "bad_fits").message


def test_string_column_in_place_of_a_number() -> None:
    cols = dict(COLS)
    buf = __import__("io").BytesIO()
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name=k, array=v, format=_tform(v)) for k, v in cols.items() if k != "MAG_AUTO"]
        + [fits.Column(name="MAG_AUTO", format="4A", array=np.array(["12.5", "13.0", "14.0"]))]
    )
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(buf)
    assert "MAG_AUTO" in bad(buf.getvalue(), "bad_values").message


# ---------------------------------------------------------------------------
# real SExtractor output: the three catalogue types give the same rows
# ---------------------------------------------------------------------------

SEX = shutil.which("source-extractor") or shutil.which("sex")


@pytest.mark.skipif(SEX is None, reason="source-extractor not installed")
def test_real_sextractor_three_formats_agree(tmp_path: Path) -> None:
    from astropy.wcs import WCS

    rng = np.random.default_rng(3)
    n = 256
    img = rng.normal(100.0, 3.0, (n, n)).astype(np.float32)
    yy, xx = np.mgrid[0:n, 0:n]
    stars = [(50, 60, 5000), (120, 200, 20000), (200, 40, 8000), (180, 150, 3000), (30, 220, 12000), (90, 100, 900)]
    for x, y, flux in stars:
        img += flux / (2 * np.pi * 4.0) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8.0)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crpix = [128, 128]
    w.wcs.crval = [150.0, -20.0]
    w.wcs.cdelt = [-1 / 3600, 1 / 3600]
    fits.PrimaryHDU(img, header=w.to_header()).writeto(tmp_path / "img.fits")
    (tmp_path / "p.param").write_text(
        "NUMBER\nMAG_AUTO\nMAGERR_AUTO\nMAG_APER(3)\nMAGERR_APER(3)\nALPHA_J2000\nDELTA_J2000\nFLAGS\n"
    )
    (tmp_path / "default.conv").write_text("CONV NORM\n1 2 1\n2 4 2\n1 2 1\n")
    assert SEX is not None
    out = {}
    for kind in ("ASCII_HEAD", "FITS_1.0", "FITS_LDAC"):
        cat = tmp_path / f"cat_{kind}"
        subprocess.run(
            [SEX, "img.fits", "-PARAMETERS_NAME", "p.param", "-FILTER_NAME", "default.conv",
             "-CATALOG_TYPE", kind, "-CATALOG_NAME", cat.name, "-PHOT_APERTURES", "3,5,8",
             "-VERBOSE_TYPE", "QUIET", "-CHECKIMAGE_TYPE", "NONE"],
            cwd=tmp_path, check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        out[kind] = parse_catalogue(cat.read_bytes(), filename=cat.name)
    assert [r.format for r in out.values()] == ["ascii_head", "fits", "fits_ldac"]
    a, f, ldac = out["ASCII_HEAD"].table, out["FITS_1.0"].table, out["FITS_LDAC"].table
    assert len(a) == len(f) == len(ldac) == len(stars)
    for k in ("mag", "mag_err", "ra", "dec", "flags"):
        np.testing.assert_array_equal(getattr(f, k), getattr(ldac, k))
    # ASCII rounds to SExtractor's print formats (F8.4 mags, F11.7 degrees)
    np.testing.assert_allclose(a.mag, f.mag, atol=6e-5)
    np.testing.assert_allclose(a.mag_err, f.mag_err, atol=6e-5)
    np.testing.assert_allclose(a.ra, f.ra, atol=6e-8)
    np.testing.assert_allclose(a.dec, f.dec, atol=6e-8)
    np.testing.assert_array_equal(a.flags, f.flags)
    # and FITS agrees with astropy's own reading
    with fits.open(tmp_path / "cat_FITS_LDAC") as hdul:
        objects = hdul["LDAC_OBJECTS"].data
        np.testing.assert_array_equal(ldac.ra, objects["ALPHA_J2000"])
        np.testing.assert_array_equal(ldac.mag, objects["MAG_AUTO"])


def test_missing_columns_echo_at_most_a_short_part_of_each_name() -> None:
    """Found by `make fuzz`: a line of long 'names' above the rows made an unbounded error message."""
    names = " ".join(["MAG_AUTO", "X" * 5000, "Y" * 300])
    with pytest.raises(BadCatalogue) as err:
        parse_catalogue(f"{names}\n1 2 3\n".encode())
    assert err.value.code == "missing_columns" and len(err.value.message) <= 300
    assert "XXXXXXXXXXXXXXXXXXXX..." in err.value.message
