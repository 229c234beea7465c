"""Every message that crosses NATS, as versioned pydantic models.

The subject carries the version (``photcal.upload.v1``, names in
:mod:`shared.contracts.subjects`); a breaking change to a model is a new
subject, never an edit in place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.arrays import ArrayModel, NDArray, SourceTable
from shared.bands import ForcedBand
from shared.contracts.subjects import STREAM_RESULTS, SUBJECT_CALIBRATED, SUBJECT_RECALIBRATED
from shared.frames import FrameHeader


def utcnow() -> datetime:
    return datetime.now(UTC)


class UploadedImage(BaseModel):
    """A FITS frame to photometer on the server, as it was sent, in the object store.

    ``object_name`` in bucket ``photcal-uploads`` (``<upload_id>.fits``, with
    ``.gz`` / ``.fz`` as ``compression`` says); ``header`` what the gateway
    read from the frame's header (the form's MJD and exposure time merged in:
    the form wins); ``hdu``: the index of the image HDU;
    ``decompressed_bytes``: the FITS file's size once gunzipped (the worker's bound).
    """

    object_name: str
    compression: Literal["none", "gzip", "tile"] = "none"
    hdu: int = Field(0, ge=0)
    size_bytes: int = Field(ge=0)
    decompressed_bytes: int = Field(ge=0)
    header: FrameHeader


class ImagePhotometry(BaseModel):
    """How the target was measured on an uploaded frame.

    ``method`` ``"forced_aperture"``: the frame's aperture at the alert's
    position; ``radius_px`` that aperture, ``fwhm_px`` the frame's FWHM (px);
    ``snr`` the target's signal-to-noise there, ``snr_limit`` the S/N below
    which the answer is a limit; ``n_detected`` objects found on the frame;
    ``wcs`` ``"header"`` or ``"solved"``; ``x``, ``y`` the alert's pixel (FITS, 1-based).
    """

    method: Literal["forced_aperture"] = "forced_aperture"
    radius_px: float
    fwhm_px: float
    snr: float | None = None
    snr_limit: float
    n_detected: int
    wcs: Literal["header", "solved"] = "header"
    x: float | None = None
    y: float | None = None


class ForcedTarget(BaseModel):
    """The aperture at the alert's position on an uploaded frame, instrumental (services/photometry).

    Magnitudes are ``-2.5 log10(ADU)`` in the frame's aperture, the scale of
    the sources it measured, so the calibration's zero point applies to them
    unchanged. ``inst_mag``/``inst_mag_err`` when ``snr >= photometry.snr_limit``
    (else null: a non-detection); ``inst_limit`` always: the ``snr_limit``-sigma
    flux from the local background noise at that position; ``inside``: the
    aperture lies wholly on the frame.
    """

    inst_mag: float | None = None
    inst_mag_err: float | None = None
    inst_limit: float
    snr: float
    inside: bool = True
    photometry: ImagePhotometry
    #: the cut-out of the frame around the target (PNG, aperture drawn) in bucket ``photcal-plots``; null: none made
    cutout_object: str | None = None


class UploadRequested(BaseModel):
    """An accepted upload, published by the gateway on ``photcal.upload.v1``.

    The parsed sources travel inline when small; larger tables are put in the
    JetStream object store bucket ``photcal-uploads`` under ``upload_id`` and
    ``sources`` is then null with ``sources_in_object_store`` true.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    version: Literal[1] = 1
    upload_id: str
    ivorn: str
    alert_name: str | None = None
    alert_ra: float
    alert_dec: float
    observatory_id: str
    observatory_name: str
    mjd: float
    exptime: float | None = None
    match_dist_arcsec: float = 2.0
    force_filter: str | None = Field(None, description="SURVEY/BAND, or null to choose")
    dry_run: bool = False
    no_plot: bool = True
    comment: str = ""
    filename: str = ""
    catalogue_format: str = ""
    n_sources: int
    sources: SourceTable | None = None
    sources_in_object_store: bool = False
    received_at: datetime = Field(default_factory=utcnow)
    #: the observatory's registered filters (``V``, ``r'``...): the band is chosen among theirs (shared/bands.py)
    observatory_filters: list[str] = Field(default_factory=list)
    #: ``force_filter`` parsed once by the gateway (shared.bands.parse_force_filter); null: choose
    forced_band: ForcedBand | None = None
    #: a FITS frame instead of a catalogue. On ``photcal.frame.v1`` (gateway -> photometry): ``n_sources`` 0,
    #: ``sources`` null. On ``photcal.upload.v1`` (photometry -> calibrate): still set, with the frame's
    #: measured sources (inline or in the object store, as for a catalogue) and ``forced_target``
    image: UploadedImage | None = None
    #: the target measured on the frame at the alert's position (services/photometry); null for a catalogue
    forced_target: ForcedTarget | None = None
    #: sha256 of the uploaded file's bytes as received (hex), for provenance; null from older gateways
    input_sha256: str | None = None
    #: where the notify service POSTs the upload's result once done or failed (issue 22), checked public by the
    #: gateway; kept in the upload's record (shared/db/uploads.py)
    callback_url: str | None = None


