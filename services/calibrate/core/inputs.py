"""What the core reads: columns of numbers, whatever container carries them.

The calibrate service hands in the wire models (``shared.arrays.SourceTable``,
``shared.contracts.messages.SurveyStars``); a bench, a notebook or a test may hand in any
object with the same attributes. The core only reads these arrays and never
imports the message contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np


class SourceColumns(Protocol):
    """The observer's sources, one entry per catalogue row.

    ``ra``, ``dec`` in deg (ICRS/J2000); ``mag``, ``mag_err`` instrumental,
    mag (NaN where unusable); ``flags`` SExtractor's FLAGS (0 when none).
    """

    ra: np.ndarray
    dec: np.ndarray
    mag: np.ndarray
    mag_err: np.ndarray
    flags: np.ndarray

    def __len__(self) -> int: ...


class ReferenceStars(Protocol):
    """One survey's stars in the field: positions (deg) and, per band name, magnitude and error (mag, NaN if missing)."""

    survey: str
    ra: np.ndarray
    dec: np.ndarray
    mags: Mapping[str, np.ndarray]
    errs: Mapping[str, np.ndarray]

    def __len__(self) -> int: ...
