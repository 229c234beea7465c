"""The reference surveys: their VizieR column names, bands and colours.

One place for what the catalogue loader (column mapping), the catalogue
service (what a cone answers) and the calibration (which colour goes with
which band) must agree on. Column names are VizieR's, as in docs/design.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: a magnitude system: Vega-relative, or AB (flux density relative to 3631 Jy)
MagnitudeSystem = Literal["Vega", "AB"]


@dataclass(frozen=True)
class Band:
    """One band of a survey.

    ``column``/``error_column`` are the VizieR names; ``colour`` is the pair
    of bands (blue, red) whose difference is the colour term's colour.
    ``broad``: not a standard passband any observer's filter realises (Gaia
    G, BP, RP); the band choice takes one only when its colour term shows it
    closer to the frame than every standard band (services/calibrate/core/choice.py).
    ``system``: the magnitude system the survey publishes the band in, ``"Vega"`` or ``"AB"``
    (the one place it is said; the light-curve exports state it per point, services/lightcurve/exports.py).
    """

    name: str
    column: str
    error_column: str
    colour: tuple[str, str]
    system: MagnitudeSystem
    broad: bool = False

    @property
    def colour_name(self) -> str:
        return f"{self.colour[0]}-{self.colour[1]}"


@dataclass(frozen=True)
class Survey:
    name: str
    release: str
    ra_column: str
    dec_column: str
    bands: tuple[Band, ...]
    #: where the survey has data at all (PS1 stops near Dec -30)
    dec_min: float = -90.0
    dec_max: float = 90.0
    #: brightest and faintest magnitude the survey's photometry is trusted at
    mag_bright: float = 0.0
    mag_faint: float = 30.0
    #: closest separation at which the survey's photometry keeps two stars apart, arcsec: closer
    #: neighbours are published as one star with their summed flux (a calibrator with such a
    #: neighbour in Gaia is not isolated, services/calibrate/core/crowding.py)
    resolution_arcsec: float = 1.0
    extra: dict[str, str] = field(default_factory=dict)

    def band(self, name: str) -> Band:
        for band in self.bands:
            if band.name == name:
                return band
        for band in self.bands:
            # forceFilter values come from users: "apass/v" means APASS V
            if band.name.lower() == name.lower():
                return band
        raise KeyError(f"{self.name} has no band {name!r}; it has {', '.join(self.band_names)}")

    @property
    def band_names(self) -> list[str]:
        return [b.name for b in self.bands]


def _b(name: str, column: str, colour: tuple[str, str], system: MagnitudeSystem, broad: bool = False) -> Band:
    return Band(name=name, column=column, error_column=f"e_{column}", colour=colour, system=system, broad=broad)


APASS = Survey(
    name="APASS",
    release="DR9",
    ra_column="RAJ2000",
    dec_column="DEJ2000",
    bands=(
        _b("B", "Bmag", ("B", "V"), "Vega"),
        _b("V", "Vmag", ("B", "V"), "Vega"),
        _b("g'", "g'mag", ("g'", "r'"), "AB"),
        _b("r'", "r'mag", ("g'", "r'"), "AB"),
        _b("i'", "i'mag", ("r'", "i'"), "AB"),
    ),
    mag_bright=10.0,
    mag_faint=17.0,
    resolution_arcsec=8.0,  # 2.57 arcsec pixels and aperture photometry: stars closer than ~8 arcsec are one entry
)

PS1 = Survey(
    name="PS1",
    release="DR1",
    ra_column="RAJ2000",
    dec_column="DEJ2000",
    bands=(
        _b("g", "gmag", ("g", "r"), "AB"),
        _b("r", "rmag", ("g", "r"), "AB"),
        _b("i", "imag", ("r", "i"), "AB"),
        _b("z", "zmag", ("i", "z"), "AB"),
        _b("y", "ymag", ("z", "y"), "AB"),
    ),
    dec_min=-30.0,
    mag_bright=14.0,
    mag_faint=21.5,
    resolution_arcsec=1.2,  # ~1.1 arcsec seeing, PSF photometry
)

#: Gaia G, BP, RP are in Gaia's own Vega-based system (VEGAMAG zero points): Vega here
GAIA = Survey(
    name="GAIA",
    release="DR3",
    ra_column="RA_ICRS",
    dec_column="DE_ICRS",
    bands=(
        _b("G", "Gmag", ("BP", "RP"), "Vega", broad=True),
        _b("BP", "BPmag", ("BP", "RP"), "Vega", broad=True),
        _b("RP", "RPmag", ("BP", "RP"), "Vega", broad=True),
    ),
    mag_bright=8.0,
    mag_faint=20.5,
    resolution_arcsec=0.4,  # Gaia G resolves pairs down to ~0.4 arcsec: the best resolved, deepest survey
)

#: SDSS ugriz are AB "to within a few per cent" (u_AB = u - 0.04, z_AB = z + 0.02): AB here
SDSS = Survey(
    name="SDSS",
    release="DR12",
    ra_column="RA_ICRS",
    dec_column="DE_ICRS",
    bands=(
        _b("u", "umag", ("u", "g"), "AB"),
        _b("g", "gmag", ("g", "r"), "AB"),
        _b("r", "rmag", ("g", "r"), "AB"),
        _b("i", "imag", ("r", "i"), "AB"),
        _b("z", "zmag", ("i", "z"), "AB"),
    ),
    mag_bright=14.0,
    mag_faint=22.0,
    resolution_arcsec=1.4,  # ~1.4 arcsec seeing
)

#: Gaia DR3 synthetic photometry from the XP spectra: the standardised
#: Johnson-Kron-Cousins UBVRI and SDSS ugriz bands of the Gaia Synthetic
#: Photometry Catalogue (GSPC; Gaia Collaboration, Montegriffo et al. 2023),
#: VizieR I/360/syntphot; CPCS/BHTOM call it "GaiaSP" (``forceFilter=GaiaSP/V``).
#: All-sky; the GSPC keeps a band only where its flux S/N exceeds 30 and is
#: validated down to G = 17.65, so the trusted range is G 8-17.65 (applied to
#: each band's own magnitude here, which is close enough for V, R, g, r, i).
#:
#: Column names. ``Bmag Vmag Rmag Imag`` (with flags ``BFlag``...) and
#: ``gmag rmag imag`` are the VizieR names public clients of I/360/syntphot
#: query; ``Umag``, ``umag``, ``zmag`` follow the same pattern but were NOT
#: confirmed. The error columns ``e_Umag ... e_Imag``, ``e_umag ... e_zmag``
#: are an ASSUMED pattern: the GSPC itself publishes flux errors only
#: (``v_jkc_flux_error``...), and VizieR's table may carry flux errors rather
#: than magnitude errors; an extract must then have ``e_<X>mag =
#: 1.0857 e_F<X> / F<X>`` added before ``photcal catalog load``.
#: Band names: the Johnson-Cousins bands are upper case and the SDSS ones
#: lower case, so ``GaiaSP/R`` (Cousins R) and ``GaiaSP/r`` (Sloan r) differ;
#: colours pair each band with its neighbour, as in APASS and SDSS.
#: Systems: the GSPC standardises UBVRI to Johnson-Kron-Cousins (Vega) and
#: ugriz to SDSS (AB), so GaiaSP/V is Vega and GaiaSP/r is AB.
GAIASP = Survey(
    name="GaiaSP",
    release="DR3 GSPC (VizieR I/360/syntphot)",
    ra_column="RA_ICRS",
    dec_column="DE_ICRS",
    bands=(
        _b("U", "Umag", ("U", "B"), "Vega"),
        _b("B", "Bmag", ("B", "V"), "Vega"),
        _b("V", "Vmag", ("B", "V"), "Vega"),
        _b("R", "Rmag", ("V", "R"), "Vega"),
        _b("I", "Imag", ("R", "I"), "Vega"),
        _b("u", "umag", ("u", "g"), "AB"),
        _b("g", "gmag", ("g", "r"), "AB"),
        _b("r", "rmag", ("g", "r"), "AB"),
        _b("i", "imag", ("r", "i"), "AB"),
        _b("z", "zmag", ("i", "z"), "AB"),
    ),
    mag_bright=8.0,
    mag_faint=17.65,
    resolution_arcsec=1.75,  # the XP spectra's 3.5 x 2.1 arcsec window blends stars within ~1.75 arcsec
)

SURVEYS: dict[str, Survey] = {s.name: s for s in (APASS, PS1, GAIA, SDSS, GAIASP)}


def get_survey(name: str) -> Survey:
    """Look a survey up by name, case-insensitively (``Gaia`` is ``GAIA``)."""
    for key, survey in SURVEYS.items():
        if key.lower() == name.lower():
            return survey
    raise KeyError(f"unknown survey {name!r}; known: {', '.join(SURVEYS)}")
