"""Is the uploaded file a FITS *frame*? Its headers only, read at the gateway: :func:`inspect_frame`.

A frame is a 2-D image in the primary HDU or the first extension: plain,
gzipped (``.fits.gz``) or tile-compressed (``.fz``, a ``ZIMAGE`` binary
table). A FITS *table* is not one: it goes on to the catalogue reader
(:mod:`.fits`). The pixels are not read here: the calibrate worker
photometers them; the gateway checks what the headers claim against the
bytes present and the server's limits, and reads the exposure from the
header (:func:`shared.frames.frame_header`).

A gzipped file is decompressed as a stream, keeping only its first
:data:`HEADER_PREFIX_BYTES` (the headers) and counting the rest up to the
image limit: a small file that inflates to gigabytes (a "bomb") costs no
memory and is refused once it passes the limit.
"""

from __future__ import annotations

import io
import warnings
import zlib
from dataclasses import dataclass
from typing import Literal

from astropy.io import fits

from services.ingest.parsing.common import _bad
from services.ingest.parsing.fits import _BLOCK, _int_kw, _read_header
from shared.contracts.errors import ErrorCode
from shared.errors import PayloadTooLarge
from shared.frames import FrameHeader, frame_header

GZIP_MAGIC = b"\x1f\x8b"
#: decompressed bytes kept of a gzipped file: its headers (a header of 1,000 cards is 80 KB)
HEADER_PREFIX_BYTES = 1024 * 1024
_CHUNK = 1024 * 1024

Compression = Literal["none", "gzip", "tile"]


@dataclass(frozen=True)
class InspectedFrame:
    """A frame found in an upload: which HDU, how it is compressed, its size and its header's exposure."""

    compression: Compression
    hdu: int
    width: int
    height: int
    decompressed_bytes: int
    header: FrameHeader


#: the settings that bound a frame (services/ingest/settings.py), named in the 413 so an operator knows which
BYTES_SETTING = "PHOTCAL_MAX_IMAGE_BYTES"
PIXELS_SETTING = "PHOTCAL_MAX_IMAGE_PIXELS"


def size_text(size: int) -> str:
    """A byte count as people say it: ``200 MB``, ``64 KB``, ``1.5 GB``."""
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def _too_large(what: str, limit: str, setting: str = BYTES_SETTING) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the FITS frame is {what}; at most {limit} are accepted ({setting}): bin or crop it, or upload its catalogue",
        code=ErrorCode.IMAGE_TOO_LARGE,
    )


def _gunzip_prefix(data: bytes, keep: int, limit: int | None) -> tuple[bytes, int]:
    """(first ``keep`` bytes, total size) of a gzip (several members too); stop at ``keep`` when ``limit`` is None.

    Beyond ``limit`` decompressed bytes: 413. A truncated or corrupt stream: 400.
    """
    kept = bytearray()
    total = 0
    rest = data
    try:
        while rest:
            inflater = zlib.decompressobj(wbits=31)
            pending = rest
            while pending:
                out = inflater.decompress(pending[:_CHUNK], _CHUNK)
                pending = inflater.unconsumed_tail + pending[_CHUNK:]
                total += len(out)
                if len(kept) < keep:
                    kept.extend(out[: keep - len(kept)])
                if limit is None and len(kept) >= keep:
                    return bytes(kept), total
                if limit is not None and total > limit:
                    raise _too_large(f"over {size_text(limit)} once decompressed", size_text(limit))
                if inflater.eof:
                    break
            if not inflater.eof:
                if limit is None:
                    return bytes(kept), total
                raise _bad(ErrorCode.BAD_FITS, "the gzip file is truncated: upload it again")
            rest = inflater.unused_data.lstrip(b"\0")
    except zlib.error as exc:
        raise _bad(ErrorCode.BAD_FITS, f"the gzip file is corrupt ({exc}): upload it again") from exc
    return bytes(kept), total


