"""Synthetic CCD fields with known truth, to prove the calibration accuracy.

One call of :func:`simulate_field` draws a star field around (ra, dec), renders
a CCD image of it through one of the instrument bands of
:mod:`tools.photsystem`, runs the real ``source-extractor`` on it (four
catalogue formats) and writes VizieR-style reference extracts plus a
``truth.json``. Everything is reproducible from the seed.

Conventions (all magnitudes in mag, fluxes in ADU unless said otherwise):

* ``m_ref`` - magnitude in the instrument band's *true best* survey band;
* ``colour`` - that survey band's colour (e.g. APASS ``B-V``);
* ``m_sys = m_ref - colour_term * colour`` - the instrument's own system;
* ``m_inst = m_sys - zeropoint = -2.5 log10(total flux in ADU)`` - what
  SExtractor reports as ``MAG_AUTO`` with ``MAG_ZEROPOINT 0`` (up to the Kron
  aperture's flux loss, a few hundredths).

Hence the calibration a server should recover is
``m_ref = m_inst + zeropoint + colour_term * colour``.

Pixel coordinates written out (``x_image``, ``y_image``) follow the FITS /
SExtractor convention: the centre of the first pixel is (1, 1).

CLI::

    python -m tools.simfield --out DIR --seed N --ra R --dec D --band V
    python -m tools.simfield --suite N --out DIR
    python -m tools.simfield --suite-kind dev --out DIR   # or eval, eval2: the realistic sets
    python -m tools.simfield --out DIR --seed N --ra R --dec D --band i --sky dense --width 1500 --pixel-scale 0.8

Sky types (:data:`SKY_TYPES`): ``legacy`` (the default, the committed
fields), ``sparse`` (high latitude) and ``dense`` (Galactic plane, 50k-200k
stars/deg^2 to V 21), the realistic ones with blended reference photometry
and DR3-like Gaia BP/RP gaps.

Modules: :mod:`~tools.simfield.sky` (counts, sky types, reference extracts),
:mod:`~tools.simfield.image` (camera, PSF, rendered image),
:mod:`~tools.simfield.sextractor` (the real SExtractor run and its match to
the truth), :mod:`~tools.simfield.field` (one field simulated and written),
:mod:`~tools.simfield.suite` (the suites of fields), :mod:`~tools.simfield.cli`.
"""

from __future__ import annotations

from tools.simfield.cli import (
    main,
    parse_args,
    summary,
)
from tools.simfield.field import (
    SCHEMA,
    SimulatedField,
    add_sky_truth,
    build_objects,
    build_truth,
    cli_command,
    draw_observation,
    make_transient,
    place_transient,
    saturated_stars,
    simulate_field,
    write_field,
    write_objects,
)
from tools.simfield.image import (
    Camera,
    Observation,
    add_photometry,
    add_stamp,
    expose,
    extract_radius,
    galaxy_stamp,
    image_header,
    limiting_magnitude,
    make_wcs,
    moffat_stamp,
    render_objects,
    render_points,
    saturation_magnitude,
    sky_electrons,
    subpixel,
    zeropoint,
)
from tools.simfield.sextractor import (
    BIG_FRAME_MEMORY,
    CATALOGUES,
    SEXTRACTOR_DIR,
    measure_catalogue,
    nearest,
    round_or_none,
    run_sextractor,
    sextractor_version,
)
from tools.simfield.sky import (
    COUNT_SLOPE,
    DENSITY_DEPTH_V,
    GAIA_XP_DEPTH,
    LEGACY_SURVEYS,
    REAL_BLENDS,
    REALISM_VERSION,
    SDSS_DEC_MIN,
    SKY_TYPES,
    SURVEY_SPECS,
    V_RANGE,
    SkyType,
    SurveySpec,
    blend_pairs,
    blended_magnitudes,
    brightest_of_blends,
    covers,
    draw_galaxies,
    draw_magnitudes,
    draw_stars,
    gaia_missing_bp_rp,
    get_sky_type,
    n17_density,
    n17_for_density,
    published_band,
    realistic_extracts,
    reference_extract,
    stellar_density,
)
from tools.simfield.suite import (
    DENSE_MAX_ARCMIN,
    FRAME_ARCMIN,
    SUITE_KINDS,
    SUITE_SKIES,
    frame_camera,
    realistic_suite_specs,
    sky_position,
    suite_specs,
)

__all__ = [
    "SDSS_DEC_MIN",
    "V_RANGE",
    "COUNT_SLOPE",
    "SurveySpec",
    "SURVEY_SPECS",
    "LEGACY_SURVEYS",
    "REALISM_VERSION",
    "DENSITY_DEPTH_V",
    "SkyType",
    "GAIA_XP_DEPTH",
    "REAL_BLENDS",
    "SKY_TYPES",
    "get_sky_type",
    "stellar_density",
    "draw_magnitudes",
    "n17_for_density",
    "draw_stars",
    "draw_galaxies",
    "covers",
    "published_band",
    "reference_extract",
    "blend_pairs",
    "blended_magnitudes",
    "brightest_of_blends",
    "gaia_missing_bp_rp",
    "realistic_extracts",
    "n17_density",
    "Camera",
    "Observation",
    "make_wcs",
    "extract_radius",
    "zeropoint",
    "add_photometry",
    "limiting_magnitude",
    "sky_electrons",
    "moffat_stamp",
    "galaxy_stamp",
    "subpixel",
    "add_stamp",
    "render_points",
    "render_objects",
    "expose",
    "image_header",
    "saturation_magnitude",
    "SEXTRACTOR_DIR",
    "CATALOGUES",
    "BIG_FRAME_MEMORY",
    "run_sextractor",
    "sextractor_version",
    "measure_catalogue",
    "round_or_none",
    "nearest",
    "SCHEMA",
    "SimulatedField",
    "place_transient",
    "draw_observation",
    "make_transient",
    "saturated_stars",
    "build_objects",
    "build_truth",
    "simulate_field",
    "add_sky_truth",
    "cli_command",
    "write_field",
    "write_objects",
    "SUITE_KINDS",
    "SUITE_SKIES",
    "FRAME_ARCMIN",
    "DENSE_MAX_ARCMIN",
    "sky_position",
    "frame_camera",
    "realistic_suite_specs",
    "suite_specs",
    "parse_args",
    "main",
    "summary",
]
