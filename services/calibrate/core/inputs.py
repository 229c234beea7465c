"""What the core reads: columns of numbers, whatever container carries them.

The calibrate service hands in the wire models (``shared.arrays.SourceTable``,
``shared.contracts.messages.SurveyStars``); a bench, a notebook or a test may hand in any
object with the same attributes. The core only reads these arrays and never
imports the message contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class SourceColumns(Protocol):
    """The observer's sources, one entry per catalogue row.

    ``ra``, ``dec`` in deg (ICRS/J2000); ``mag``, ``mag_err`` instrumental,
    mag (NaN where unusable); ``flags`` SExtractor's FLAGS (0 when none).
    """

    # read-only members: a plain attribute in a Protocol is settable, so mypy would demand the
    # exact declared type; properties accept the pydantic models' fields as they are
    @property
    def ra(self) -> np.ndarray: ...
    @property
    def dec(self) -> np.ndarray: ...
    @property
    def mag(self) -> np.ndarray: ...
    @property
    def mag_err(self) -> np.ndarray: ...
    @property
    def flags(self) -> np.ndarray: ...

    def __len__(self) -> int: ...


class ReferenceStars(Protocol):
    """One survey's stars in the field: positions (deg) and, per band name, magnitude and error.

    Magnitudes and errors in mag, NaN where missing.
    """

    # read-only, so that a ``dict[str, ndarray]`` field satisfies ``Mapping`` (see SourceColumns)
    @property
    def survey(self) -> str: ...
    @property
    def ra(self) -> np.ndarray: ...
    @property
    def dec(self) -> np.ndarray: ...
    @property
    def mags(self) -> Mapping[str, np.ndarray]: ...
    @property
    def errs(self) -> Mapping[str, np.ndarray]: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class ForcedAperture:
    """The target measured on the frame itself: an aperture at the alert's position (instrumental).

    ``inst_mag``, ``inst_mag_err`` (mag, ``-2.5 log10(ADU)`` on the scale of the frame's sources)
    when ``snr >= snr_limit``, else None; ``inst_limit`` (mag) the ``snr_limit``-sigma flux from
    the local noise at that position.
    """

    inst_mag: float | None
    inst_mag_err: float | None
    inst_limit: float
    snr: float
    snr_limit: float

    @property
    def detected(self) -> bool:
        return self.inst_mag is not None


@dataclass(frozen=True)
class NearbyDetection:
    """One of the alert's other calibrated detections near this frame in time (from its light curve).

    ``survey``, ``band`` as stored (``"APASS"``, ``"B"``); ``mag``, ``mag_err`` calibrated, mag;
    ``dt_days`` its MJD minus this frame's, days; ``label`` names it in the answer
    (``"followup 1234 from Loiano"``).
    """

    survey: str
    band: str
    mag: float
    mag_err: float
    dt_days: float
    label: str