@dataclass
class _Hdu:
    header: dict
    header_start: int
    data_start: int
    data_size: int


def _hdus(prefix: bytes, count: int) -> list[_Hdu]:
    """The first ``count`` HDUs' headers (keywords) and data extents, read from ``prefix``."""
    out: list[_Hdu] = []
    pos = 0
    while len(out) < count and pos + _BLOCK <= len(prefix):
        index = len(out)
        if index and prefix[pos : pos + 8] != b"XTENSION":
            break
        header, start = _read_header(prefix, pos, index)
        bitpix = _int_kw(header, "BITPIX", index, lo=-64)
        naxis = _int_kw(header, "NAXIS", index)
        if naxis > 999:
            raise _bad(ErrorCode.BAD_FITS, f"FITS HDU {index} has NAXIS = {naxis}; the file is corrupt")
        size = 0
        if naxis:
            size = abs(bitpix) // 8
            for i in range(1, naxis + 1):
                size *= _int_kw(header, f"NAXIS{i}", index)
            size = (size + _int_kw(header, "PCOUNT", index, default=0)) * _int_kw(
                header, "GCOUNT", index, lo=1, default=1
            )
        out.append(_Hdu(header, pos, start, size))
        pos = start + -(-size // _BLOCK) * _BLOCK
    return out


def _image_dims(h: dict, tiled: bool) -> tuple[list[int], int]:
    """The image's axes (NAXIS1, NAXIS2, ...) and BITPIX, of a plain or a tile-compressed image header."""
    prefix = "Z" if tiled else ""
    naxis = h.get(f"{prefix}NAXIS")
    bitpix = h.get(f"{prefix}BITPIX")
    if not isinstance(naxis, int) or isinstance(naxis, bool) or not isinstance(bitpix, int) or not 0 <= naxis <= 999:
        raise _bad(ErrorCode.BAD_FITS, "the FITS image has a missing or invalid NAXIS or BITPIX; the file is corrupt")
    if bitpix not in (8, 16, 32, 64, -32, -64):
        raise _bad(ErrorCode.BAD_FITS, f"the FITS image has BITPIX = {bitpix}; the file is corrupt")
    dims = []
    for i in range(1, naxis + 1):
        d = h.get(f"{prefix}NAXIS{i}")
        if not isinstance(d, int) or isinstance(d, bool) or d < 0:
            raise _bad(ErrorCode.BAD_FITS, f"the FITS image has an invalid {prefix}NAXIS{i}; the file is corrupt")
        dims.append(d)
    return dims, bitpix


def _is_image(hdu: _Hdu, index: int) -> Literal["plain", "tile"] | None:
    h = hdu.header
    if index == 0:
        return "plain" if h.get("NAXIS", 0) and hdu.data_size else None
    kind = str(h.get("XTENSION", "")).strip()
    if kind == "IMAGE" and h.get("NAXIS", 0) and hdu.data_size:
        return "plain"
    if kind == "BINTABLE" and h.get("ZIMAGE") is True:
        return "tile"
    return None


def _check_shape(dims: list[int], bitpix: int, max_bytes: int, max_pixels: int) -> tuple[int, int]:
    if len(dims) < 2:
        raise _bad(
            ErrorCode.NOT_AN_IMAGE,
            f"the FITS image has {len(dims)} axis; a frame is 2-D (NAXIS = 2): upload the CCD frame itself",
        )
    if any(d > 1 for d in dims[2:]):
        shape = " x ".join(str(d) for d in dims)
        raise _bad(ErrorCode.IMAGE_CUBE, f"the FITS image is a cube ({shape}): upload one 2-D frame (one plane)")
    width, height = dims[0], dims[1]
    if width < 16 or height < 16:
        raise _bad(ErrorCode.NOT_AN_IMAGE, f"the FITS image is {width} x {height} pixels: too small to be a frame")
    pixels = width * height
    if pixels > max_pixels:
        raise _too_large(f"{width} x {height} pixels", f"{max_pixels:,} pixels", PIXELS_SETTING)
    if pixels * abs(bitpix) // 8 > max_bytes:
        raise _too_large(f"{size_text(pixels * abs(bitpix) // 8)} of pixels", size_text(max_bytes))
    return width, height


def _astropy_header(raw: bytes, hdu: _Hdu, tiled: bool, data: bytes) -> fits.Header:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not tiled:
            return fits.Header.fromstring(raw[hdu.header_start : hdu.data_start].decode("latin-1"))
        # the image header a tile-compressed HDU stands for (astropy reads no tile for it)
        with fits.open(io.BytesIO(data), lazy_load_hdus=True, memmap=False) as hdul:
            return hdul[1].header.copy()


#: bytes of a file's start that :func:`looks_like_fits` needs (a gzip header and a deflate block's start)
SNIFF_BYTES = 512


def looks_like_fits(prefix: bytes) -> bool:
    """Whether a file starting with ``prefix`` is FITS, plain or gzipped: it may be a frame.

    Decided on the first bytes alone (``SIMPLE``, or a gzip stream inflating to it), so
    the multipart reader can choose a part's size limit before reading the part.
    """
    if prefix[:6] == b"SIMPLE":
        return True
    if prefix[:2] != GZIP_MAGIC:
        return False
    try:
        return zlib.decompressobj(wbits=31).decompress(prefix, 6)[:6] == b"SIMPLE"
    except zlib.error:
        return False


def inspect_frame(data: bytes, max_image_bytes: int, max_image_pixels: int) -> InspectedFrame | None:
    """The frame in ``data``, its headers checked; None when ``data`` is not a FITS image (a table, text).

    Raises :class:`shared.errors.BadCatalogue` (400: ``bad_fits``, ``not_an_image``,
    ``image_cube``) or :class:`PayloadTooLarge` (413, ``image_too_large``).
    """
    compression: Compression = "none"
    raw = data
    total = len(data)
    if data[:2] == GZIP_MAGIC:
        raw, _ = _gunzip_prefix(data, HEADER_PREFIX_BYTES, None)
        if raw[:6] != b"SIMPLE":
            return None
        compression = "gzip"
    elif data[:6] != b"SIMPLE":
        return None
    hdus = _hdus(raw, 2)
    found = next(((i, kind) for i, u in enumerate(hdus) if (kind := _is_image(u, i))), None)
    if found is None:
        if hdus and hdus[0].header.get("NAXIS") == 1:
            _check_shape([int(hdus[0].header.get("NAXIS1", 0))], 8, max_image_bytes, max_image_pixels)
        return None
    index, kind = found
    hdu = hdus[index]
    tiled = kind == "tile"
    if tiled and compression == "gzip":
        raise _bad(ErrorCode.BAD_FITS, "a tile-compressed (.fz) frame is sent as it is, not gzipped as well")
    dims, bitpix = _image_dims(hdu.header, tiled)
    if compression == "gzip":
        _, total = _gunzip_prefix(data, 0, max(max_image_bytes, 2 * HEADER_PREFIX_BYTES) + hdu.data_start)
    end = hdu.data_start + hdu.data_size
    if end > total:
        raise _bad(
            ErrorCode.BAD_FITS,
            f"the FITS header of HDU {index} claims {hdu.data_size:,} bytes of data but only "
            f"{max(total - hdu.data_start, 0):,} are present: the file is truncated or its header is wrong",
        )
    width, height = _check_shape(dims, bitpix, max_image_bytes, max_image_pixels)
    header = _astropy_header(raw, hdu, tiled, data)
    info = frame_header(header, (height, width))
    return InspectedFrame(
        compression="tile" if tiled else compression,
        hdu=index,
        width=width,
        height=height,
        decompressed_bytes=total,
        header=info,
    )
