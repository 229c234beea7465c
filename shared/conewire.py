"""The cone reply of ``photcal.catalog.cone.v2``: raw little-endian columns, sent in parts.

The format is a contract (its header model in :mod:`shared.contracts.messages`, its
subject and part headers in :mod:`shared.contracts.subjects`); its encoder and decoder live here.

Why not JSON (v1): a dense Galactic-plane field has 50,000-200,000 reference
stars; as JSON with base64 columns that is 10-25 MB, far above NATS's 1 MB
``max_payload``, and ``msg.respond`` raised ``MaxPayloadError``: nothing was
sent and the requester waited forever. Here the reply is one binary body

    <u32 little-endian: n> <n bytes: ConeReplyHeader as JSON> <columns...>

where the columns are laid out in the order the header lists them (positions
float64, magnitudes and errors float32: the catalogues store them as float32,
so nothing is lost), each padded to 8 bytes. The body is cut into parts of at
most ``max_payload`` minus room for headers and sent to the request's reply
inbox, each with the headers

    Photcal-Reply: <id of this reply>   Photcal-Part: <i>/<n>

The requester keeps the parts per reply id and decodes a reply once it holds
all ``n`` of one id (:class:`PartAssembler`). A reply that cannot be completed
(the service failed half way) is followed by a one-part error reply under a
new id, which completes first: an error is always answered, never silence.
"""

from __future__ import annotations

import struct
from typing import Literal

import numpy as np

from shared.contracts.messages import (
    ConeColumn,
    ConeReply,
    ConeReplyHeader,
    ConeSurveyLayout,
    SurveyStars,
)
from shared.contracts.subjects import HEADER_PART, HEADER_REPLY

#: room left in each part for the NATS headers and protocol line
PART_OVERHEAD = 4096

#: what NATS hands out and what the encoder builds: any of them is a body
BytesLike = bytes | bytearray | memoryview

_POSITION_DTYPE: Literal["<f8"] = "<f8"
_VALUE_DTYPE: Literal["<f4"] = "<f4"
_ALLOWED = {_POSITION_DTYPE, _VALUE_DTYPE}


class MalformedConeReply(ValueError):
    """The bytes are not a cone v2 reply (wrong framing, header or column sizes)."""


def _pad(n: int) -> int:
    return (-n) % 8


def encode_reply(reply: ConeReply) -> bytearray:
    """The reply as one binary body (see the module docstring); each column is copied once, into place."""
    layouts: list[ConeSurveyLayout] = []
    columns: list[tuple[np.ndarray, Literal["<f8", "<f4"]]] = []
    for name, stars in reply.stars.items():
        cols: list[ConeColumn] = []
        arrays: list[tuple[str, np.ndarray, Literal["<f8", "<f4"]]] = [
            ("ra", stars.ra, _POSITION_DTYPE),
            ("dec", stars.dec, _POSITION_DTYPE),
        ]
        arrays += [(f"mag:{band}", values, _VALUE_DTYPE) for band, values in stars.mags.items()]
        arrays += [(f"err:{band}", values, _VALUE_DTYPE) for band, values in stars.errs.items()]
        for key, values, dtype in arrays:
            cols.append(ConeColumn(key=key, dtype=dtype))
            columns.append((np.asarray(values), dtype))
        layouts.append(ConeSurveyLayout(survey=stars.survey or name, key=name, n=len(stars), columns=cols))
    header = (
        ConeReplyHeader(
            ok=reply.ok,
            error=reply.error,
            message=reply.message,
            covered=list(reply.covered),
            surveys=layouts,
            versions=dict(reply.versions),
        )
        .model_dump_json()
        .encode()
    )
    start = 4 + len(header) + _pad(4 + len(header))
    sizes = [len(values) * np.dtype(dtype).itemsize for values, dtype in columns]
    body = bytearray(start + sum(size + _pad(size) for size in sizes))
    struct.pack_into("<I", body, 0, len(header))
    body[4 : 4 + len(header)] = header
    pos = start
    for (values, dtype), size in zip(columns, sizes):
        np.frombuffer(body, dtype=dtype, count=len(values), offset=pos)[:] = values
        pos += size + _pad(size)
    return body


