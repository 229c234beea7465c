"""Numpy arrays inside pydantic messages, as compact base64 columns.

A 20,000-source catalogue as JSON numbers is about 1 MB, NATS' default
payload limit; as little-endian binary columns it is a third of that.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)

_ALLOWED_DTYPES = {"<f8", "<f4", "<i2", "<i4", "<i8", "|b1", "|u1"}


def encode_array(array: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(array)
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    array = array.astype(dtype, copy=False)
    return {"dtype": dtype.str, "data": base64.b64encode(array.tobytes()).decode("ascii")}


def decode_array(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple)):
        return np.asarray(value, dtype=float)
    if not isinstance(value, dict) or "dtype" not in value or "data" not in value:
        raise ValueError("an array is {dtype, data(base64)}")
    dtype = str(value["dtype"])
    if dtype not in _ALLOWED_DTYPES:
        raise ValueError(f"array dtype {dtype!r} not allowed")
    raw = base64.b64decode(value["data"], validate=True)
    return np.frombuffer(raw, dtype=np.dtype(dtype)).copy()


NDArray = Annotated[
    np.ndarray,
    PlainValidator(decode_array),
    PlainSerializer(encode_array, return_type=dict),
    WithJsonSchema({"type": "object", "properties": {"dtype": {"type": "string"}, "data": {"type": "string"}}}),
]


class ArrayModel(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)


class SourceTable(ArrayModel):
    """The observer's sources, as the gateway parsed them from the catalogue.

    ``mag`` is the instrumental magnitude (e.g. ``MAG_AUTO``), ``ra``/``dec``
    in degrees (ICRS/J2000), ``flags`` SExtractor's FLAGS (0 when the file
    had none). Rows whose magnitude was unusable (99, NaN) are kept with NaN
    so that the frame's source count stays honest; the fit skips them.
    ``mag_aper``/``mag_aper_err`` are the first fixed aperture's magnitude
    (``MAG_APER``) when the catalogue has it beside ``mag``, else None: a
    crowded frame's target is measured in it (:mod:`services.calibrate.core.aperture`).
    """

    ra: NDArray
    dec: NDArray
    mag: NDArray
    mag_err: NDArray
    flags: NDArray
    mag_aper: NDArray | None = None
    mag_aper_err: NDArray | None = None

    def __len__(self) -> int:
        return int(len(self.ra))

    @classmethod
    def from_columns(
        cls,
        ra: np.ndarray,
        dec: np.ndarray,
        mag: np.ndarray,
        mag_err: np.ndarray,
        flags: np.ndarray | None = None,
        mag_aper: np.ndarray | None = None,
        mag_aper_err: np.ndarray | None = None,
    ) -> SourceTable:
        n = len(ra)
        with_aperture = mag_aper is not None and mag_aper_err is not None
        return cls(
            ra=np.asarray(ra, dtype="<f8"),
            dec=np.asarray(dec, dtype="<f8"),
            mag=np.asarray(mag, dtype="<f4"),
            mag_err=np.asarray(mag_err, dtype="<f4"),
            flags=np.zeros(n, dtype="<i4") if flags is None else np.asarray(flags, dtype="<i4"),
            mag_aper=np.asarray(mag_aper, dtype="<f4") if with_aperture else None,
            mag_aper_err=np.asarray(mag_aper_err, dtype="<f4") if with_aperture else None,
        )
