"""The CPCS upload form, field for field, with CPCS's defaults."""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, Field, PrivateAttr, ValidationError, field_validator

from shared.bands import ForcedBand, parse_force_filter
from shared.contracts.errors import ErrorCode
from shared.cpcs_http import parse_flag
from shared.errors import BadInput
from shared.frames import FrameHeader, merge_form
from shared.validation import clean_comment, validate_ivorn

#: an event's name given for its ivorn: a letter first, then letters, digits and _ . + - (Gaia23sim, AT2021yjn)
_BARE_NAME = re.compile(r"\A[A-Za-z][A-Za-z0-9_.+\-]{1,99}\Z")


class UploadForm(BaseModel):
    """What the CPCS manual lists; an absent field takes CPCS's default."""

    EventID: str
    #: required with a catalogue (read_upload_form); a FITS frame's header may give it instead
    MJD: float | None = Field(None, gt=0, lt=100_000, description="modified Julian date of mid-exposure")
    expTime: float | None = Field(None, ge=0, le=1e6)
    matchDist: float = Field(2.0, gt=0, le=60, description="arcsec")
    comment: str = Field("", max_length=2000)
    forceFilter: str = Field("no", max_length=40)
    dryRun: bool = False
    noPlot: bool = False
    outputFormat: Literal["json", "html"] = "html"
    #: where the result is POSTed once done or failed (issue 22); the gateway checks it is public
    callback_url: str | None = Field(None, max_length=2000)
    #: forceFilter parsed (by read_upload_form, the one place the gateway parses it); None: choose
    _forced_band: ForcedBand | None = PrivateAttr(default=None)

    @property
    def forced_band(self) -> ForcedBand | None:
        """The forced band or band group the upload message carries; None to choose the best."""
        return self._forced_band

    @field_validator("EventID")
    @classmethod
    def _ivorn(cls, value: str) -> str:
        # an ivorn, or an event's bare name as the light-curve URL takes it (Gaia23sim): find_alert resolves both
        if _BARE_NAME.match(value.strip()):
            return value.strip()
        try:
            return validate_ivorn(value)
        except ValueError:
            raise ValueError("an event id is its ivorn (ivo://gaia/alerts#Gaia21eeo) or its name (Gaia21eeo)") from None

    @field_validator("comment")
    @classmethod
    def _comment(cls, value: str) -> str:
        # control characters stripped, not refused (shared.validation.clean_comment); the length is the sent one's
        return clean_comment(value)

    @field_validator("MJD", "expTime", "matchDist", mode="before")
    @classmethod
    def _finite(cls, value):
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        number = float(str(value).strip().replace(",", "."))
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return number

    @field_validator("dryRun", "noPlot", mode="before")
    @classmethod
    def _flag(cls, value):
        return parse_flag(value)

    @field_validator("outputFormat", mode="before")
    @classmethod
    def _format(cls, value):
        return str(value).strip().lower() or "html"

    @field_validator("callback_url", mode="before")
    @classmethod
    def _callback(cls, value):
        return str(value).strip() or None if value is not None else None

    @field_validator("forceFilter", mode="before")
    @classmethod
    def _force(cls, value):
        return str(value).strip() or "no"


FIELD_HINTS = {
    "EventID": "EventID is the alert's ivorn, e.g. ivo://gaia/alerts#Gaia21eeo, or its name, e.g. Gaia21eeo",
    "MJD": "MJD is the modified Julian date of the exposure, e.g. 58000.5",
    "expTime": "expTime is the exposure time in seconds",
    "matchDist": "matchDist is the matching radius in arcsec (default 2)",
    "dryRun": "dryRun is 1 or 0",
    "noPlot": "noPlot is 1 or 0",
    "outputFormat": "outputFormat is json or html",
    "comment": "comment is at most 2000 characters",
    "callback_url": "callback_url is a public http(s) URL the result is POSTed to",
    "forceFilter": "forceFilter is 'no', SURVEY/BAND (e.g. APASS/V) or a band group (GaiaSP/any, APASS/B,V)",
}


#: what a frame upload without a date is told (the form's MJD or the header's, read by shared.frames)
NO_MJD_HINT = "give mjd= (MJD=) or a header with DATE-OBS/MJD-OBS (+EXPTIME)"


def read_upload_form(fields: dict[str, str], *, require_mjd: bool = True) -> UploadForm:
    """Validate the text fields; unknown fields (e.g. fits_id) are ignored, as CPCS did.

    ``require_mjd`` False when the file may be a FITS frame, whose header can give
    the date: the caller then resolves the MJD (:func:`resolve_frame_exposure`).
    """
    known = {k: v for k, v in fields.items() if k in UploadForm.model_fields and v is not None}
    if "mjd" in fields and "MJD" not in known:
        known["MJD"] = fields["mjd"]  # the lower-case spelling a frame's curl may use
    if "EventID" not in known:
        raise BadInput("EventID is missing: " + FIELD_HINTS["EventID"], code=ErrorCode.MISSING_FIELD)
    if require_mjd and "MJD" not in known:
        raise BadInput("MJD is missing: " + FIELD_HINTS["MJD"], code=ErrorCode.MISSING_FIELD)
    try:
        form = UploadForm.model_validate(known)
    except ValidationError as exc:
        raise BadInput(describe(exc), code=ErrorCode.BAD_FIELD) from exc
    if require_mjd and form.MJD is None:  # sent empty: with a catalogue nothing else can give the date
        raise BadInput("MJD: is empty (" + FIELD_HINTS["MJD"] + ")", code=ErrorCode.BAD_FIELD)
    form._forced_band = parse_force_filter(form.forceFilter)
    form.forceFilter = _canonical_text(form._forced_band)
    return form


def resolve_frame_exposure(form: UploadForm, header: FrameHeader) -> tuple[FrameHeader, dict[str, str]]:
    """A frame's exposure: the form's MJD and expTime where given (the form wins), else the header's.

    Returns the merged header and what was taken from the header (field -> keyword).
    Neither the form nor the header gives a date: 400 ``no_mjd``.
    """
    merged, from_header = merge_form(header, mjd=form.MJD, exptime=form.expTime)
    if merged.mjd is None:
        raise BadInput(f"the frame's date is unknown: {NO_MJD_HINT}; e.g. -F MJD=60100.5", code=ErrorCode.NO_MJD)
    return merged, from_header


def _canonical_text(forced: ForcedBand | None) -> str:
    return "no" if forced is None else forced.text


def canonical_force_filter(value: str) -> str:
    """``no``, or the forceFilter in the surveys' own spelling; a survey or band not served is a 400 now.

    CPCS clients send ``APASS/V``, ``SDSS/r``, ``GaiaSP/V``; BHTOM's also band groups
    (``GaiaSP/any``, ``GaiaSP/UBVRI``, ``APASS/B,V``). APASS's Sloan bands are
    ``g' r' i'`` here, so ``APASS/r`` means ``APASS/r'``. Parsed by
    :func:`shared.bands.parse_force_filter`, the one parser of forceFilter.
    """
    return _canonical_text(parse_force_filter(value))


def describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else "input"
    hint = FIELD_HINTS.get(name, "")
    reason = first["msg"].removeprefix("Value error, ")
    return f"{name}: {reason}" + (f" ({hint})" if hint else "")
