"""Photometry of a FITS frame on the server: a pure library, arrays in, results out.

One concept per module: :mod:`.background` (the sky and its noise),
:mod:`.extract` (detection, flags, the frame's FWHM), :mod:`.aperture` (the
same circular aperture for every source), :mod:`.forced` (that aperture at
the alert's position: a magnitude or a limit from the local noise),
:mod:`.wcscheck` (does the WCS put the stars on the reference stars),
:mod:`.frame` (all of it for one frame: :func:`~.frame.photometer_frame`),
:mod:`.astrometry` (plate solving a frame without a WCS).

Pixel coordinates are sep's: 0-based, the centre of the first pixel at 0.
Fluxes in ADU (the frame's units), gains in e-/ADU, magnitudes instrumental
``-2.5 log10(flux)``.
"""
