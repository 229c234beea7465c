"""The cone v2 reply: binary columns in parts, put together again (shared/conewire.py)."""

from __future__ import annotations

import numpy as np
import pytest

from shared.conewire import (
    MalformedConeReply,
    PartAssembler,
    decode_reply,
    encode_reply,
    part_headers,
    split_parts,
)
from shared.contracts.messages import ConeReply, SurveyStars


def stars(survey: str, n: int, bands: str | list[str], seed: int = 0) -> SurveyStars:
    rng = np.random.default_rng(seed)

    def f32(values):  # the catalogues store magnitudes as float32; the store hands them out as float64
        values = values.astype(np.float32).astype(np.float64)
        values[rng.random(n) < 0.1] = np.nan
        return values

    return SurveyStars(
        survey=survey,
        ra=rng.uniform(359.9, 360.1, n) % 360.0,
        dec=rng.uniform(-0.1, 0.1, n),
        mags={b: f32(rng.uniform(10, 22, n)) for b in bands},
        errs={b: f32(rng.uniform(0.001, 0.3, n)) for b in bands},
    )


def same(a: ConeReply, b: ConeReply) -> None:
    assert (a.ok, a.error, a.message, a.covered, list(a.stars)) == (b.ok, b.error, b.message, b.covered, list(b.stars))
    for name in a.stars:
        x, y = a.stars[name], b.stars[name]
        assert x.survey == y.survey
        np.testing.assert_array_equal(x.ra, y.ra)
        np.testing.assert_array_equal(x.dec, y.dec)
        assert list(x.mags) == list(y.mags) and list(x.errs) == list(y.errs)
        for band in x.mags:
            np.testing.assert_array_equal(x.mags[band], y.mags[band])  # bit for bit, NaN where NaN
            np.testing.assert_array_equal(x.errs[band], y.errs[band])
            assert y.mags[band].dtype == np.float64


def test_round_trip_is_exact():
    reply = ConeReply(
        covered=["APASS", "PS1"],
        stars={"APASS": stars("APASS", 7, ["B", "V", "g'"]), "PS1": stars("PS1", 1000, "grizy", 1)},
        versions={"APASS": "v3", "PS1": "v12"},
    )
    back = decode_reply(encode_reply(reply))
    same(reply, back)
    assert back.versions == {"APASS": "v3", "PS1": "v12"}  # the provenance of every calibration (issue 19)


def test_error_and_empty_replies():
    for reply in (
        ConeReply(ok=False, error="bad_cone", message="bad cone radius 9"),
        ConeReply(),
        ConeReply(covered=["GAIA"], stars={"GAIA": stars("GAIA", 0, ["G", "BP", "RP"])}),
    ):
        same(reply, decode_reply(encode_reply(reply)))


def test_a_dense_reply_is_a_quarter_of_v1_json():
    reply = ConeReply(covered=["PS1"], stars={"PS1": stars("PS1", 20_000, "grizy")})
    assert len(encode_reply(reply)) < 0.5 * len(reply.model_dump_json())


@pytest.mark.parametrize("part_bytes", [1, 7, 1000, 10**9])
def test_parts_in_any_order_make_the_reply(part_bytes):
    reply = ConeReply(covered=["SDSS"], stars={"SDSS": stars("SDSS", 300, "ugriz")})
    body = encode_reply(reply)
    parts = split_parts(body, part_bytes)
    assert all(len(p) <= part_bytes for p in parts) and b"".join(parts) == body
    order = np.random.default_rng(3).permutation(len(parts))
    assembler = PartAssembler()
    got = [assembler.add(part_headers("r1", int(i), len(parts)), parts[i]) for i in order]
    assert all(g is None for g in got[:-1])
    whole = got[-1]
    assert whole is not None
    same(reply, decode_reply(whole))


def test_an_error_reply_after_a_broken_one_completes_first():
    broken = split_parts(encode_reply(ConeReply(covered=["PS1"], stars={"PS1": stars("PS1", 500, "gr")})), 1000)
    assembler = PartAssembler()
    assert assembler.add(part_headers("a", 0, len(broken)), broken[0]) is None
    error = encode_reply(ConeReply(ok=False, error="catalog_error", message="could not be sent"))
    body = assembler.add(part_headers("b", 0, 1), error)
    assert body is not None
    assert decode_reply(body).error == "catalog_error"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"abc",
        b"\xff\xff\xff\x7f{}",
        b"\x02\x00\x00\x00{}",
        b"\x05\x00\x00\x00hello\x00\x00\x00",
        b'{"ok": true, "stars": {}}',
    ],
)
def test_garbage_is_malformed(body):
    with pytest.raises(MalformedConeReply):
        decode_reply(body)


def test_truncated_columns_are_malformed():
    body = encode_reply(ConeReply(covered=["PS1"], stars={"PS1": stars("PS1", 100, "gr")}))
    with pytest.raises(MalformedConeReply):
        decode_reply(body[:-16])
    with pytest.raises(MalformedConeReply):
        decode_reply(body + b"\0" * 8)


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"Photcal-Reply": "x"},
        {"Photcal-Reply": "x", "Photcal-Part": "3/2"},
        {"Photcal-Reply": "x", "Photcal-Part": "a/b"},
    ],
)
def test_parts_without_good_headers_are_malformed(headers):
    with pytest.raises(MalformedConeReply):
        PartAssembler().add(headers, b"data")
