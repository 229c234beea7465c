"""The calibration plot a page shows (issue 21): large enough to read, titled with the event, observatory and
MJD, error bars on the calibration stars, the limit line labelled. Rendered images go to the artefacts."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.collections import LineCollection
from PIL import Image

from services.calibrate.core import FitSettings, calibrate_frame
from services.calibrate.plot import build_figure, plot_heading, render_plot
from tests.conftest import ARTIFACTS
from tools.datasets import make_field


def _calibrate(fld, **kw):
    return calibrate_frame(fld.sources, dict(fld.references), fld.target_ra, fld.target_dec, 2.0, **kw)


def test_the_plot_is_large_and_titled_with_event_observatory_and_mjd():
    cal = _calibrate(make_field(np.random.default_rng(68), n_outliers=8))
    heading = plot_heading("Gaia23sim", "Ondrejov", 60100.123456)
    assert heading == "Gaia23sim · Ondrejov · MJD 60100.12346"
    png = render_plot(cal, heading=heading)
    assert png is not None
    width, height = Image.open(io.BytesIO(png)).size
    assert width >= 1390 and height >= 590, (width, height)  # was 990 x 342
    fig = build_figure(cal, heading)
    title = fig.get_suptitle()
    assert title.startswith(heading + "\n") and f"ZP={cal.zeropoint:.3f}" in title
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "calibration_plot_detection.png").write_bytes(png)


def test_calibration_stars_have_error_bars_in_every_panel():
    cal = _calibrate(make_field(np.random.default_rng(69)))
    fig = build_figure(cal, "E · O · MJD 1")
    n_fitted = int((cal.plot.used | cal.plot.clipped).sum())
    for ax in fig.axes:
        bars = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert bars, ax.get_xlabel()
        assert max(len(b.get_segments()) for b in bars) >= n_fitted


def test_the_limit_line_is_labelled_beside_itself_and_in_the_legend():
    rng = np.random.default_rng(70)
    cal = _calibrate(make_field(rng, target_v=None), settings=FitSettings(min_colour_spread=5.0))
    assert not cal.target.detected and cal.target.limit_mag is not None
    fig = build_figure(cal, "E · O · MJD 1")
    ax = fig.axes[0]
    label = f"limit {cal.target.limit_mag:.2f}"
    assert any(label in t.get_text() for t in ax.texts), [t.get_text() for t in ax.texts]
    legend = ax.get_legend()
    assert legend is not None and any(label in t.get_text() for t in legend.get_texts())
    png = render_plot(cal, heading="E · O · MJD 1")
    assert png is not None
    (ARTIFACTS / "calibration_plot_limit.png").write_bytes(png)
