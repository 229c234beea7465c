"""Diagnostic plot of a frame's calibration (PNG), thread-safe.

Uses matplotlib's object API (:class:`matplotlib.figure.Figure` with the Agg
canvas), never pyplot's global state, so it may run in worker threads.

Cost (issue 8: the plot adds at most 150 ms): most of a render is
matplotlib creating and drawing tick marks and their labels, so each axis
gets at most 5 major ticks and the two residual panels share their y
axis; the PNG is written with fast zlib compression (level 1: a slightly
larger file for a fraction of the encoding time).
"""

from __future__ import annotations

import io
import os
import textwrap
from typing import BinaryIO

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from services.calibrate.core.results import FailedCalibration, FrameCalibration, PlotData

#: tick steps: round numbers only
_STEPS = [1, 2, 5, 10]
_USED = dict(s=9, c="#1f77b4", lw=0, label="used")
_CLIPPED = dict(s=16, marker="x", c="#d62728", lw=1.0, label="clipped")
_BRIGHT = dict(s=16, marker="^", facecolors="none", edgecolors="#ff7f0e", lw=0.8, label="bright end cut")
_UNFITTED = dict(s=12, c="#7f7f7f", lw=0, label="not fitted")
#: a failure's title: the reason, wrapped to the figure's width (characters per line, at most this many lines)
_REASON_WIDTH, _REASON_LINES = 190, 3
#: the figure: 15.5 x 6.6 in at 90 dpi, 1395 x 594 px (issue 21: 990 x 342 was too small to read on a page)
WIDTH_IN, HEIGHT_IN, DPI = 15.5, 6.6, 90
#: the calibration stars' error bars (reference and instrumental, 1 sigma)
_ERRORS = dict(fmt="none", ecolor="#9ab8d8", elinewidth=0.6, capsize=0, zorder=1)


def plot_heading(event: str | None, observatory: str | None, mjd: float | None) -> str:
    """The title's first line: which event, by which observatory, when (MJD, 5 decimals: about a second)."""
    parts = [event or "unknown event", observatory or "unknown observatory"]
    if mjd is not None and np.isfinite(mjd):
        parts.append(f"MJD {mjd:.5f}")
    return " · ".join(parts)


def _three_panels(height: float = HEIGHT_IN):
    """The plot's figure (:data:`WIDTH_IN` wide, ``height`` in) and its three panels, the last two sharing y."""
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI)
    FigureCanvasAgg(fig)
    ax1 = fig.add_subplot(1, 3, 1)
    ax2 = fig.add_subplot(1, 3, 2)
    ax3 = fig.add_subplot(1, 3, 3, sharey=ax2)
    for ax in (ax1, ax2, ax3):
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=_STEPS))
    ax1.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=_STEPS))
    ax2.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=_STEPS))
    return fig, (ax1, ax2, ax3)


def _error_bars(ax, x, y, xerr, yerr, cal: FrameCalibration | FailedCalibration) -> None:
    """1-sigma bars of the stars the fit saw (used and clipped), drawn under their markers."""
    p = cal.plot
    shown = p.used | p.clipped
    if not shown.any():
        return
    xe = None if xerr is None else np.nan_to_num(np.asarray(xerr, dtype=float)[shown], nan=0.0)
    ye = np.nan_to_num(np.asarray(yerr, dtype=float)[shown], nan=0.0)
    ax.errorbar(x[shown], y[shown], xerr=xe, yerr=ye, **_ERRORS)


def _scatter_sets(ax, x: np.ndarray, y: np.ndarray, cal: FrameCalibration | FailedCalibration) -> None:
    p = cal.plot
    unfitted = ~(p.used | p.clipped | p.bright)
    if unfitted.any() and not (p.used.any() or p.clipped.any()):  # a failure without a fit: its stars as they are
        ax.scatter(x[unfitted], y[unfitted], **_UNFITTED)
    if p.used.any():
        ax.scatter(x[p.used], y[p.used], **_USED)
    if p.clipped.any():
        ax.scatter(x[p.clipped], y[p.clipped], **_CLIPPED)
    if p.bright.any():
        ax.scatter(x[p.bright], y[p.bright], **_BRIGHT)


