"""The simulator's command line (``python -m tools.simfield``); what it simulates is the package's docstring."""

from __future__ import annotations

import argparse
from pathlib import Path

from tools.photsystem import INSTRUMENT_BANDS
from tools.simfield.field import simulate_field
from tools.simfield.image import Camera
from tools.simfield.sky import SKY_TYPES, SURVEY_SPECS
from tools.simfield.suite import SUITE_KINDS, realistic_suite_specs, suite_specs


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.simfield", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output folder (one field, or the suite's parent)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ra", type=float, default=150.0, help="field centre RA (deg)")
    p.add_argument("--dec", type=float, default=30.0, help="field centre Dec (deg)")
    p.add_argument("--band", default="V", choices=sorted(INSTRUMENT_BANDS), help="instrument band")
    p.add_argument("--name", help="field name (default sim_<seed>_<band>)")
    p.add_argument("--faint", action="store_true", help="transient below the detection limit")
    p.add_argument("--transient-mag", type=float, help="transient m_ref (mag), overrides --faint")
    p.add_argument("--no-image", action="store_true", help="do not keep image.fits")
    p.add_argument("--no-sextractor", action="store_true", help="do not run source-extractor")
    p.add_argument("--suite", type=int, metavar="N", help="write N varied fields under --out")
    p.add_argument(
        "--suite-kind",
        choices=sorted(SUITE_KINDS),
        help="write the realistic development or evaluation set under --out (--suite N: its first N)",
    )
    p.add_argument("--sky", default="legacy", choices=sorted(SKY_TYPES), help="sky type (default legacy)")
    p.add_argument("--density", type=float, help="stars/deg^2 brighter than V 21 (default: the sky type's)")
    p.add_argument("--width", type=int, default=Camera.width, help="frame width (px)")
    p.add_argument("--height", type=int, default=Camera.height, help="frame height (px)")
    p.add_argument("--pixel-scale", type=float, default=Camera.pixel_scale, help="arcsec/px")
    p.add_argument(
        "--surveys",
        type=lambda v: [x for x in v.split(",") if x],
        help=f"comma-separated reference extracts to write (default all: {','.join(SURVEY_SPECS)})",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    common = dict(keep_image=not a.no_image, sextract=not a.no_sextractor, surveys=a.surveys)
    if a.suite_kind:
        for spec in realistic_suite_specs(a.suite_kind, a.suite):
            f = simulate_field(**spec, out=a.out / spec["name"], **common)
            print(f"{spec['name']}: {summary(f.truth)}")
        return 0
    if a.suite:
        for spec in suite_specs(a.suite, a.seed):
            f = simulate_field(**spec, out=a.out / spec["name"], **common)
            print(f"{spec['name']}: {summary(f.truth)}")
        return 0
    camera = Camera(width=a.width, height=a.height, pixel_scale=a.pixel_scale)
    f = simulate_field(
        a.seed,
        a.ra,
        a.dec,
        a.band,
        name=a.name,
        faint=a.faint,
        transient_mag=a.transient_mag,
        out=a.out,
        sky=a.sky,
        density=a.density,
        camera=camera,
        **common,
    )
    print(f"{f.name}: {summary(f.truth)}")
    return 0


def summary(truth: dict) -> str:
    t = truth["transient"]
    best = truth["best"]
    return (
        f"{truth['instrument_band']} -> {best['survey']} {best['band']}, zp {truth['zeropoint']:.3f}, "
        f"ct {truth['colour_term']:+.3f}, transient {t['mag']:.2f} (limit {truth['limit_mag_5sigma']:.2f}, "
        f"{'detectable' if t['detectable'] else 'too faint'}), surveys {','.join(truth['surveys'])}"
    )
