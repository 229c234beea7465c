"""The uploaded frame's pixels and its celestial WCS: pure, bytes in, arrays out.

The gateway checked the file's headers against its bytes and the server's limits
(services/ingest/parsing/image.py); the pixels are read here, and what the header
claims is checked again against what is read: a frame is never trusted to be the
size it says it is.
"""

from __future__ import annotations

import io
import math
import warnings
import zlib

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from shared.contracts.errors import ErrorCode
from shared.contracts.messages import UploadedImage
from shared.errors import BadInput

GZIP_MAGIC = b"\x1f\x8b"
#: bytes a gunzipped frame may have beyond what the gateway counted (none, in truth: a margin for rounding)
_GUNZIP_SLACK = 2880


#: header keywords giving a frame's pixel scale (arcsec/px) without a WCS, as cameras write them
PIXEL_SCALE_KEYWORDS = ("PIXSCALE", "PIXSCAL1", "SECPIX", "SECPIX1", "SCALE")


def _bad_image(message: str) -> BadInput:
    return BadInput(message, code=ErrorCode.BAD_IMAGE)


def gunzip_bounded(raw: bytes, limit: int) -> bytes:
    """``raw`` gunzipped, refusing (``bad_image``) more than ``limit`` bytes: a file that inflates
    beyond what the gateway counted is not the file it checked."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise _bad_image(f"the gzipped frame cannot be decompressed ({exc}): is the file complete?") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise _bad_image(f"the gzipped frame inflates to more than the {limit:,} bytes the upload was checked for")
    return out


def read_frame(raw: bytes, image: UploadedImage, max_pixels: int) -> tuple[np.ndarray, fits.Header]:
    """(pixels as float32 ADU, the image HDU's header) of an uploaded FITS file.

    ``raw`` as uploaded: plain, gzipped (inflated here, bounded by the size the gateway
    counted) or tile-compressed (astropy decompresses the CompImageHDU); the image is HDU
    ``image.hdu``. Raises ``BadInput`` (``bad_image``) for a file that does not read as the
    2-D image of at most ``max_pixels`` the gateway saw.
    """
    if raw[:2] == GZIP_MAGIC:
        raw = gunzip_bounded(raw, max(image.decompressed_bytes, 0) + _GUNZIP_SLACK)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-standard keywords of real cameras are read as they are
            with fits.open(io.BytesIO(raw), memmap=False, lazy_load_hdus=True) as hdul:
                hdu = hdul[image.hdu]
                header = hdu.header.copy()
                width, height = int(header.get("NAXIS1", 0)), int(header.get("NAXIS2", 0))
                if int(header.get("NAXIS", 0)) != 2 or width <= 0 or height <= 0:
                    raise _bad_image(
                        f"HDU {image.hdu} of the file is not a 2-D image (NAXIS {header.get('NAXIS')}): "
                        "upload one image plane"
                    )
                if width * height > max_pixels:
                    raise _bad_image(
                        f"the frame is {width} x {height} pixels; at most {max_pixels:,} pixels are measured: "
                        "bin or crop it, or upload its catalogue"
                    )
                data = hdu.data
                if data is None:
                    raise _bad_image(f"HDU {image.hdu} of the file has no pixels")
                pixels = np.asarray(data, dtype=np.float32)
    except BadInput:
        raise
    except (OSError, ValueError, TypeError, IndexError, KeyError, EOFError, MemoryError) as exc:
        # astropy raises these for a truncated or corrupt file (and zlib's errors are OSErrors)
        raise _bad_image(
            f"the FITS frame cannot be read ({type(exc).__name__}: {str(exc)[:200]}): is the file complete?"
        ) from exc
    if pixels.shape != (height, width):
        raise _bad_image(
            f"the frame's pixels are {pixels.shape[1] if pixels.ndim > 1 else '?'} x {pixels.shape[0]}, "
            f"not the {width} x {height} its header says: is the file complete?"
        )
    return pixels, header


def header_wcs(header: fits.Header) -> WCS | None:
    """The header's celestial WCS, or None when it has none (or one that does not convert)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(header, naxis=2, relax=True)
            if not wcs.has_celestial or wcs.celestial.naxis != 2:
                return None
            celestial = wcs.celestial
            # a WCS that maps the frame's centre nowhere (zero CD matrix, NaN keywords) is no WCS
            ra, dec = celestial.all_pix2world([header.get("NAXIS1", 1) / 2], [header.get("NAXIS2", 1) / 2], 0)
    except Exception:  # astropy raises many unrelated types for a broken WCS
        return None
    if not (math.isfinite(float(ra[0])) and math.isfinite(float(dec[0]))):
        return None
    if not np.all(np.isfinite(celestial.pixel_scale_matrix)) or np.linalg.det(celestial.pixel_scale_matrix) == 0:
        return None
    return celestial


def pixel_scale_hint(header: fits.Header) -> float | None:
    """The frame's pixel scale (arcsec/px) as its header says without a WCS, or None."""
    for key in PIXEL_SCALE_KEYWORDS:
        value = header.get(key)
        if isinstance(value, bool) or value is None:
            continue
        try:
            scale = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(scale) and 0.05 <= scale <= 60.0:
            return scale
    return None


def solve_radius_deg(width: int, height: int, scale_arcsec: float | None, default_deg: float) -> float:
    """How far (deg) the frame's centre can be from an alert on it: half its diagonal, with a margin.

    Without a pixel scale the frame's size is unknown: ``default_deg``.
    """
    if scale_arcsec is None:
        return default_deg
    half_diagonal = 0.5 * math.hypot(width, height) * scale_arcsec / 3600.0
    return round(max(1.25 * half_diagonal, 0.05), 4)
