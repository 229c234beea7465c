"""The sky under the stars and its noise: sep's SExtractor background (a mesh, median-filtered)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sep

#: mesh cell (px) and median-filter size (cells): SExtractor's defaults
MESH_PX = 64
FILTER_CELLS = 3


@dataclass(frozen=True)
class Background:
    """``level`` and ``rms``: per-pixel sky (ADU) and its 1-sigma noise (ADU); ``global_rms``: their typical noise."""

    level: np.ndarray
    rms: np.ndarray
    global_level: float
    global_rms: float


def measure_background(data: np.ndarray, mask: np.ndarray | None = None, mesh_px: int = MESH_PX) -> Background:
    """The sky of ``data`` (ADU, 2-D, C-contiguous float32 or float64); ``mask`` True where pixels are bad.

    The mesh shrinks for small frames so there are at least 4 cells a side.
    """
    mesh = max(8, min(mesh_px, min(data.shape) // 4))
    bkg = sep.Background(data, mask=mask, bw=mesh, bh=mesh, fw=FILTER_CELLS, fh=FILTER_CELLS)
    return Background(
        level=bkg.back(), rms=bkg.rms(), global_level=float(bkg.globalback), global_rms=float(bkg.globalrms)
    )