class ConeRequest(BaseModel):
    """Reference stars within ``radius_deg`` of (ra, dec), for these surveys (all if empty)."""

    version: Literal[1] = 1
    ra: float = Field(ge=0.0, lt=360.0)
    dec: float = Field(ge=-90.0, le=90.0)
    radius_deg: float = Field(gt=0.0, le=5.0)
    surveys: list[str] = Field(default_factory=list)


class SurveyStars(ArrayModel):
    """One survey's stars in a cone: positions and, per band, mag and error (NaN if missing)."""

    survey: str
    ra: NDArray
    dec: NDArray
    mags: dict[str, NDArray]
    errs: dict[str, NDArray]

    def __len__(self) -> int:
        return int(len(self.ra))


class ConeReply(BaseModel):
    version: Literal[1] = 1
    ok: bool = True
    error: str | None = None
    message: str | None = None
    #: surveys with stars in this cone, in the order they were asked
    covered: list[str] = Field(default_factory=list)
    stars: dict[str, SurveyStars] = Field(default_factory=dict)
    #: the catalogue version each covered survey was read from (services/catalog/layout.py: "v7"), for provenance
    versions: dict[str, str] = Field(default_factory=dict)


class ConeRequestV2(BaseModel):
    """``photcal.catalog.cone.v2``: as v1; the reply is a binary body in parts (shared/conewire.py).

    v1's JSON reply could not carry a dense field (more than ~8,000 stars is over NATS's 1 MB
    payload); a new subject because v1 clients cannot read the v2 reply.
    """

    version: Literal[2] = 2
    ra: float = Field(ge=0.0, lt=360.0)
    dec: float = Field(ge=-90.0, le=90.0)
    radius_deg: float = Field(gt=0.0, le=5.0)
    surveys: list[str] = Field(default_factory=list)
    #: at most about this many stars per survey, the brightest (in their brightest band; stars without
    #: any magnitude are kept): what a frame of N sources can match, with a margin. Null: every star.
    brightest: int | None = Field(None, ge=1)
    #: survey -> the catalogue version to read (``v6``) instead of the live one (a recalibration's
    #: ``catalogue_versions``); a version not on disk answers ``unknown_catalogue_version``. Empty: live.
    versions: dict[str, str] = Field(default_factory=dict)


class CatalogueVersionsRequest(BaseModel):
    """``photcal.catalog.versions.v1`` (request/reply, JSON): which catalogue versions are on disk."""

    version: Literal[1] = 1


class CatalogueVersionsReply(BaseModel):
    """Survey -> its catalogue versions on disk, oldest first (the live one and the one before it)."""

    version: Literal[1] = 1
    versions: dict[str, list[str]] = Field(default_factory=dict)


class ConeColumn(BaseModel):
    """One column of a v2 cone reply: ``ra``, ``dec``, ``mag:<band>`` or ``err:<band>``."""

    key: str
    dtype: Literal["<f8", "<f4"]


class ConeSurveyLayout(BaseModel):
    survey: str
    #: the key of ``ConeReply.stars`` (the survey name)
    key: str
    n: int = Field(ge=0)
    columns: list[ConeColumn]


class ConeReplyHeader(BaseModel):
    """The JSON head of a v2 cone reply; the columns follow it in this order."""

    version: Literal[2] = 2
    ok: bool = True
    error: str | None = None
    message: str | None = None
    covered: list[str] = Field(default_factory=list)
    surveys: list[ConeSurveyLayout] = Field(default_factory=list)
    #: as ConeReply.versions (absent from replies of services older than it: empty)
    versions: dict[str, str] = Field(default_factory=dict)


class CandidateFit(BaseModel):
    """One survey/band tried, with its fit quality."""

    survey: str
    filter: str
    colour: str
    zeropoint: float | None = None
    zeropoint_err: float | None = None
    colour_term: float | None = None
    scatter: float | None = None
    npoints: int = 0
    nmatched: int = 0
    outlier_fraction: float | None = None
    score: float | None = None
    chosen: bool = False
    note: str | None = None
    #: zero point only over stars without colours, colour term assumed 0 (see CalibrationResult.warnings)
    colour_term_assumed: bool = False


class CatalogueUsed(BaseModel):
    """One reference catalogue a calibration read: the survey, its release, the loaded version."""

    survey: str
    #: the survey's data release (shared/contracts/surveys.py: "DR9", "DR3"...)
    release: str
    #: the catalogue version the catalog service served (services/catalog/layout.py: "v7"); null if not told
    version: str | None = None