def build_figure(cal: FrameCalibration, heading: str | None = None) -> Figure:
    """The three-panel figure of a calibration; ``heading`` (:func:`plot_heading`: event, observatory, MJD)
    is the title's first line.

    Panel 1: reference magnitude minus ``CT * colour`` against instrumental
    magnitude, with the fitted line ``y = x + ZP``, clipped and bright-cut
    stars marked, and the target (star) or the frame's limit (dashed line,
    arrow). Panel 2: residual against colour. Panel 3: residual against
    reference magnitude.
    """
    p = cal.plot
    fig, (ax1, ax2, ax3) = _three_panels()

    y_corr = p.ref_mag - cal.colour_term * p.colour
    total_err = np.hypot(p.ref_err, p.inst_err)  # a residual's error: both magnitudes'
    _error_bars(ax1, p.inst_mag, y_corr, p.inst_err, p.ref_err, cal)
    _scatter_sets(ax1, p.inst_mag, y_corr, cal)
    xs = [float(np.nanmin(p.inst_mag)), float(np.nanmax(p.inst_mag))] if len(p.inst_mag) else [0.0, 1.0]
    t = cal.target
    shift = cal.zeropoint + cal.colour_term * cal.assumed_colour
    if t.detected and t.inst_mag is not None:
        xs.append(t.inst_mag)
    if t.inst_limit_mag is not None:
        xs.append(t.inst_limit_mag)
    xline = np.array([min(xs) - 0.2, max(xs) + 0.2])
    ax1.plot(xline, xline + cal.zeropoint, "-", c="k", lw=1.0, label="fit")
    if t.detected and t.inst_mag is not None and t.mag is not None:
        ax1.errorbar(
            [t.inst_mag],
            [t.mag - cal.colour_term * cal.assumed_colour],
            yerr=[t.mag_err or 0.0],
            fmt="*",
            ms=12,
            c="#2ca02c",
            label=f"target {t.mag:.2f}",
        )
    if t.inst_limit_mag is not None and t.limit_mag is not None:
        kind = "50% completeness" if t.limit_method == "completeness" else "5σ"
        label = f"{kind} limit {t.limit_mag:.2f}"
        # the line says what it is, in the legend and beside itself
        ax1.axvline(t.inst_limit_mag, ls="--", c="#7f7f7f", lw=0.8, label=label)
        ax1.annotate(
            "",
            xy=(t.inst_limit_mag + 0.4, t.inst_limit_mag + shift - cal.colour_term * cal.assumed_colour),
            xytext=(t.inst_limit_mag, t.inst_limit_mag + shift - cal.colour_term * cal.assumed_colour),
            arrowprops=dict(arrowstyle="->", color="#7f7f7f"),
        )
        ax1.text(
            t.inst_limit_mag,
            0.98,
            f" {label} ",
            transform=ax1.get_xaxis_transform(),
            rotation=90,
            ha="left",
            va="top",
            fontsize=8,
            color="#555555",
        )
    ax1.set_xlabel("instrumental mag")
    ylabel = f"{cal.band} − CT·({cal.colour})" if cal.fit_colour_term else cal.band
    ax1.set_ylabel(f"{cal.survey} {ylabel}")
    ax1.invert_xaxis()
    ax1.invert_yaxis()
    ax1.legend(fontsize=7, loc="lower right")

    _error_bars(ax2, p.colour, p.residual, None, total_err, cal)
    _scatter_sets(ax2, p.colour, p.residual, cal)
    ax2.axhline(0.0, c="k", lw=0.8)
    ax2.set_xlabel(f"{cal.colour} (mag)")
    ax2.set_ylabel("residual (mag)")

    _error_bars(ax3, p.ref_mag, p.residual, p.ref_err, total_err, cal)
    _scatter_sets(ax3, p.ref_mag, p.residual, cal)
    ax3.axhline(0.0, c="k", lw=0.8)
    if len(p.residual):  # shared y axis of the two residual panels
        half = max(5.0 * cal.scatter, 0.1)
        lim = min(float(np.nanmax(np.abs(p.residual))) * 1.05, 8 * half)
        ax2.set_ylim(-max(lim, half), max(lim, half))
    ax3.set_xlabel(f"{cal.survey} {cal.band} (mag)")
    ax3.set_ylabel("residual (mag)")

    ct = f"CT={cal.colour_term:.3f}±{cal.colour_term_err:.3f}" if cal.colour_term_err is not None else "CT fixed 0"
    fit = (
        f"{cal.survey} {cal.band} ({cal.colour}): ZP={cal.zeropoint:.3f}±{cal.zeropoint_err:.3f}  {ct}  "
        f"scatter={cal.scatter:.3f}  N={cal.npoints}/{cal.ncalibrators}"
    )
    fig.suptitle(f"{heading}\n{fit}" if heading else fit, fontsize=11)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.1, top=0.86 if heading else 0.9, wspace=0.22)
    return fig


