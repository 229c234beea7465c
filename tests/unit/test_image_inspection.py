"""The gateway tells a FITS frame from a catalogue by its headers, and refuses what cannot be a frame."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from astropy.io import fits

from services.ingest.parsing.image import inspect_frame
from shared.errors import BadCatalogue, PayloadTooLarge
from tools.simfield.image import Camera, make_wcs

MB = 1024 * 1024


def _frame_header(**extra) -> fits.Header:
    header = make_wcs(150.0, 30.0, Camera(), 0.0).to_header()
    header["DATE-OBS"] = "2024-03-01T20:00:00"
    header["EXPTIME"] = 60.0
    header["FILTER"] = "V"
    for key, value in extra.items():
        header[key] = value
    return header


def _bytes(hdul: fits.HDUList) -> bytes:
    out = io.BytesIO()
    hdul.writeto(out)
    return out.getvalue()


def _plain(shape=(128, 160), **extra) -> bytes:
    data = np.random.default_rng(1).normal(100, 5, shape).astype(np.float32)
    return _bytes(fits.HDUList([fits.PrimaryHDU(data, _frame_header(**extra))]))


def _card(key: str, value: int) -> bytes:
    return f"{key:<8}= {value:>20}".encode()


def _inspect(data: bytes, max_bytes: int = 200 * MB, max_pixels: int = 10**8):
    return inspect_frame(data, max_bytes, max_pixels)


def test_a_plain_frame_gives_its_size_and_the_exposure_from_its_header():
    frame = _inspect(_plain())
    assert frame is not None and frame.compression == "none" and frame.hdu == 0
    assert (frame.width, frame.height) == (160, 128)
    assert frame.header.exptime == 60.0 and frame.header.filter == "V" and frame.header.has_wcs
    assert frame.header.from_header["mjd"] == "DATE-OBS+EXPTIME/2"


def test_gzip_and_tile_compressed_frames_are_frames_too():
    plain = _plain()
    zipped = _inspect(gzip.compress(plain))
    assert zipped is not None and zipped.compression == "gzip" and zipped.decompressed_bytes == len(plain)
    data = np.random.default_rng(2).normal(100, 5, (128, 160)).astype(np.float32)
    tiled = _bytes(fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, _frame_header())]))
    frame = _inspect(tiled)
    assert frame is not None and frame.compression == "tile" and frame.hdu == 1
    assert (frame.width, frame.height) == (160, 128) and frame.header.filter == "V" and frame.header.has_wcs
    assert frame.header.mjd == zipped.header.mjd


def test_a_fits_table_and_text_are_left_to_the_catalogue_reader():
    table = fits.BinTableHDU.from_columns([fits.Column("MAG_AUTO", "E", array=np.zeros(3))])
    assert _inspect(_bytes(fits.HDUList([fits.PrimaryHDU(), table]))) is None
    assert _inspect(b"# 1 MAG_AUTO\n12.0\n") is None
    assert _inspect(gzip.compress(b"# 1 MAG_AUTO\n12.0\n")) is None


def test_a_cube_and_a_spectrum_are_refused_with_what_to_send():
    cube = _bytes(fits.HDUList([fits.PrimaryHDU(np.zeros((3, 32, 32), np.float32))]))
    with pytest.raises(BadCatalogue, match="cube") as caught:
        _inspect(cube)
    assert caught.value.code == "image_cube"
    line = _bytes(fits.HDUList([fits.PrimaryHDU(np.zeros(500, np.float32))]))
    with pytest.raises(BadCatalogue) as caught:
        _inspect(line)
    assert caught.value.code == "not_an_image"


def test_a_truncated_frame_and_a_lying_header_are_400_not_an_allocation():
    plain = _plain()
    with pytest.raises(BadCatalogue, match="truncated") as caught:
        _inspect(plain[: len(plain) // 2])
    assert caught.value.code == "bad_fits"
    lying = plain.replace(_card("NAXIS1", 160), _card("NAXIS1", 1_000_000_000), 1)
    assert lying != plain
    with pytest.raises(BadCatalogue, match="claims"):
        _inspect(lying)
    with pytest.raises(BadCatalogue, match="truncated"):
        _inspect(gzip.compress(plain)[:-200])


def test_a_frame_over_the_limits_is_413():
    with pytest.raises(PayloadTooLarge) as caught:
        _inspect(_plain(), max_pixels=10_000)
    assert caught.value.code == "image_too_large"
    with pytest.raises(PayloadTooLarge):
        _inspect(_plain(), max_bytes=40_000)


def test_a_gzip_bomb_is_refused_once_it_passes_the_limit():
    header = _bytes(fits.HDUList([fits.PrimaryHDU(np.zeros((16, 16), np.float32), _frame_header())]))
    head = header[: header.index(b"END     ") + 80]
    head = head.replace(_card("NAXIS1", 16), _card("NAXIS1", 8192)).replace(_card("NAXIS2", 16), _card("NAXIS2", 8192))
    head += b" " * (-len(head) % 2880)
    bomb = gzip.compress(head + bytes(8192 * 8192 * 4), compresslevel=9)
    assert len(bomb) < 1 * MB
    with pytest.raises(PayloadTooLarge):
        _inspect(bomb, max_bytes=64 * MB)
