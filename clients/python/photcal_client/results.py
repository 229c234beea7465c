"""Typed answers: an upload's result, a queued upload, an alert, a deleted datapoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: the magnitude system of each reference survey's bands, when the server does not state it per row:
#: Johnson-Cousins (APASS B V, GaiaSP UBVRI) and Gaia G/BP/RP are Vega; Sloan/PS1 ugriz(y) are AB
_VEGA_BANDS = frozenset({"U", "B", "V", "R", "I", "G", "BP", "RP"})


def magnitude_system(survey: str | None, band: str | None) -> str | None:
    """``"Vega"`` or ``"AB"`` for a survey's band (``"APASS"``, ``"V"``); None when unknown."""
    if not survey or not band:
        return None
    name = band.rstrip("'")
    if survey.upper() in {"PS1", "SDSS"}:
        return "AB"
    if survey.upper() == "GAIA":
        return "Vega"
    if name in _VEGA_BANDS:
        return "Vega"
    if name in {"u", "g", "r", "i", "z", "y"}:
        return "AB"
    return None


@dataclass(frozen=True)
class UploadResult:
    """One upload's calibration, as ``POST /api/v1/uploads`` answers it.

    Magnitudes in mag (``mag_system`` says Vega or AB), ``mjd`` the MJD (UTC) of
    mid-exposure, ``exptime`` seconds, ``ra``/``dec`` degrees (the target's measured
    position). ``mag``/``mag_err`` are None for a non-detection: ``limit_mag`` is
    then the frame's limit. ``raw`` is the whole JSON answer.
    """

    status: str
    upload_id: str
    message: str = ""
    error: str | None = None
    http_status: int = 200
    ivorn: str | None = None
    alert_name: str | None = None
    observatory: str | None = None
    mjd: float | None = None
    exptime: float | None = None
    survey: str | None = None
    filter: str | None = None
    mag: float | None = None
    mag_err: float | None = None
    limit_mag: float | None = None
    limit_method: str | None = None
    detected: bool | None = None
    ra: float | None = None
    dec: float | None = None
    zeropoint: float | None = None
    zeropoint_err: float | None = None
    colour_term: float | None = None
    colour_term_err: float | None = None
    colour: str | None = None
    npoints: int | None = None
    nmatched: int | None = None
    outlier_fraction: float | None = None
    scatter: float | None = None
    dry_run: bool = False
    stored: bool = False
    followup_id: int | None = None
    calibration_id: str | None = None
    image_link: str | None = None
    cutout_link: str | None = None
    warnings: list[str] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    duration_ms: dict[str, float] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> UploadResult:
        """The result of a JSON answer; keys this client does not know stay in ``raw``."""
        known = {f.name for f in dataclasses.fields(cls)} - {"raw"}
        values = {k: v for k, v in body.items() if k in known and v is not None}
        values.setdefault("status", "error")
        values.setdefault("upload_id", "")
        return cls(**values, raw=dict(body))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def mag_system(self) -> str | None:
        """``"Vega"`` or ``"AB"``: the server's when it says, else from the survey and band."""
        stated = self.raw.get("mag_system")
        return str(stated) if stated else magnitude_system(self.survey, self.filter)


@dataclass(frozen=True)
class QueuedUpload:
    """``upload(..., wait=False)``: accepted (HTTP 202); ``Client.result(upload_id)`` waits for it."""

    upload_id: str
    status_url: str
    message: str = ""


@dataclass(frozen=True)
class UploadStatus:
    """``GET /api/v1/uploads/{id}``: ``state`` is ``queued``, ``done`` or ``failed``; ``result`` once finished."""

    upload_id: str
    state: str
    result: UploadResult | None = None

    @property
    def finished(self) -> bool:
        return self.state in {"done", "failed"}


@dataclass(frozen=True)
class Alert:
    """An event (``GET /api/v1/alerts``): ``ra``/``dec`` degrees (J2000), its datapoints' count and last one."""

    ivorn: str
    name: str | None = None
    ra: float | None = None
    dec: float | None = None
    url: str | None = None
    n_datapoints: int = 0
    last_mag: float | None = None
    last_mjd: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Alert:
        known = {f.name for f in dataclasses.fields(cls)} - {"raw"}
        return cls(**{k: v for k, v in body.items() if k in known and v is not None}, raw=dict(body))


@dataclass(frozen=True)
class DeletedDatapoint:
    """``delete()``: the datapoint, now hidden from light curves (kept, with the reason, on the server)."""

    followup_id: int
    ivorn: str
    mjd: float
    message: str = ""
