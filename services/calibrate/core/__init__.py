"""Photometric calibration core: pure science, no NATS, HTTP or database.

Public API::

    calibrate_frame(sources, references, target_ra, target_dec,
                    match_radius_arcsec, force_filter=None, settings=None)
        -> FrameCalibration

Modules: :mod:`matching` (grid cross-match on the sphere), :mod:`calibrators`
(which stars may calibrate), :mod:`fitting` (robust ZP / colour-term fit),
:mod:`choice` (best survey/band), :mod:`target` (the transient's magnitude),
:mod:`limits` (the frame's limiting magnitude), :mod:`footprint` (where the
frame is, and whether the alert is in it), :mod:`crowding` (blends),
:mod:`api` (the one call), :mod:`inputs` (what it reads: plain columns),
:mod:`results` (what it returns: dataclasses), :mod:`settings`
(FitSettings). Inner loops are compiled with numba (``shared/jit.py``);
the service compiles them at start-up (``services.calibrate.warmup``).
The sphere geometry is :mod:`shared.sky`.
"""

from services.calibrate.core.api import calibrate_frame
from services.calibrate.core.fitting import FitResult, InsufficientData, fit_zeropoint
from services.calibrate.core.matching import MatchResult, match_to_reference
from services.calibrate.core.results import (
    FrameCalibration,
    PlotData,
    TargetMeasurement,
)
from services.calibrate.core.settings import FitSettings

__all__ = [
    "FitResult",
    "FitSettings",
    "FrameCalibration",
    "InsufficientData",
    "MatchResult",
    "PlotData",
    "TargetMeasurement",
    "calibrate_frame",
    "fit_zeropoint",
    "match_to_reference",
]