def decode_reply(body: BytesLike) -> ConeReply:
    """A :class:`ConeReply` from a whole body; :class:`MalformedConeReply` if it is not one."""
    if len(body) < 4:
        raise MalformedConeReply(f"a cone reply of {len(body)} bytes has no header")
    (n,) = struct.unpack_from("<I", body, 0)
    if n > len(body) - 4:
        raise MalformedConeReply(f"the header says {n} bytes but the reply has {len(body) - 4}")
    try:
        header = ConeReplyHeader.model_validate_json(bytes(body[4 : 4 + n]))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise MalformedConeReply(f"unreadable cone reply header: {str(exc)[:200]}") from exc
    pos = 4 + n + _pad(4 + n)
    reply = ConeReply(
        ok=header.ok,
        error=header.error,
        message=header.message,
        covered=list(header.covered),
        versions=dict(header.versions),
    )
    for layout in header.surveys:
        arrays: dict[str, np.ndarray] = {}
        for column in layout.columns:
            if column.dtype not in _ALLOWED:
                raise MalformedConeReply(f"column {column.key!r} of {layout.survey} has dtype {column.dtype!r}")
            size = layout.n * np.dtype(column.dtype).itemsize
            if pos + size > len(body):
                raise MalformedConeReply(f"the reply ends inside column {column.key!r} of {layout.survey}")
            # float64 in memory, as the catalogue store hands them out: the same numbers as v1 gave
            arrays[column.key] = np.frombuffer(body, dtype=column.dtype, count=layout.n, offset=pos).astype(np.float64)
            pos += size + _pad(size)
        if "ra" not in arrays or "dec" not in arrays:
            raise MalformedConeReply(f"no positions for {layout.survey}")
        reply.stars[layout.key] = SurveyStars(
            survey=layout.survey,
            ra=arrays["ra"],
            dec=arrays["dec"],
            mags={k[4:]: v for k, v in arrays.items() if k.startswith("mag:")},
            errs={k[4:]: v for k, v in arrays.items() if k.startswith("err:")},
        )
    if pos != len(body):
        raise MalformedConeReply(f"{len(body) - pos} bytes after the last column")
    return reply


def split_parts(body: BytesLike, part_bytes: int) -> list[memoryview]:
    """The body cut into parts of at most ``part_bytes`` (at least one part, even if empty); views, not copies."""
    if part_bytes <= 0:
        raise ValueError("part_bytes must be positive")
    view = memoryview(body)
    return [view[i : i + part_bytes] for i in range(0, max(len(body), 1), part_bytes)]


def part_headers(reply_id: str, index: int, total: int) -> dict[str, str]:
    return {HEADER_REPLY: reply_id, HEADER_PART: f"{index}/{total}"}


class PartAssembler:
    """Collects the parts of replies to one inbox; :meth:`add` returns the body once one is whole."""

    def __init__(self) -> None:
        self._parts: dict[str, dict[int, BytesLike]] = {}
        self._totals: dict[str, int] = {}
        self.bytes_received = 0

    def add(self, headers: dict[str, str] | None, data: BytesLike) -> bytes | None:
        headers = headers or {}
        self.bytes_received += len(data)
        reply_id = headers.get(HEADER_REPLY)
        part = headers.get(HEADER_PART)
        if reply_id is None or part is None:
            raise MalformedConeReply("a cone v2 reply part without Photcal-Reply/Photcal-Part headers")
        try:
            index_s, total_s = part.split("/")
            index, total = int(index_s), int(total_s)
        except ValueError as exc:
            raise MalformedConeReply(f"bad Photcal-Part header {part!r}") from exc
        if not (0 <= index < total) or total > 100_000:
            raise MalformedConeReply(f"bad Photcal-Part header {part!r}")
        if self._totals.setdefault(reply_id, total) != total:
            raise MalformedConeReply(f"reply {reply_id} changed its number of parts")
        parts = self._parts.setdefault(reply_id, {})
        parts[index] = data
        if len(parts) < total:
            return None
        return b"".join(parts[i] for i in range(total))

    def progress(self) -> str:
        """What has arrived so far, for a timeout's message."""
        if not self._parts:
            return "no part"
        rid = max(self._parts, key=lambda r: len(self._parts[r]))
        return f"{len(self._parts[rid])} of {self._totals[rid]} parts"