class SoftwareVersion(BaseModel):
    """The code that calibrated: the package's version and the git commit it was built from (null: unknown)."""

    package: str
    commit: str | None = None
    #: the working tree had changes beyond that commit
    dirty: bool = False


class Provenance(BaseModel):
    """What produced a calibration, enough to re-do it and to know when it would change (issue 19).

    ``input_sha256``: the uploaded file's bytes as received; ``catalogues``
    every survey the cone served (the chosen one among them);
    ``fit_settings`` every :class:`FitSettings` value; ``match_radius_arcsec``,
    ``force_filter`` (as sent), ``forced_bands`` (as parsed: the bands the
    choice was restricted to) and ``observatory_filters`` the choice's inputs.
    """

    input_sha256: str | None = None
    software: SoftwareVersion
    catalogues: list[CatalogueUsed] = Field(default_factory=list)
    fit_settings: dict[str, Any] = Field(default_factory=dict)
    match_radius_arcsec: float
    force_filter: str | None = None
    forced_bands: list[tuple[str, str]] = Field(default_factory=list)
    observatory_filters: list[str] = Field(default_factory=list)


class CalibrationResult(BaseModel):
    """The answer to one upload, published on ``photcal.calibrated.v1``.

    Key names are CPCS's where CPCS had one (``zeropoint``, ``npoints``,
    ``followup_id``, ``image_link``): its clients read them by key.
    """

    message: str = ""
    status: Literal["ok", "error"]
    error: str | None = None
    http_status: int = 200
    version: Literal[1] = 1
    upload_id: str
    ivorn: str
    alert_name: str | None = None
    observatory: str | None = None
    mjd: float | None = None
    exptime: float | None = None
    comment: str = ""
    survey: str | None = None
    filter: str | None = None
    mag: float | None = None
    mag_err: float | None = None
    ra: float | None = None
    dec: float | None = None
    limit_mag: float | None = None
    #: how limit_mag was found: "completeness" (50 % of the field's reference stars that faint
    #: are detected) or "mag_err" (5 sigma from the frame's magnitude-error relation)
    limit_method: str | None = None
    detected: bool | None = None
    zeropoint: float | None = None
    zeropoint_err: float | None = None
    colour_term: float | None = None
    colour_term_err: float | None = None
    colour: str | None = None
    npoints: int | None = None
    nmatched: int | None = None
    outlier_fraction: float | None = None
    scatter: float | None = None
    candidates: list[CandidateFit] = Field(default_factory=list)
    n_sources: int | None = None
    dry_run: bool = False
    stored: bool = False
    followup_id: int | None = None
    calibration_id: str | None = None
    image_link: str | None = None
    duration_ms: dict[str, float] = Field(default_factory=dict)
    finished_at: datetime = Field(default_factory=utcnow)
    #: what the observer should know about this calibration (e.g. an assumed colour term)
    warnings: list[str] = Field(default_factory=list)
    #: the colour term is an assumed 0, not fitted (too few calibrators with a colour)
    colour_term_assumed: bool = False
    #: the target's colour (in ``colour``, mag) the magnitude was calibrated at: the calibrators' median
    #: unless ``colour_source`` says it was known; mag = m_inst + zeropoint + colour_term * assumed_colour,
    #: so a user who knows better can re-apply the colour term
    assumed_colour: float | None = None
    #: where a known target colour came from ("its APASS counterpart at 0.12 arcsec", "from its own
    #: light curve: APASS B followup 123 from Loiano (-1.2 h)"); None: the calibrators' median
    colour_source: str | None = None
    #: an uploaded frame: how the target was measured on it
    photometry: ImagePhotometry | None = None
    #: an uploaded frame: what was read from its header (field -> keyword, e.g. "mjd": "DATE-OBS+EXPTIME/2")
    from_header: dict[str, str] | None = None
    #: an uploaded frame's filter, airmass, gain and site as its header gives them
    frame: FrameHeader | None = None
    #: an uploaded frame: the cut-out around the target, the aperture and annulus drawn (PNG), beside ``image_link``
    cutout_link: str | None = None
    #: what produced this calibration: input checksum, catalogue versions, code, settings (issue 19)
    provenance: Provenance | None = None


class DeadLetter(BaseModel):
    version: Literal[1] = 1
    upload_id: str | None
    reason: str
    deliveries: int
    subject: str
    payload: str
    dead_at: datetime = Field(default_factory=utcnow)


# --- recalibration (issue 19): a job over stored datapoints, through the work queue ---------------------


