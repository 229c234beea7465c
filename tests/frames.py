"""Simulated CCD frames as an observer uploads them: FITS bytes, with or without a WCS, compressed or not.

Shared by the imaging unit tests and the photometry service's integration tests.
"""

from __future__ import annotations

import gzip
import io

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from services.photometry.imaging.frame import FramePhotometry, photometer_frame
from shared.frames import frame_header


def photometer_field(field) -> FramePhotometry:
    """A simulated field's frame photometered at its transient, with its own WCS."""
    info = frame_header(field.header, field.image.shape)
    t = field.truth["transient"]
    return photometer_frame(field.image, info, WCS(field.header), t["ra"], t["dec"])


def without_wcs(header: fits.Header) -> fits.Header:
    """The header with every WCS keyword removed, as a camera writes it before plate solving."""
    stripped = header.copy()
    for key in list(WCS(header).to_header()) + ["CTYPE1", "CTYPE2", "CD1_1", "CD1_2", "CD2_1", "CD2_2"]:
        stripped.remove(key, ignore_missing=True, remove_all=True)
    return stripped


def fits_bytes(image: np.ndarray, header: fits.Header, compression: str = "none") -> tuple[bytes, int]:
    """(the file's bytes, the image's HDU index): plain, gzipped, or tile-compressed (``.fz``)."""
    buffer = io.BytesIO()
    if compression == "tile":
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(image, header)]).writeto(buffer)
        return buffer.getvalue(), 1
    fits.PrimaryHDU(image, header).writeto(buffer)
    raw = buffer.getvalue()
    return (gzip.compress(raw, compresslevel=1) if compression == "gzip" else raw), 0
