"""The reference surveys: their VizieR column names, bands and colours.

One place for what the catalogue loader (column mapping), the catalogue
service (what a cone answers) and the calibration (which colour goes with
which band) must agree on. Column names are VizieR's, as in DESIGN.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Band:
    """One band of a survey.

    ``column``/``error_column`` are the VizieR names; ``colour`` is the pair
    of bands (blue, red) whose difference is the colour term's colour.
    """

    name: str
    column: str
    error_column: str
    colour: tuple[str, str]

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


def _b(name: str, column: str, colour: tuple[str, str]) -> Band:
    return Band(name=name, column=column, error_column=f"e_{column}", colour=colour)


APASS = Survey(
    name="APASS",
    release="DR9",
    ra_column="RAJ2000",
    dec_column="DEJ2000",
    bands=(
        _b("B", "Bmag", ("B", "V")),
        _b("V", "Vmag", ("B", "V")),
        _b("g'", "g'mag", ("g'", "r'")),
        _b("r'", "r'mag", ("g'", "r'")),
        _b("i'", "i'mag", ("r'", "i'")),
    ),
    mag_bright=10.0,
    mag_faint=17.0,
)

PS1 = Survey(
    name="PS1",
    release="DR1",
    ra_column="RAJ2000",
    dec_column="DEJ2000",
    bands=(
        _b("g", "gmag", ("g", "r")),
        _b("r", "rmag", ("g", "r")),
        _b("i", "imag", ("r", "i")),
        _b("z", "zmag", ("i", "z")),
        _b("y", "ymag", ("z", "y")),
    ),
    dec_min=-30.0,
    mag_bright=14.0,
    mag_faint=21.5,
)

GAIA = Survey(
    name="GAIA",
    release="DR3",
    ra_column="RA_ICRS",
    dec_column="DE_ICRS",
    bands=(
        _b("G", "Gmag", ("BP", "RP")),
        _b("BP", "BPmag", ("BP", "RP")),
        _b("RP", "RPmag", ("BP", "RP")),
    ),
    mag_bright=8.0,
    mag_faint=20.5,
)

SDSS = Survey(
    name="SDSS",
    release="DR12",
    ra_column="RA_ICRS",
    dec_column="DE_ICRS",
    bands=(
        _b("u", "umag", ("u", "g")),
        _b("g", "gmag", ("g", "r")),
        _b("r", "rmag", ("g", "r")),
        _b("i", "imag", ("r", "i")),
        _b("z", "zmag", ("i", "z")),
    ),
    mag_bright=14.0,
    mag_faint=22.0,
)

SURVEYS: dict[str, Survey] = {s.name: s for s in (APASS, PS1, GAIA, SDSS)}


def get_survey(name: str) -> Survey:
    """Look a survey up by name, case-insensitively (``Gaia`` is ``GAIA``)."""
    for key, survey in SURVEYS.items():
        if key.lower() == name.lower():
            return survey
    raise KeyError(f"unknown survey {name!r}; known: {', '.join(SURVEYS)}")
