"""Data processors: a data product sent to photcal, its calibrated point stored as the target's photometry.

Register them the TOM Toolkit's way (settings.py)::

    DATA_PRODUCT_TYPES["photcal_catalogue"] = ("photcal_catalogue", "photcal: SExtractor catalogue")
    DATA_PRODUCT_TYPES["photcal_frame"] = ("photcal_frame", "photcal: FITS frame")
    DATA_PROCESSORS["photcal_catalogue"] = "tom_photcal.processors.PhotcalCatalogueProcessor"
    DATA_PROCESSORS["photcal_frame"] = "tom_photcal.processors.PhotcalFrameProcessor"

The event is the target's photcal alert (its ``photcal_alert`` extra field, else its name).
The MJD (UTC, mid-exposure) is the data product's ``extra_data`` (``{"mjd": 60010.5}`` or
``mjd=60010.5``), else one in its file name (``..._mjd60010.5.cat``), else, for a FITS file,
its header (photcal reads MJD-OBS / DATE-OBS and EXPTIME). The datum's timestamp is the MJD
photcal stored.

A datapoint is stored once per target: processing a product again (or the same file as a new
product) is answered 409 ``duplicate_datapoint`` by photcal, naming the stored point; that
point is used, and nothing is added when the target already has it.
"""

from __future__ import annotations

import io
import logging
import os
from datetime import datetime
from typing import Any

from photcal_client import Client, Conflict, PhotcalError
from tom_dataproducts.data_processor import DataProcessor
from tom_dataproducts.exceptions import InvalidFileFormatException
from tom_dataproducts.models import PhotometryReducedDatum

from tom_photcal.config import PhotcalProcessingError, alert_of, ivorn_of, photcal_client
from tom_photcal.photometry import (
    DATAPOINT_KEY,
    SOURCE_NAME,
    datum_of_result,
    datum_of_row,
    mjd_of_product,
    stored_datapoint_id,
    timestamp_of,
)

logger = logging.getLogger(__name__)

#: the first bytes of every FITS file
_FITS_MAGIC = b"SIMPLE  ="


def is_fits(content: bytes) -> bool:
    return content[: len(_FITS_MAGIC)] == _FITS_MAGIC


def instrument_of(content: bytes) -> str:
    """A FITS file's ``INSTRUME`` keyword (primary header), else ``""``."""
    if not is_fits(content):
        return ""
    from astropy.io import fits

    try:
        with fits.open(io.BytesIO(content), lazy_load_hdus=True) as hdus:
            return str(hdus[0].header.get("INSTRUME", "") or "").strip()
    except (OSError, ValueError):
        return ""


def has_datapoint(target: Any, datapoint_id: int) -> bool:
    """Whether the target already holds photcal's datapoint ``datapoint_id`` (from any product or pull)."""
    return PhotometryReducedDatum.objects.filter(target=target, **{f"value__{DATAPOINT_KEY}": datapoint_id}).exists()


class PhotcalCatalogueProcessor(DataProcessor):
    """A SExtractor catalogue (ASCII_HEAD, CPCS text, FITS_LDAC) of the target's field, calibrated by photcal."""

    def data_type_override(self) -> str:
        return "photometry"

    def check_content(self, content: bytes, mjd: float | None, filename: str) -> None:
        """Refuse what photcal would refuse for want of a date: a text catalogue states no MJD of its own."""
        if mjd is None and not is_fits(content):
            raise InvalidFileFormatException(
                f"{filename}: no MJD for this catalogue: set the data product's extra_data to "
                '{"mjd": 60010.5} or put it in the file name (e.g. field_mjd60010.5.cat)'
            )

    def process_data(self, data_product: Any) -> list[tuple[datetime, dict[str, Any], str]]:
        """Send the product to photcal; its calibrated datapoint as one (timestamp, datum, source) tuple.

        Empty when the target already holds that datapoint. A refused calibration raises
        :class:`PhotcalProcessingError` with photcal's code and message (the upload view shows it).
        """
        filename = os.path.basename(data_product.data.name)
        with data_product.data.open("rb") as handle:
            content = handle.read()
        mjd = mjd_of_product(data_product.extra_data, filename)
        self.check_content(content, mjd, filename)
        instrument = instrument_of(content)
        target = data_product.target
        with photcal_client(need_hashtag=True) as client:
            try:
                ivorn = ivorn_of(client, alert_of(target))
                value = self._send(client, content, ivorn, mjd, filename, instrument)
            except PhotcalError as exc:
                raise PhotcalProcessingError(exc.message, exc.code, exc.status) from exc
        if has_datapoint(target, value[DATAPOINT_KEY]):
            logger.info("target %s already holds photcal datapoint %s", target, value[DATAPOINT_KEY])
            return []
        return [(timestamp_of(value["mjd"]), value, SOURCE_NAME)]

    def _send(
        self, client: Client, content: bytes, ivorn: str, mjd: float | None, filename: str, instrument: str
    ) -> dict[str, Any]:
        try:
            result = client.upload(content, ivorn, mjd, filename=filename)
        except Conflict as exc:
            if exc.code != "duplicate_datapoint":
                raise
            return self._stored(client, ivorn, exc, instrument)
        return datum_of_result(client.url, result, instrument)

    def _stored(self, client: Client, ivorn: str, refused: Conflict, instrument: str) -> dict[str, Any]:
        """The point photcal already holds for this event, observatory and MJD (its 409 names it)."""
        datapoint_id = stored_datapoint_id(refused.body, refused.message)
        if datapoint_id is None:
            raise refused
        table = client.lightcurve(ivorn)
        rows = [row for row in table if int(row["followup_id"]) == datapoint_id]
        if not rows:  # stored but deleted since: photcal hides it, so does the TOM
            raise PhotcalProcessingError(
                f"photcal holds this point as datapoint {datapoint_id} but no longer shows it (deleted)",
                refused.code,
                refused.status,
            )
        return datum_of_row(client.url, ivorn, rows[0], instrument)


class PhotcalFrameProcessor(PhotcalCatalogueProcessor):
    """A FITS frame (an image with a WCS): photcal measures its sources and the target, then calibrates."""

    def check_content(self, content: bytes, mjd: float | None, filename: str) -> None:
        if not is_fits(content):
            raise InvalidFileFormatException(f"{filename} is not a FITS file: upload a frame as FITS (.fits, .fz)")