def failure_title(failed: FailedCalibration, code: str, message: str) -> str:
    """The title of a failed calibration's plot: the refusal's code and reason, then what was fitted."""
    reason = textwrap.wrap(message, _REASON_WIDTH)
    if len(reason) > _REASON_LINES:
        reason = reason[: _REASON_LINES - 1] + [textwrap.shorten(" ".join(reason[_REASON_LINES - 1 :]), _REASON_WIDTH)]
    if failed.fitted:
        ct = (
            f"CT={failed.colour_term:.3f}±{failed.colour_term_err:.3f}"
            if failed.colour_term_err is not None
            else "CT fixed 0"
        )
        fit = (
            f"{failed.survey} {failed.band} ({failed.colour}): "
            f"ZP={failed.zeropoint:.3f}±{failed.zeropoint_err or 0:.3f}"
            f"  {ct}  scatter={failed.scatter or 0:.3f}  N={failed.npoints}/{failed.ncalibrators}"
        )
    else:
        fit = (
            f"{failed.survey} {failed.band} ({failed.colour}): no fit, {failed.ncalibrators} calibration stars "
            f"of {failed.nmatched} matched"
        )
    return "\n".join([f"CALIBRATION FAILED ({code})", *reason, f"best failing candidate: {fit}"])


def build_failure_figure(failed: FailedCalibration, code: str, message: str, heading: str | None = None) -> Figure:
    """The plot of a refused calibration: its best failing candidate's stars (and fit, if it had one).

    Panel 1: reference against instrumental magnitude, with the fitted line
    ``y = x + ZP`` when there is a fit; panels 2 and 3: residuals (about the
    fit, or about the stars' median offset without one) against colour and
    reference magnitude. The title is ``heading`` (event, observatory, MJD), then :func:`failure_title`.
    """
    p: PlotData = failed.plot
    fig, (ax1, ax2, ax3) = _three_panels(height=HEIGHT_IN + 0.4)
    y_corr = p.ref_mag - failed.colour_term * p.colour
    _scatter_sets(ax1, p.inst_mag, y_corr, failed)
    finite = p.inst_mag[np.isfinite(p.inst_mag)]
    if failed.zeropoint is not None and len(finite):
        xline = np.array([float(finite.min()) - 0.2, float(finite.max()) + 0.2])
        ax1.plot(xline, xline + failed.zeropoint, "-", c="k", lw=1.0, label="refused fit")
    ax1.set_xlabel("instrumental mag")
    ylabel = f"{failed.band} − CT·({failed.colour})" if failed.fit_colour_term else failed.band
    ax1.set_ylabel(f"{failed.survey} {ylabel}")
    ax1.invert_xaxis()
    ax1.invert_yaxis()
    ax1.legend(fontsize=7, loc="best")  # a few stars may sit in any corner: the legend keeps off them
    residual_label = "residual (mag)" if failed.fitted else "offset from the median (mag)"
    _scatter_sets(ax2, p.colour, p.residual, failed)
    ax2.axhline(0.0, c="k", lw=0.8)
    ax2.set_xlabel(f"{failed.colour} (mag)")
    ax2.set_ylabel(residual_label)
    _scatter_sets(ax3, p.ref_mag, p.residual, failed)
    ax3.axhline(0.0, c="k", lw=0.8)
    ax3.set_xlabel(f"{failed.survey} {failed.band} (mag)")
    ax3.set_ylabel(residual_label)
    title = failure_title(failed, code, message)
    fig.suptitle(f"{heading}\n{title}" if heading else title, fontsize=10, color="#b00020")
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.1, top=0.76 if heading else 0.79, wspace=0.22)
    return fig


def render_failure_plot(failed: FailedCalibration, code: str, message: str, heading: str | None = None) -> bytes:
    """The PNG of :func:`build_failure_figure`."""
    buf = io.BytesIO()
    build_failure_figure(failed, code, message, heading).savefig(buf, format="png", pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def render_plot(
    cal: FrameCalibration,
    path_or_buffer: str | os.PathLike | BinaryIO | None = None,
    *,
    heading: str | None = None,
) -> bytes | None:
    """Render the calibration plot as PNG.

    Parameters
    ----------
    cal : FrameCalibration
    path_or_buffer : path or binary file object, optional
        Where to write the PNG; if None the PNG bytes are returned.
    heading : str, optional
        The title's first line (:func:`plot_heading`: event, observatory, MJD).

    Returns
    -------
    bytes or None
        The PNG if ``path_or_buffer`` is None, else None.
    """
    fig = build_figure(cal, heading)
    pil_kwargs = {"compress_level": 1}
    if path_or_buffer is None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", pil_kwargs=pil_kwargs)
        return buf.getvalue()
    fig.savefig(path_or_buffer, format="png", pil_kwargs=pil_kwargs)
    return None
