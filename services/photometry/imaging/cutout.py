"""A cut-out of the frame around the target: a small PNG with the forced aperture and its annulus drawn.

Pure: a sky-subtracted array and pixel positions in, PNG bytes out. It takes
no other imaging module's types (an aperture is three floats here), so that
the photometry service can call it with whatever it measured.

The stretch is asinh around the cut-out's own noise: ``asinh(pixel / (3
sigma))`` with ``sigma`` the robust (1.4826 MAD) scatter of the cut-out,
clipped at the 99.5th percentile, so a faint target is visible beside a
bright neighbour and the sky looks the same on every frame.
"""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle

#: the cut-out's half-width, in units of the annulus's outer radius (some sky beyond the annulus)
HALF_WIDTH_ANNULI = 1.3
#: asinh softening, in sigma of the cut-out's sky
ASINH_SIGMA = 3.0


def _stretch(pixels: np.ndarray) -> np.ndarray:
    """asinh stretch to [0, 1]; NaN (off-frame) pixels stay NaN."""
    finite = pixels[np.isfinite(pixels)]
    if finite.size == 0:
        return np.full(pixels.shape, np.nan)
    median = float(np.median(finite))
    sigma = 1.4826 * float(np.median(np.abs(finite - median)))
    if not sigma > 0:
        sigma = float(np.std(finite)) or 1.0
    scaled = np.arcsinh((pixels - median) / (ASINH_SIGMA * sigma))
    lo = 0.0
    hi = float(np.nanpercentile(scaled, 99.5))
    if not hi > lo:
        hi = lo + 1.0
    return np.clip((scaled - lo) / (hi - lo), 0.0, 1.0)


def render_cutout(
    data_sub: np.ndarray,
    x: float,
    y: float,
    radius_px: float,
    annulus: tuple[float, float],
    title: str,
    size_px: int = 64,
) -> bytes:
    """The PNG cut-out of ``data_sub`` centred on (``x``, ``y``).

    Parameters
    ----------
    data_sub : numpy.ndarray
        The sky-subtracted 2-D frame (ADU; NaN allowed).
    x, y : float
        The target's position, px, 0-based (numpy's column and row; pixel
        centres at integers).
    radius_px : float
        The aperture's radius, px.
    annulus : (float, float)
        The background annulus's inner and outer radii, px.
    title : str
        Printed above the image (the target's name, band, magnitude).
    size_px : int
        Width and height of the PNG's image area, px; the PNG is that wide
        and a title line taller.

    Raises
    ------
    ValueError
        The array is not 2-D or empty, the radii are not positive and
        increasing, ``size_px`` is below 16, or (x, y) is off the frame.
    """
    if data_sub.ndim != 2 or data_sub.size == 0:
        raise ValueError(f"the cut-out needs a 2-D image, got shape {data_sub.shape}")
    inner, outer = (float(a) for a in annulus)
    if not (radius_px > 0 and inner >= radius_px and outer > inner):
        raise ValueError(
            f"aperture radius {radius_px:g} and annulus ({inner:g}, {outer:g}) px must be positive "
            "and increasing (radius <= inner < outer)"
        )
    if size_px < 16:
        raise ValueError(f"size_px {size_px} is too small for a cut-out: give at least 16")
    height, width = data_sub.shape
    if not (math.isfinite(x) and math.isfinite(y) and -0.5 <= x < width - 0.5 and -0.5 <= y < height - 0.5):
        raise ValueError(f"the target ({x:.1f}, {y:.1f}) px is off the {width} x {height} frame: no cut-out")

    # the view is centred on the target itself (not its pixel); the pixels read are one wider each
    # side so the view is always covered; what falls off the frame is NaN
    half = max(int(math.ceil(HALF_WIDTH_ANNULI * outer)), 4)
    cx, cy = int(round(x)), int(round(y))
    window = np.full((2 * half + 3, 2 * half + 3), np.nan)
    half += 1
    x0, y0 = cx - half, cy - half
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + window.shape[1], width), min(y0 + window.shape[0], height)
    window[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = data_sub[iy0:iy1, ix0:ix1]
    shown = _stretch(window)

    dpi = 100.0
    # the title line grows with the image, so a slide-sized cut-out is readable
    title_px = max(12, round(size_px * 0.07))
    fig = Figure(figsize=(size_px / dpi, (size_px + title_px) / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, size_px / (size_px + title_px)))
    ax.set_axis_off()
    # off-frame pixels: a hatched grey, so the frame's edge is visible, not mistaken for empty sky
    ax.add_patch(
        Rectangle((x0 - 0.5, y0 - 0.5), window.shape[1], window.shape[0], facecolor="0.35", hatch="//", zorder=0)
    )
    ax.imshow(
        shown,
        origin="lower",
        cmap="gray",
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
        extent=(x0 - 0.5, x0 + window.shape[1] - 0.5, y0 - 0.5, y0 + window.shape[0] - 0.5),
        zorder=1,
    )
    for r, colour, style in ((radius_px, "#ff4040", "-"), (inner, "#40c0ff", "--"), (outer, "#40c0ff", "--")):
        ax.add_patch(
            Circle(
                (x, y), r, fill=False, edgecolor=colour, linestyle=style, linewidth=max(0.8, size_px / 256), zorder=2
            )
        )
    view = half - 0.5
    ax.set_xlim(x - view, x + view)
    ax.set_ylim(y - view, y + view)
    fig.text(
        0.5,
        1.0 - 0.5 * title_px / (size_px + title_px),
        title,
        ha="center",
        va="center",
        fontsize=0.5 * title_px * 72.0 / dpi,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


__all__ = ["render_cutout"]
