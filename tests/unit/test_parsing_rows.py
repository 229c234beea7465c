"""The compiled plain-row reader (services.ingest.rows) against float() and the pandas path.

``read_plain_rows`` may answer None for anything unusual (the pandas reader
then reads or diagnoses the rows); when it does answer, every value must be
bit for bit what ``float()`` gives for its token and what the pandas path
would have given, so which reader ran never shows in a calibration.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import services.ingest.parsing.text as parsing  # where the text readers are looked up
from services.ingest.parsing import parse_catalogue
from services.ingest.parsing.text import _read_rows_pandas
from services.ingest.rows import read_plain_rows
from shared.errors import BadCatalogue, PayloadTooLarge

_NUMBER = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?")


def on_fast_path(tok: str) -> bool:
    """Tokens the compiled reader must take (the module docstring's fast path, conservatively):
    a decimal number of at most 17 digits (leading zeros included), digits <= 2**53, and a
    power of ten within 1e+-22."""
    m = _NUMBER.fullmatch(tok)
    if not m or not (m[2] or m[3]):
        return False
    digits = m[2] + (m[3] or "")
    if len(digits) > 17 or int(digits) > 2**53:
        return False
    return int(digits) == 0 or -22 <= int(m[4] or 0) - len(m[3] or "") <= 22


def pandas_rows(text: str, ncols: int, columns: list[int], max_rows: int) -> list[np.ndarray]:
    out = _read_rows_pandas(text.encode("latin-1"), text, 1, ncols, columns, max_rows)
    return [out[c] for c in columns]


def assert_exact(got: list[np.ndarray], tokens: list[list[str]]) -> None:
    """``got`` (one array per column) is bit for bit float() of ``tokens`` (one list per column)."""
    assert len(got) == len(tokens)
    for arr, col in zip(got, tokens):
        want = np.array([float(t) for t in col], dtype=np.float64)
        assert arr.dtype == np.float64
        assert np.array_equal(arr, want), [(t, a, w) for t, a, w in zip(col, arr, want) if a != w][:5]
        assert np.array_equal(np.signbit(arr), np.signbit(want)), col  # -0.0 keeps its sign


# ---------------------------------------------------------------------------
# 1. random plain tables: exact values, and the same as the pandas path
# ---------------------------------------------------------------------------

_FORMATS = ["%.4f", "%.7f", "%g", "%e", "%+.3f", "%.1f", "%.12g", "%.17g", "%.6E"]

formatted = st.builds(
    lambda x, fmt, neg: fmt % (-x if neg else x),
    st.floats(1e-6, 2e6) | st.just(0.0),
    st.sampled_from(_FORMATS),
    st.booleans(),
)
shortest = st.builds(lambda x, neg: repr(-x if neg else x), st.floats(0.5, 1e15), st.booleans())  # <= 17 digits
integers = st.integers(-(10**9), 10**9).map(str) | st.integers(0, 2**53).map(str)
# Clinger's fast path at its edges: the largest digits and powers of ten it takes
clinger = st.builds(
    lambda m, k, e: f"{m}{e}{k:+d}", st.integers(1, 2**53), st.integers(-22, 22), st.sampled_from(["e", "E"])
) | st.builds(lambda m, k: f"{m}e{k}", st.integers(2**53 - 9, 2**53), st.integers(-22, 22))
hand_made = st.builds(
    lambda sign, zeros, whole, frac, exp: f"{sign}{'0' * zeros}{whole}{frac}{exp}",
    st.sampled_from(["", "", "-", "+"]),
    st.integers(0, 3),  # leading zeros: 007.5
    st.sampled_from(["", "0", "5", "12", "360", "4096"]),
    st.sampled_from([".", ".5", ".25", ".0", ".000123", ".1234567", ""]),
    st.sampled_from(["", "", "e5", "E+02", "e-3", "E-07", "e0", "e+22", "e-22"]),
).filter(lambda t: bool(re.search(r"\d", t)))  # '5.', '.5', '-.5e3', '007.5', '-0.0', '1.5E+02'
specials = st.sampled_from(["-0.0", "-0", "+0", "0.000", "-0e5", "0e0", ".5", "5.", "1.5E+02", "007.5", "99.0"])
any_number = st.one_of(formatted, shortest, integers, clinger, hand_made, specials)
off_path = st.sampled_from(["1e23", "1e-23", "0.1e-22", "123456789012345678", "9007199254740993", "1e400", "1e-400"])
wanted_token = any_number.filter(on_fast_path)  # what the fast path must take
other_token = any_number | st.sampled_from(["abc", "N/A", "nan", "inf", "1,5", "STAR", '"q"', "é", "--", "1.2.3"])

separator = st.sampled_from([" ", "  ", "\t", " \t ", "\t\t", "   "])
line_end = st.sampled_from(["\n", "\r\n"])


@st.composite
def plain_tables(draw):
    """(text, ncols, wanted columns, max_rows, tokens of the wanted columns)."""
    ncols = draw(st.integers(1, 6))
    columns = sorted(draw(st.sets(st.integers(0, ncols - 1), min_size=1)))
    nrows = draw(st.integers(1, 10))
    cells = [[draw(wanted_token if c in columns else other_token) for c in range(ncols)] for _ in range(nrows)]
    if draw(st.integers(0, 5)) == 0:  # now and then a token the fast path declines: pandas must read it
        cells[draw(st.integers(0, nrows - 1))][draw(st.sampled_from(columns))] = draw(off_path)
    layout = st.tuples(
        st.sampled_from(["", "", "", "  ", "\t", "# a note", "#", "#   3 ALPHA_J2000 [deg]"]),  # line before the row
        st.sampled_from(["", "", " ", "\t", "   "]),  # leading whitespace
        st.lists(separator, min_size=ncols, max_size=ncols),
        st.sampled_from(["", "", " ", "\t"]),  # trailing whitespace
        st.sampled_from(["", "", "", " # comment", "# 1 2 3", "\t#x y"]),
        line_end,
    )
    lines: list[str] = []
    for row in cells:
        before, lead, seps, trail, comment, end = draw(layout)
        if before:
            lines.append(before + end)
        lines.append(lead + "".join(s + t for s, t in zip([""] + seps, row)) + trail + comment + end)
    if draw(st.booleans()):
        lines[-1] = lines[-1].rstrip("\r\n")  # no line end after the last row
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["\n", "  \r\n", "# end\n", "\t"])))  # trailing blank or comment line
    tokens = [[row[c] for row in cells] for c in columns]
    max_rows = nrows + draw(st.sampled_from([0, 0, 1, 100]))
    return "".join(lines), ncols, columns, max_rows, tokens


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain_tables())
def test_plain_rows_are_exact_and_agree_with_pandas(case) -> None:
    text, ncols, columns, max_rows, tokens = case
    got = read_plain_rows(text.encode("latin-1"), ncols, columns, max_rows)
    if all(on_fast_path(t) for col in tokens for t in col):
        assert got is not None, "a plain table was left to pandas"
    from_pandas = pandas_rows(text, ncols, columns, max_rows)  # a plain table: pandas never refuses it
    assert [len(a) for a in from_pandas] == [len(tokens[0])] * len(columns)
    if got is None:
        return  # a token off the fast path: left to pandas, which read it
    assert_exact(got, tokens)
    for fast, slow in zip(got, from_pandas):
        # by value: pandas reads an all-integer column as int64, so '-0' comes back as +0.0 there
        assert np.array_equal(fast, slow), (fast, slow)


# ---------------------------------------------------------------------------
# 2. anything not plain is left to pandas (None)
# ---------------------------------------------------------------------------

NOT_PLAIN = {
    "nan": ("1 2\nnan 4\n", 2, [0, 1], 10),
    "-nan": ("1 2\n-nan 4\n", 2, [0, 1], 10),
    "NaN": ("1 2\n3 NaN\n", 2, [0, 1], 10),
    "inf": ("1 2\ninf 4\n", 2, [0, 1], 10),
    "-inf": ("1 2\n3 -inf\n", 2, [0, 1], 10),
    "Infinity": ("1 2\n3 Infinity\n", 2, [0, 1], 10),
    "comma decimal": ("1 2\n1,5 4\n", 2, [0, 1], 10),
    "two points": ("1 2\n1.2.3 4\n", 2, [0, 1], 10),
    "double sign": ("1 2\n--1 4\n", 2, [0, 1], 10),
    "no digits before exponent": ("1 2\ne5 4\n", 2, [0, 1], 10),
    "no exponent digits": ("1 2\n1e 4\n", 2, [0, 1], 10),
    "exponent sign only": ("1 2\n1e+ 4\n", 2, [0, 1], 10),
    "sign only": ("1 2\n+ 4\n", 2, [0, 1], 10),
    "point only": ("1 2\n. 4\n", 2, [0, 1], 10),
    "word": ("1 2\n3 abc\n", 2, [0, 1], 10),
    "hex": ("1 2\n0x1p3 4\n", 2, [0, 1], 10),
    "underscore": ("1 2\n1_0 4\n", 2, [0, 1], 10),
    "trailing letter": ("1 2\n3 4a\n", 2, [0, 1], 10),
    "short row": ("1 2 3\n4 5\n6 7 8\n", 3, [0, 2], 10),
    "short last row": ("1 2 3\n4 5 6\n7 8", 3, [0], 10),
    "long row": ("1 2 3\n4 5 6 7\n", 3, [0, 2], 10),
    "long row, extra not wanted": ("1 2\n3 4 5\n", 2, [0], 10),
    "too many rows": ("1 2\n3 4\n5 6\n", 2, [0, 1], 2),
    "too many rows, no final newline": ("1 2\n3 4\n5 6", 2, [0, 1], 2),
    "form feed in a number": ("1 2\n3\x0c 4\n", 2, [0, 1], 10),
    "form feed after a row": ("1 2\x0c\n3 4\n", 2, [0, 1], 10),
    "form feed line": ("1 2\n\x0c\n3 4\n", 2, [0, 1], 10),
    "vertical tab between fields": ("1\x0b2\n", 2, [0, 1], 10),
    "NUL in a number": ("1 2\n3\x00 4\n", 2, [0, 1], 10),
    "NUL in a column not wanted": ("1 ab\n3 a\x00b\n", 2, [0], 10),
    "DEL in a column not wanted": ("1 ab\n3 a\x7fb\n", 2, [0], 10),
    "18 significant digits": ("1 2\n1.23456789012345678 4\n", 2, [0, 1], 10),
    "18 digits, integer": ("123456789012345678 2\n", 2, [0, 1], 10),
    "digits above 2**53": ("9007199254740993 2\n", 2, [0, 1], 10),
    "1e400": ("1 2\n1e400 4\n", 2, [0, 1], 10),
    "1e-400": ("1 2\n1e-400 4\n", 2, [0, 1], 10),
    "1e23": ("1e23 2\n", 2, [0, 1], 10),
    "1e-23": ("1e-23 2\n", 2, [0, 1], 10),
    "huge exponent": ("1e99999999999999999999 2\n", 2, [0, 1], 10),
    "only comments and blank lines": ("# 1 MAG_AUTO\n\n   \n#\n\t\r\n", 2, [0, 1], 10),
    "empty": ("", 2, [0, 1], 10),
    "old Mac line ends": ("1 2\r3 4\r", 2, [0, 1], 10),
}


@pytest.mark.parametrize("text, ncols, columns, max_rows", NOT_PLAIN.values(), ids=NOT_PLAIN.keys())
def test_not_plain_is_left_to_pandas(text: str, ncols: int, columns: list[int], max_rows: int) -> None:
    assert read_plain_rows(text.encode("latin-1"), ncols, columns, max_rows) is None


def test_a_column_asked_for_twice_is_refused() -> None:
    """Two slots for one column would leave one of them unfilled (uninitialised memory)."""
    with pytest.raises(ValueError, match="distinct"):
        read_plain_rows(b"1.5 2\n3.5 4\n", 2, [1, 1], 10)


@pytest.mark.parametrize(
    "case",
    ["word", "comma decimal", "two points", "sign only", "short row", "long row", "long row, extra not wanted",
     "too many rows", "only comments and blank lines"],
)  # fmt: skip
def test_what_the_fast_reader_leaves_the_pandas_path_refuses(case: str) -> None:
    """The fallback really is a refusal for these: declining them hides no accepted file."""
    text, ncols, columns, max_rows = NOT_PLAIN[case]
    with pytest.raises((BadCatalogue, PayloadTooLarge)):
        pandas_rows(text, ncols, columns, max_rows)


def test_max_rows_is_inclusive() -> None:
    text = "1 2\n3 4\n5 6\n"
    rows = read_plain_rows(text.encode(), 2, [0, 1], 3)
    assert rows is not None
    assert_exact(rows, [["1", "3", "5"], ["2", "4", "6"]])


def test_fast_path_edges_are_exact() -> None:
    toks = ["9007199254740992", "9007199254740991e22", "9007199254740991e-22", "1e22", "1e-22", "-0.0",
            "0.000000000000001", "1234567890123456e-5", "0.1", "0.3", "2.225073858507201e-7",
            "8.98846567431158e-7", "0001.5", "-.5e3", "+5.e-3"]  # fmt: skip
    assert all(on_fast_path(t) for t in toks)
    got = read_plain_rows(" ".join(toks).encode(), len(toks), list(range(len(toks))), 1)
    assert got is not None
    assert_exact(got, [[t] for t in toks])


# ---------------------------------------------------------------------------
# 3. text in a column nobody asked for is fine, as with pandas
# ---------------------------------------------------------------------------


def test_text_in_a_column_not_wanted_is_accepted() -> None:
    text = "1.5 star 2.5 N/A\n3.5 galaxy 4.5 é,x\n-0.25 nan 1e3 inf # note\n"
    columns = [0, 2]
    got = read_plain_rows(text.encode("latin-1"), 4, columns, 10)
    assert got is not None
    assert_exact(got, [["1.5", "3.5", "-0.25"], ["2.5", "4.5", "1e3"]])
    for fast, slow in zip(got, pandas_rows(text, 4, columns, 10)):
        assert np.array_equal(fast, slow)
    # the same column wanted: not plain any more
    assert read_plain_rows(text.encode("latin-1"), 4, [0, 1], 10) is None


# ---------------------------------------------------------------------------
# 4. through parse_catalogue: the fast path and the pandas path agree row by row
# ---------------------------------------------------------------------------

HEADER = (
    "#   1 MAG_AUTO               Kron-like elliptical aperture magnitude                    [mag]\n"
    "#   2 MAGERR_AUTO            RMS error for AUTO magnitude                               [mag]\n"
    "#   3 ALPHA_J2000            Right ascension of barycenter (J2000)                      [deg]\n"
    "#   4 DELTA_J2000            Declination of barycenter (J2000)                          [deg]\n"
    "#   5 FLAGS                  Extraction flags\n"
)


def sextractor_rows(n: int = 300, seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    mag = rng.uniform(-16, -6, n)
    err = rng.uniform(0.001, 0.3, n)
    ra = rng.uniform(0, 360, n)
    dec = rng.uniform(-90, 90, n)
    flags = rng.integers(0, 4, n)
    return [f"{m:10.4f} {e:8.4f} {a:11.7f} {d:+11.7f} {f:3d}" for m, e, a, d, f in zip(mag, err, ra, dec, flags)]


@pytest.fixture
def reader_calls(monkeypatch) -> dict[str, int]:
    """Counts which reader parse_catalogue used (and what the fast one answered)."""
    calls = {"fast": 0, "fast_none": 0, "pandas": 0}
    fast, slow = parsing.read_plain_rows, parsing._read_rows_pandas

    def spy_fast(*a, **kw):
        calls["fast"] += 1
        out = fast(*a, **kw)
        calls["fast_none"] += out is None
        return out

    def spy_slow(*a, **kw):
        calls["pandas"] += 1
        return slow(*a, **kw)

    monkeypatch.setattr(parsing, "read_plain_rows", spy_fast)
    monkeypatch.setattr(parsing, "_read_rows_pandas", spy_slow)
    return calls


def assert_same_table(a, b, skip: int | None = None) -> None:
    keep = np.ones(len(a.table), bool)
    if skip is not None:
        keep[skip] = False
    assert len(a.table) == len(b.table)
    for name in ("ra", "dec", "mag", "mag_err", "flags"):
        x, y = getattr(a.table, name)[keep], getattr(b.table, name)[keep]
        assert x.dtype == y.dtype
        assert x.tobytes() == y.tobytes(), name  # bit for bit, NaNs included


def test_nan_row_goes_to_pandas_and_the_other_rows_are_unchanged(reader_calls) -> None:
    rows = sextractor_rows()
    plain = parse_catalogue((HEADER + "\n".join(rows) + "\n").encode(), filename="x.cat")
    assert reader_calls == {"fast": 1, "fast_none": 0, "pandas": 0}

    k = 137
    rows[k] = "       nan" + rows[k][10:]
    with_nan = parse_catalogue((HEADER + "\n".join(rows) + "\n").encode(), filename="x.cat")
    assert reader_calls == {"fast": 2, "fast_none": 1, "pandas": 1}

    assert plain.format == with_nan.format == "ascii_head"
    assert plain.n_rows == with_nan.n_rows == len(rows)
    assert plain.n_usable == with_nan.n_usable + 1
    assert np.isfinite(plain.table.mag[k]) and np.isnan(with_nan.table.mag[k])
    assert_same_table(plain, with_nan, skip=k)
    for name in ("ra", "dec", "mag_err", "flags"):  # only the magnitude of that row differs
        assert getattr(plain.table, name)[k] == getattr(with_nan.table, name)[k]


def test_whole_catalogue_same_through_either_reader(monkeypatch) -> None:
    """Random SExtractor rows, including awkward tokens: forcing the pandas path changes nothing."""
    rng = np.random.default_rng(11)
    rows = sextractor_rows(200, seed=3)
    odd = ["-0.0", "007.5", ".5", "5.", "1.5E+01", "-1.25e-1", "12", "+3.25"]
    for i in rng.choice(len(rows), 40, replace=False):
        f = rows[i].split()
        f[0] = str(rng.choice(odd))
        rows[i] = "\t".join(f) + (" # note" if i % 3 else "")
    data = (HEADER + "\r\n".join(rows) + "\r\n").encode()
    fast = parse_catalogue(data, filename="x.cat")
    monkeypatch.setattr(parsing, "read_plain_rows", lambda *a, **kw: None)
    slow = parse_catalogue(data, filename="x.cat")
    assert fast.warnings == slow.warnings
    assert_same_table(fast, slow)


def _indent_notes(text: str, note: str) -> str:
    lines = text.split("\n")
    data = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
    for i in reversed(data[5:40:10]):  # notes between data rows, not in the header
        lines.insert(i, note)
    return "\n".join(lines)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda t: t.replace("\n", "\r"), id="old Mac line ends"),
        pytest.param(lambda t: t.replace("\n", "\r\n"), id="CRLF"),
        pytest.param(lambda t: _indent_notes(t, "   # indented note"), id="indented comments"),
        pytest.param(lambda t: _indent_notes(t, "\t#\tindented"), id="tab-indented comments"),
    ],
)
def test_line_end_and_comment_variants_read_the_same(variant, reader_calls) -> None:
    """parse_catalogue normalises these before the fast reader sees them (on its own it would read a
    bare CR or an indented comment line differently from the pandas path), and the table is the plain one."""
    rows = sextractor_rows(50)
    text = HEADER + "\n".join(rows) + "\n"
    changed = variant(text)
    assert changed != text
    plain = parse_catalogue(text.encode(), filename="x.cat")
    other = parse_catalogue(changed.encode(), filename="x.cat")
    assert reader_calls == {"fast": 2, "fast_none": 0, "pandas": 0}  # both read by the fast path
    assert_same_table(plain, other)
