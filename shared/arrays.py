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
    """

    ra: NDArray
    dec: NDArray
    mag: NDArray
    mag_err: NDArray
    flags: NDArray

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
    ) -> SourceTable:
        n = len(ra)
        return cls(
            ra=np.asarray(ra, dtype="<f8"),
            dec=np.asarray(dec, dtype="<f8"),
            mag=np.asarray(mag, dtype="<f4"),
            mag_err=np.asarray(mag_err, dtype="<f4"),
            flags=np.zeros(n, dtype="<i4") if flags is None else np.asarray(flags, dtype="<i4"),
        )
