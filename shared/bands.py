"""Which survey bands a frame may be calibrated in: forced bands and the observer's filters.

Two inputs narrow the automatic choice of :mod:`services.calibrate.core.choice`:

``forceFilter`` (the upload form; BHTOM's and CPCS's clients send it), parsed
ONCE, by :func:`parse_force_filter`, into a :class:`ForcedBand`:

* ``no`` / ``none`` / ``auto`` / ``0`` / empty / ``any`` / ``any/any``: no
  constraint (None);
* ``SURVEY/BAND`` (``APASS/V``, ``SDSS/r``, ``GaiaSP/V``; ``APASS/r`` means
  APASS ``r'``): that band only, no choice;
* a band group, a *restricted automatic choice*: ``SURVEY/any`` (every band
  of the survey), ``GaiaSP/UBVRI`` / ``GaiaSP/ugriz`` (one letter a band, the
  spelling BHTOM uses), ``SURVEY/B,V`` (a comma list).

The observatory's registered filters (``photcal observatory add --filters``),
mapped by :func:`filter_constraint` to survey bands: ``V`` is Johnson V
(APASS V, GaiaSP V), ``R``/``Rc`` Cousins R (GaiaSP R; the Sloan r bands if
no Cousins R can be fitted), ``i'``/``sdss_i``/``i`` Sloan i (APASS i', PS1 i,
SDSS i, GaiaSP i; then Cousins I) and so on. A frame is taken through one of
its observatory's filters, so it is calibrated in one of their bands, never in
another system (an i' observatory gets i', not Gaia RP) unless forceFilter
asks. An unknown filter name, or a clear one among standard filters, lifts the
constraint: the frame may be through it, and no standard band describes a
clear frame. An observatory with clear filters only is calibrated in Gaia G or
Sloan r, the bands unfiltered photometry is reduced to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from shared.contracts.errors import ErrorCode
from shared.contracts.surveys import SURVEYS, Survey, get_survey
from shared.errors import BadInput

#: forceFilter values that mean "choose the best survey and band"
NO_FORCE = frozenset({"no", "none", "auto", "0", "", "any", "any/any"})
#: band-part words meaning every band of the survey
ANY_BAND = frozenset({"any", "all", "*"})


SurveyBand = tuple[str, str]


@dataclass(frozen=True)
class ForcedBand:
    """A parsed forceFilter: one band (no choice) or a band group (a restricted choice).

    ``bands`` are canonical (survey, band) names (:mod:`shared.contracts.surveys`);
    ``text`` is the canonical spelling, e.g. ``APASS/V``, ``GaiaSP/any``,
    ``GaiaSP/U,B,V,R,I``. A plain value (the calibration core reads it);
    pydantic validates it where a message carries it (``UploadRequested``).
    """

    text: str
    bands: list[SurveyBand]
    group: bool = False

    def __post_init__(self) -> None:
        if not self.bands:
            raise ValueError("a forced band or band group has at least one band")

    @property
    def exact(self) -> SurveyBand | None:
        """The one forced band, or None for a group."""
        return None if self.group else self.bands[0]

    @property
    def surveys(self) -> list[str]:
        return list(dict.fromkeys(s for s, _ in self.bands))


def _band_name(survey: Survey, name: str) -> str | None:
    """The survey's band called ``name`` (case-insensitive fallback, ``r`` for APASS ``r'``), or None."""
    for candidate in (name, name + "'"):
        try:
            return survey.band(candidate).name
        except KeyError:
            continue
    return None


def parse_force_filter(value: str | tuple[str, str] | ForcedBand | None) -> ForcedBand | None:
    """A forceFilter value as a :class:`ForcedBand`; None for no constraint.

    Raises :class:`shared.errors.BadInput`: ``bad_force_filter`` if it is not
    SURVEY/BAND, ``force_filter_unavailable`` for a survey or band not served.
    The messages start with what is wrong and stay under 100 characters
    (CPCS clients show only short ones).
    """
    if value is None or isinstance(value, ForcedBand):
        return value
    if isinstance(value, tuple):
        value = "/".join(value)
    text = str(value).strip()
    if text.lower() in NO_FORCE:
        return None
    survey_part, sep, band_part = text.partition("/")
    survey_part, band_part = survey_part.strip(), band_part.strip()
    if not sep or not survey_part or not band_part:
        raise BadInput("forceFilter is 'no' or SURVEY/BAND, e.g. APASS/V", code=ErrorCode.BAD_FORCE_FILTER)
    try:
        survey = get_survey(survey_part)
    except KeyError:
        raise BadInput(
            f"forceFilter {text[:40]}: survey not served here ({', '.join(SURVEYS)})",
            code=ErrorCode.FORCE_FILTER_UNAVAILABLE,
        ) from None
    unavailable = BadInput(
        f"forceFilter {text[:40]}: {survey.name} has no such band ({' '.join(survey.band_names)})",
        code=ErrorCode.FORCE_FILTER_UNAVAILABLE,
    )
    if band_part.lower() in ANY_BAND:
        return ForcedBand(text=f"{survey.name}/any", bands=[(survey.name, b) for b in survey.band_names], group=True)
    if "," not in band_part:
        single = _band_name(survey, band_part)
        if single is not None:
            return ForcedBand(text=f"{survey.name}/{single}", bands=[(survey.name, single)])
        # BHTOM's letter groups: GaiaSP/UBVRI, GaiaSP/ugriz (case-sensitive: R is Cousins, r Sloan)
        names = list(band_part)
    else:
        names = [n.strip() for n in band_part.split(",") if n.strip()]
    bands: list[str] = []
    for name in names:
        exact = [b for b in survey.band_names if b == name or b == name + "'"]
        found = exact[0] if exact else _band_name(survey, name)
        if found is None:
            raise unavailable
        if found not in bands:
            bands.append(found)
    if not bands:
        raise unavailable
    if len(bands) == 1:
        return ForcedBand(text=f"{survey.name}/{bands[0]}", bands=[(survey.name, bands[0])])
    return ForcedBand(text=f"{survey.name}/{','.join(bands)}", bands=[(survey.name, b) for b in bands], group=True)


# --------------------------------------------------------------------------
# observers' filter names
# --------------------------------------------------------------------------

#: the survey bands of each standard passband ("family"), nominal name -> (survey, band)
FAMILIES: dict[str, tuple[SurveyBand, ...]] = {
    "U": (("GaiaSP", "U"),),
    "B": (("APASS", "B"), ("GaiaSP", "B")),
    "V": (("APASS", "V"), ("GaiaSP", "V")),
    "R": (("GaiaSP", "R"),),
    "I": (("GaiaSP", "I"),),
    "u": (("SDSS", "u"), ("GaiaSP", "u")),
    "g": (("APASS", "g'"), ("PS1", "g"), ("SDSS", "g"), ("GaiaSP", "g")),
    "r": (("APASS", "r'"), ("PS1", "r"), ("SDSS", "r"), ("GaiaSP", "r")),
    "i": (("APASS", "i'"), ("PS1", "i"), ("SDSS", "i"), ("GaiaSP", "i")),
    "z": (("PS1", "z"), ("SDSS", "z"), ("GaiaSP", "z")),
    "y": (("PS1", "y"),),
    "G": (("GAIA", "G"),),
    "BP": (("GAIA", "BP"),),
    "RP": (("GAIA", "RP"),),
}
#: the next-closest standard passband, used only when none of a filter's own bands can be fitted
#: (Cousins R and Sloan r, Cousins I and Sloan i overlap; no survey but GaiaSP has Cousins R, I)
NEAR: dict[str, str] = {"R": "r", "r": "R", "I": "i", "i": "I"}

#: what unfiltered (clear) photometry is reduced to: Gaia G (a thinned CCD's own response), Sloan r and
#: Cousins R (KAIT, MASTER, AAVSO's "CR" reduce it to R; tools/photsystem.py, the clear band). Cousins R
#: since issue 15: behind the Galactic plane's dust (E(B-V) 0.3-1) a clear frame is calibrated to 36 mmag
#: by Cousins R and to 95 by Sloan r, so holding a clear-only observatory to G and r forced the worse band
CLEAR_BANDS: tuple[SurveyBand, ...] = (("GAIA", "G"),) + FAMILIES["r"] + FAMILIES["R"]

#: filter names (lower case, spaces/_/- removed) that mean no filter, or a clear/luminance one
CLEAR_NAMES = frozenset(
    {
        "c",
        "cv",
        "cr",
        "cbb",
        "clear",
        "clr",
        "l",
        "lum",
        "luminance",
        "none",
        "no",
        "nofilter",
        "unfiltered",
        "open",
        "empty",
        "w",
        "white",
    }
)
_PREFIXES = ("johnson", "bessell", "bessel", "cousins", "sloan", "sdss", "ps1", "panstarrs", "gaia")


def filter_family(name: str) -> str | None:
    """The standard passband a filter name means (``"V"``, ``"R"``, ``"i"``, ``"G"``...), ``"clear"``, or None.

    Single letters are case-sensitive as observers write them: ``R``/``I``
    are Cousins, ``r``/``i`` (``r'``, ``sdss_r``, ``rp``) Sloan; ``G`` is
    Gaia G and ``g`` Sloan g; ``RP`` is Gaia RP.
    """
    raw = name.strip()
    if not raw:
        return None
    squashed = re.sub(r"[\s_\-.]+", "", raw)
    low = squashed.lower()
    if low in CLEAR_NAMES:
        return "clear"
    if low in {"bp", "gbp", "gaiabp"}:
        return "BP"
    if low in {"grp", "gaiarp"} or squashed == "RP":
        return "RP"
    if low in {"gaiag", "gg"}:
        return "G"
    sloan = False
    for prefix in _PREFIXES:
        if low.startswith(prefix) and len(low) > len(prefix):
            sloan = prefix in {"sloan", "sdss", "ps1", "panstarrs"}
            squashed = squashed[len(prefix) :]
            break
    else:
        for suffix in ("sdss", "sloan", "ps1"):
            if low.endswith(suffix) and len(low) > len(suffix):
                sloan = True
                squashed = squashed[: -len(suffix)]
                break
    if re.fullmatch(r"[ugrizy]p", squashed):  # "rp" = r prime (Gaia's is "RP")
        squashed = squashed[0] + "'"
    core = squashed.replace("'", "").replace("\u2032", "")
    primed = "'" in squashed or "\u2032" in squashed
    if core in {"Rc", "RC", "Ic", "IC", "Uj", "Bj", "Vj", "UJ", "BJ", "VJ"}:
        return core[0].upper()
    if len(core) != 1:
        return None
    if sloan or primed:
        return core.lower() if core.lower() in {"u", "g", "r", "i", "z", "y"} else None
    if core in {"U", "B", "V", "R", "I", "u", "g", "r", "i", "z", "y", "G"}:
        return core
    if core in {"Z", "Y"}:
        return core.lower()
    if core == "v":
        return "V"
    if core == "b":
        return "B"
    return None


@dataclass(frozen=True)
class FilterConstraint:
    """The survey bands an observatory's filters allow: its own bands first, then the near ones."""

    #: the filters as registered
    filters: list[str]
    #: the bands of the filters' own passbands
    bands: list[SurveyBand]
    #: fallback bands (Cousins R for an r' filter and so on), tried only when no own band could be fitted
    near: list[SurveyBand] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ", ".join(self.filters)


def filter_constraint(filters: list[str] | None) -> FilterConstraint | None:
    """What an observatory's registered filters allow; None when they do not constrain.

    No filters, or an unknown name among them: None. A clear filter among
    standard ones: None too (the frame may be the clear one, which no
    standard band describes). Only clear filters (an unfiltered
    observatory): the bands unfiltered photometry is reduced to
    (:data:`CLEAR_BANDS`: Gaia G, Sloan r and Cousins R), so that its light curve stays
    in them rather than moving to whatever band fits one frame best.
    """
    names = [f.strip() for f in (filters or []) if f and f.strip()]
    if not names:
        return None
    families: list[str] = []
    for name in names:
        family = filter_family(name)
        if family is None:
            return None
        if family not in families:
            families.append(family)
    if "clear" in families:
        if len(families) > 1:
            return None
        return FilterConstraint(filters=names, bands=list(CLEAR_BANDS))
    own = [sb for fam in families for sb in FAMILIES[fam]]
    near = [sb for fam in families if fam in NEAR and NEAR[fam] not in families for sb in FAMILIES[NEAR[fam]]]
    return FilterConstraint(filters=names, bands=list(dict.fromkeys(own)), near=list(dict.fromkeys(near)))
