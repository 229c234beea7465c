"""Wall-clock figures of the hot paths the unit tests once timed with asserts.

Timing asserts in unit tests fail on a loaded machine and pass on a fast one
whatever the code does; the figures live here instead, printed beside their
targets (``python -m bench kernels``):

* ``calibrate_frame``: ~2,000 sources against 8 survey-bands (APASS 5 +
  Gaia 3), one match per survey. Design goal < 5 ms (best of 15).
* ``render_plot``: the calibration plot of a non-detection with a
  zero-point-only fit. Target < 2 s.
* ``parse_catalogue``: a 20,000-row and a 200,000-row SExtractor ASCII
  catalogue. Targets < 0.1 s and < 0.8 s.

Times in ms (wall clock, ``time.perf_counter``), each after one warm-up call
so that no figure includes numba's compilation or the first import.
"""

from __future__ import annotations

import time

import numpy as np

from services.calibrate.core import FitSettings, calibrate_frame
from services.calibrate.plot import render_plot
from services.ingest.parsing import parse_catalogue
from tools.datasets import gaia_from_apass, make_field


def best_ms(call, repeat: int) -> float:
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times) * 1e3


def calibration_frame_ms() -> float:
    rng = np.random.default_rng(67)
    fld = make_field(rng, n_stars=2600, inst_limit=18.5, v_range=(10.5, 20.0), half_size_deg=0.15)
    refs = dict(fld.references)
    refs["GAIA"] = gaia_from_apass(rng, refs["APASS"])
    return best_ms(lambda: calibrate_frame(fld.sources, refs, fld.target_ra, fld.target_dec, 2.0), 15)


def plot_ms() -> float:
    rng = np.random.default_rng(68)
    make_field(rng, n_outliers=8, sat_counts=2e5)  # the unit test's first field: same draws for the second
    fld = make_field(rng, target_v=None)
    cal = calibrate_frame(
        fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, settings=FitSettings(min_colour_spread=5.0)
    )
    return best_ms(lambda: render_plot(cal), 3)


def sextractor_ascii(n_rows: int, repeat: int) -> bytes:
    rng = np.random.default_rng(1)
    n = n_rows // repeat
    cols = {
        "NUMBER": np.arange(n),
        "MAG_AUTO": rng.uniform(-15, -5, n).round(4),
        "MAGERR_AUTO": rng.uniform(0, 0.5, n).round(4),
        "MAG_APER": rng.uniform(-15, -5, n).round(4),
        "ALPHA_J2000": rng.uniform(0, 360, n).round(7),
        "DELTA_J2000": rng.uniform(-90, 90, n).round(7),
        "FLAGS": rng.integers(0, 4, n),
    }
    head = "".join(f"#{i + 1:4d} {k}\n" for i, k in enumerate(cols)).encode()
    body = "\n".join(" ".join(f"{v:.7f}" for v in row) for row in np.column_stack(list(cols.values()))).encode()
    return head + (body + b"\n") * repeat


def main() -> None:
    print(f"{'hot path':<44} {'ms':>8}  target")
    print(f"{'calibrate_frame, 2,000 sources x 8 bands':<44} {calibration_frame_ms():>8.2f}  < 5 ms", flush=True)
    print(f"{'render_plot, non-detection, ZP-only fit':<44} {plot_ms():>8.1f}  < 2000 ms", flush=True)
    for rows, repeat, target in ((20_000, 1, "< 100 ms"), (200_000, 10, "< 800 ms")):
        data = sextractor_ascii(rows, repeat)
        print(
            f"{f'parse_catalogue, {rows:,} rows':<44} {best_ms(lambda d=data: parse_catalogue(d), 3):>8.1f}  {target}",
            flush=True,
        )


if __name__ == "__main__":
    main()