class RecalibrationSelection(BaseModel):
    """Which stored datapoints a recalibration takes: every criterion given must hold (an empty one: all).

    ``alerts``: ivorns or names; ``observatories``: observatory ids or names; ``mjd_min``/``mjd_max``
    (MJD UTC, inclusive); ``survey``/``filter``: the datapoint's current band (``filter`` alone: any
    survey's band of that name); ``followup_ids``: these datapoints; ``state``: ``live`` (the default)
    or ``any`` (deleted ones too: they are listed and skipped, never changed).
    """

    model_config = ConfigDict(extra="forbid")

    alerts: list[str] = Field(default_factory=list, max_length=10_000)
    observatories: list[str] = Field(default_factory=list, max_length=1_000)
    mjd_min: float | None = None
    mjd_max: float | None = None
    survey: str | None = None
    filter: str | None = None
    followup_ids: list[int] = Field(default_factory=list, max_length=100_000)
    state: Literal["live", "any"] = "live"


class RecalibrationChange(BaseModel):
    """What a recalibration changes; nothing set: the current code against the current catalogues.

    ``force_filter``: a band or band group as the upload's ``forceFilter`` takes it (``APASS/V``,
    ``GaiaSP/any``), replacing the upload's own; ``""`` removes the upload's own (the automatic choice).
    ``match_dist_arcsec``: the match radius, arcsec. ``catalogue_versions``: survey -> the catalogue
    version to read (``photcal catalog list`` names them), instead of the live one.
    """

    model_config = ConfigDict(extra="forbid")

    force_filter: str | None = None
    match_dist_arcsec: float | None = Field(None, gt=0.0, le=60.0)
    catalogue_versions: dict[str, str] = Field(default_factory=dict)


class RecalibrationRequest(BaseModel):
    """``POST /api/v1/recalibrations`` (administrators): the selection, the change, dry run or apply."""

    model_config = ConfigDict(extra="forbid")

    selection: RecalibrationSelection = Field(default_factory=RecalibrationSelection)
    change: RecalibrationChange = Field(default_factory=RecalibrationChange)
    #: True (the default): compute the diff only; False: compute, then apply what changed
    dry_run: bool = True
    #: why, in a sentence: kept with the job and in every changed point's history
    reason: str = Field("", max_length=500)


class PointCalibration(BaseModel):
    """A datapoint's calibration as a recalibration compares it: band, magnitude or limit, zero point."""

    survey: str | None = None
    filter: str | None = None
    mag: float | None = None
    mag_err: float | None = None
    limit_mag: float | None = None
    detected: bool = True
    zeropoint: float | None = None
    zeropoint_err: float | None = None
    #: the datapoint's version this is (1: as uploaded); null for a new, not yet applied calibration
    version: int | None = None


class RecalibrationTask(BaseModel):
    """``photcal.recalibrate.v1`` (stream RECALIBRATIONS, work queue): one datapoint of one job.

    ``compute``: fit the point's stored sources again with the job's change and record the diff;
    ``apply``: make the computed calibration the datapoint's current one (if it is still the version
    the diff was computed from). Nats-Msg-Id ``<job_id>:<followup_id>:<action>``.
    """

    version: Literal[1] = 1
    job_id: str
    action: Literal["compute", "apply"]
    followup_id: int
    upload_id: str
    change: RecalibrationChange = Field(default_factory=RecalibrationChange)


class RecalibratedEvent(BaseModel):
    """``photcal.recalibrated.v1`` (stream RESULTS): a datapoint's current calibration was replaced.

    One per changed point and job (Nats-Msg-Id ``<job_id>:<followup_id>``); ``old`` is now in the
    point's history, ``new`` is what the light curve serves.
    """

    version: Literal[1] = 1
    job_id: str
    followup_id: int
    upload_id: str
    ivorn: str
    alert_name: str | None = None
    observatory: str | None = None
    mjd: float
    old: PointCalibration
    new: PointCalibration
    reason: str = ""
    recalibrated_at: datetime = Field(default_factory=utcnow)


#: the messages outside programs subscribe to (deploy/README.md, "External subscribers"), by subject;
#: ``GET /api/v1/schemas/<subject>.json`` serves each one's JSON Schema, and each is kept in this stream
PUBLISHED_MESSAGES: dict[str, tuple[type[BaseModel], str]] = {
    SUBJECT_CALIBRATED: (CalibrationResult, STREAM_RESULTS),
    SUBJECT_RECALIBRATED: (RecalibratedEvent, STREAM_RESULTS),
}

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def published_schema(subject: str) -> dict[str, Any]:
    """The JSON Schema (2020-12) of the message published on ``subject``, as it travels: the
    serialization schema of its model (the JSON ``model_dump_json`` writes); KeyError if none is."""
    model, stream = PUBLISHED_MESSAGES[subject]
    schema = model.model_json_schema(mode="serialization")
    header = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"/api/v1/schemas/{subject}.json",
        "title": model.__name__,
        "description": f"{schema.get('description', '').strip()}\n\nNATS subject {subject}, stream {stream}.".strip(),
    }
    return header | {k: v for k, v in schema.items() if k not in header}
