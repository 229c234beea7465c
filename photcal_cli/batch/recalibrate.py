"""Re-calibrating stored uploads against a survey's (new) catalogue, at scale.

``photcal recalibrate --survey S`` (photcal_cli/recalibrate.py) runs this:

1. every stored upload's parsed sources (collection ``upload_sources``,
   written by the calibrate service for each non-dry-run upload) become one
   lsdb catalogue (``lsdb.from_dataframe``, positions only plus two ids);
2. it is cross-matched with the survey's HATS catalogue (the live local
   version or the attached remote one) by lsdb on Dask: only the partitions
   of the reference catalogue that overlap the uploads are read, pixel pair
   by pixel pair, nearest reference star within the largest match radius;
3. each upload's matched reference stars are fitted again with the
   calibration core (``services.calibrate.core.calibrate_frame``) - the same
   science as a live upload, restricted to that survey - as Dask tasks too,
   and answered with the live upload's fields and rounding
   (:func:`services.calibrate.answer.calibration_answer`);
4. the caller writes one ``recalibrations`` record per upload and survey
   release; the original calibration and datapoint are left as they were.

A batch job, not part of a service: it stands above the catalogue's layout
(``services.catalog.layout``) and the calibration core at once, and services
import no other service (:mod:`photcal_cli.batch`).

Dask runs on the local threaded scheduler unless a scheduler address is
given (``PHOTCAL_DASK_SCHEDULER``, e.g. ``tcp://dask-scheduler:8786``); the
cluster's workers must be able to read the catalogue (a shared path or URL).

Partition boundaries: every local version has a margin catalogue (the stars
within 10" of each partition's edges, ``loader._write_margin``), which lsdb
uses so that a source near a boundary finds its nearest star on the other
side. An attached (external) catalogue is used without one, and so is a
local one when an upload's match radius exceeds the margin's 10": a source
within the radius of a boundary can then miss its reference star when the
nearest one lies in the neighbouring partition (lsdb warns about this). The
fit loses that star, nothing else.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from services.catalog import layout
from services.catalog.layout import Columns
from shared.arrays import SourceTable
from shared.bands import ForcedBand, parse_force_filter
from shared.contracts.messages import SurveyStars
from shared.contracts.surveys import get_survey
from shared.errors import PhotcalError

_RA, _DEC, _UPLOAD, _ROW = "_src_ra", "_src_dec", "_src_upload", "_src_row"


@dataclass
class StoredUpload:
    """One stored upload as ``upload_sources`` keeps it."""

    upload_id: str
    alert_ra: float
    alert_dec: float
    match_dist_arcsec: float
    sources: SourceTable
    force_filter: str | None = None
    ivorn: str = ""
    mjd: float | None = None

    @classmethod
    def from_doc(cls, doc: dict) -> StoredUpload:
        return cls(
            upload_id=str(doc.get("upload_id") or doc["_id"]),
            alert_ra=float(doc["alert_ra"]),
            alert_dec=float(doc["alert_dec"]),
            match_dist_arcsec=float(doc.get("match_dist_arcsec") or 2.0),
            sources=SourceTable.model_validate(doc["sources"]),
            force_filter=doc.get("force_filter"),
            ivorn=doc.get("ivorn", ""),
            mjd=doc.get("mjd"),
        )


#: the fields of a refit's result (all present in a stored record, None when the fit failed)
RESULT_KEYS = (
    "filter",
    "colour",
    "zeropoint",
    "zeropoint_err",
    "colour_term",
    "colour_term_err",
    "scatter",
    "npoints",
    "nmatched",
    "outlier_fraction",
    "detected",
    "mag",
    "mag_err",
    "ra",
    "dec",
    "limit_mag",
    "candidates",
)


@dataclass
class Refit:
    """The outcome for one upload: a new calibration, or why there is none."""

    upload_id: str
    survey: str
    ok: bool
    nref: int = 0
    result: dict = field(default_factory=dict)
    error: str | None = None
    message: str | None = None


@contextmanager
def dask_client(scheduler: str | None):
    """A distributed Client on ``scheduler`` (the default for dask.compute meanwhile), or nothing (local)."""
    if not scheduler:
        yield None
        return
    from dask.distributed import Client

    client = Client(scheduler, timeout=30)
    try:
        yield client
    finally:
        client.close()


def crossmatch(
    uploads: list[StoredUpload], catalogue: str, columns: Columns, radius_arcsec: float
) -> dict[int, pd.DataFrame]:
    """Nearest reference star (within ``radius_arcsec``) of every source, per upload index.

    Returns {upload index: DataFrame of the matched reference rows (ra, dec, mag and
    error columns under the catalogue's names)}, unique per reference star.
    """
    import lsdb

    frames = []
    for i, up in enumerate(uploads):
        ra = np.asarray(up.sources.ra, dtype=np.float64)
        dec = np.asarray(up.sources.dec, dtype=np.float64)
        ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
        frames.append(
            pd.DataFrame(
                {
                    _UPLOAD: np.full(int(ok.sum()), i, dtype=np.int32),
                    _ROW: np.flatnonzero(ok).astype(np.int32),
                    _RA: np.mod(ra[ok], 360.0),
                    _DEC: dec[ok],
                }
            )
        )
    sources = pd.concat(frames, ignore_index=True)
    if sources.empty:
        return {}
    left = lsdb.from_dataframe(
        sources,
        ra_column=_RA,
        dec_column=_DEC,
        margin_threshold=None,
        should_generate_moc=False,
        partition_rows=200_000,
    )
    right = lsdb.read_hats(catalogue)
    wanted = [columns.ra, columns.dec, *columns.value_columns]
    present = [c for c in dict.fromkeys(wanted) if c in right.columns]
    margin = _margin_of(catalogue, radius_arcsec)
    right = lsdb.read_hats(catalogue, columns=present, margin_cache=margin)
    assert isinstance(right, lsdb.Catalog)  # the store attaches object/source catalogues only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no margin cache" for an attached catalogue: see the module docstring
        matched = left.crossmatch(
            right,
            n_neighbors=1,
            radius_arcsec=float(radius_arcsec),
            suffixes=("", ""),
            suffix_method="overlapping_columns",
        )
        table = matched.compute()
    frame = pd.DataFrame(table).reset_index(drop=True)
    out: dict[int, pd.DataFrame] = {}
    for upload_index, rows in frame.groupby(_UPLOAD, sort=False):
        refs = rows[present].drop_duplicates(subset=[columns.ra, columns.dec])
        # pandas-stubs type a group key as any scalar; _UPLOAD is the integer column written above
        out[int(cast(int, upload_index))] = refs.reset_index(drop=True)
    return out


def _margin_of(catalogue: str, radius_arcsec: float) -> str | None:
    """The margin catalogue written with a local version (loader.py), if it covers the radius."""
    margin = Path(catalogue) / layout.MARGIN_NAME
    if radius_arcsec <= layout.MARGIN_ARCSEC and (margin / "hats.properties").is_file():
        return str(margin)
    return None


def _stars(survey: str, refs: pd.DataFrame | None, columns: Columns) -> SurveyStars:
    n = 0 if refs is None else len(refs)

    def col(name: str) -> np.ndarray:
        if refs is None or name not in refs:
            return np.full(n, np.nan)
        return pd.to_numeric(refs[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)

    return SurveyStars(
        survey=survey,
        ra=col(columns.ra),
        dec=col(columns.dec),
        mags={band: col(m) for band, (m, _) in columns.bands.items()},
        errs={band: col(e) for band, (_, e) in columns.bands.items()},
    )


def forced_within(force_filter: str | None, survey: str) -> ForcedBand | None:
    """The observer's forceFilter restricted to ``survey``: it holds within that survey, not across.

    None when it names another survey (or none); BadInput for a text no longer valid.
    """
    forced = parse_force_filter(force_filter)
    if forced is None or survey.lower() not in (s.lower() for s in forced.surveys):
        return None
    bands = [(s, b) for s, b in forced.bands if s.lower() == survey.lower()]
    return replace(forced, bands=bands)


def refit(up: StoredUpload, survey: str, stars: SurveyStars) -> Refit:
    """Fit one upload against ``survey``'s matched stars (the calibration core, as for a live upload)."""
    from services.calibrate.answer import calibration_answer
    from services.calibrate.core.api import calibrate_frame

    try:
        force = forced_within(up.force_filter, survey)
        cal = calibrate_frame(up.sources, {survey: stars}, up.alert_ra, up.alert_dec, up.match_dist_arcsec, force)
    except PhotcalError as exc:
        return Refit(up.upload_id, survey, ok=False, nref=len(stars), error=exc.code, message=exc.message)
    answer = calibration_answer(cal, up.match_dist_arcsec, upload_id=up.upload_id, ivorn=up.ivorn)
    result = answer.model_dump(mode="json", include={"survey", *RESULT_KEYS})
    return Refit(up.upload_id, survey, ok=True, nref=len(stars), result=result)


def recalibrate(
    uploads: list[StoredUpload],
    survey: str,
    catalogue: str,
    columns: Columns,
    scheduler: str | None = None,
) -> list[Refit]:
    """Cross-match every upload with ``catalogue`` and fit each again; one Refit per upload, in order."""
    import dask

    name = get_survey(survey).name
    if not uploads:
        return []
    radius = max(up.match_dist_arcsec for up in uploads if math.isfinite(up.match_dist_arcsec))
    with dask_client(scheduler):
        matched = crossmatch(uploads, catalogue, columns, radius)
        tasks = [dask.delayed(refit)(up, name, _stars(name, matched.get(i), columns)) for i, up in enumerate(uploads)]
        return list(dask.compute(*tasks))
