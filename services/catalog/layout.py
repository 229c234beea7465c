"""Where the local reference catalogues live and how they are laid out.

One survey's catalogue is a series of immutable HATS catalogue versions and a
pointer naming the live one::

    <data_dir>/catalogs/<SURVEY>/
        current             text file "v7": the live version (replaced atomically)
        .lock               flock'ed by a loader (one load per survey at a time)
        v6/                 the previous version (kept for readers still on it)
        v7/                 a HATS catalogue (hats.properties, partition_info.csv,
                            moc.fits, dataset/_common_metadata, dataset/_metadata,
                            dataset/Norder=k/Dir=d/Npix=p.parquet)
        v8/attached.json    or: an attached external HATS catalogue (path or URL and
                            its column names), see loader.attach_catalogue

Every partition file holds the rows of one HEALPix pixel sorted by
``_healpix_29`` in row groups of ``ROW_GROUP_ROWS`` rows, so a cone reads only
the row groups whose ``_healpix_29`` range meets the cone. Columns are the
survey's VizieR names (``RAJ2000``, ``Vmag``, ``e_Vmag`` ...) plus
``_healpix_29``; positions are float64, magnitudes and errors float32 with NaN
where the extract had none.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.contracts.surveys import Survey

HEALPIX_COLUMN = "_healpix_29"
HEALPIX_ORDER = 29
POINTER_NAME = "current"
LOCK_NAME = ".lock"
MOC_NAME = "moc.fits"
#: a version that is an attached (external) HATS catalogue holds only this file
ATTACH_NAME = "attached.json"
MOC_ORDER = 7
_VERSION_RE = re.compile(r"^v(\d+)$")

#: rows per parquet row group inside a partition file (a cone reads whole row groups)
ROW_GROUP_ROWS = 4096
#: partitioning: a partition pixel holds at most this many rows (if highest order allows)
PARTITION_ROWS = 100_000
LOWEST_ORDER = 0
HIGHEST_ORDER = 9

#: each version carries a margin catalogue (subdirectory MARGIN_NAME): for every partition,
#: the stars of the others within MARGIN_ARCSEC of its edges (up to one pixel of MARGIN_ORDER,
#: 12.9", more), so that a cross-match (lsdb, photcal recalibrate) finds a source's nearest star
#: across a partition boundary; it covers match radii up to MARGIN_ARCSEC
MARGIN_NAME = "margin"
MARGIN_ARCSEC = 10.0
MARGIN_ORDER = 14

#: star key: position rounded to 0.01 arcsec
KEY_UNITS_PER_DEG = 360_000
_KEY_RA_SPAN = 360 * KEY_UNITS_PER_DEG
_KEY_DEC_OFFSET = 90 * KEY_UNITS_PER_DEG


def catalogs_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "catalogs"


def survey_dir(data_dir: Path, survey: str) -> Path:
    return catalogs_dir(data_dir) / survey


def read_pointer(sdir: Path) -> Path | None:
    """The live version directory of a survey, or None if it has no catalogue."""
    try:
        name = (sdir / POINTER_NAME).read_text().strip()
    except FileNotFoundError:
        return None
    if not _VERSION_RE.match(name):
        return None
    return sdir / name


def write_pointer(sdir: Path, version_dir: Path) -> None:
    """Point ``current`` at ``version_dir`` atomically (write a temp file, fsync, os.replace)."""
    tmp = sdir / f".{POINTER_NAME}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        fh.write(version_dir.name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, sdir / POINTER_NAME)
    fsync_dir(sdir)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def version_number(path: Path) -> int | None:
    m = _VERSION_RE.match(path.name)
    return int(m.group(1)) if m else None


def list_versions(sdir: Path) -> list[Path]:
    """Version directories of a survey, oldest first."""
    if not sdir.is_dir():
        return []
    out = [p for p in sdir.iterdir() if p.is_dir() and version_number(p) is not None]
    return sorted(out, key=lambda p: version_number(p) or 0)


@dataclass(frozen=True)
class Columns:
    """The stored columns of one survey's catalogue."""

    ra: str
    dec: str
    #: band name -> (magnitude column, error column)
    bands: dict[str, tuple[str, str]]

    @classmethod
    def for_survey(cls, survey: Survey) -> Columns:
        return cls(
            ra=survey.ra_column,
            dec=survey.dec_column,
            bands={b.name: (b.column, b.error_column) for b in survey.bands},
        )

    def to_json(self) -> dict:
        return {"ra": self.ra, "dec": self.dec, "bands": {k: list(v) for k, v in self.bands.items()}}

    @classmethod
    def from_json(cls, data: dict) -> Columns:
        return cls(ra=data["ra"], dec=data["dec"], bands={k: (v[0], v[1]) for k, v in data["bands"].items()})

    @property
    def value_columns(self) -> list[str]:
        out: list[str] = []
        for mag, err in self.bands.values():
            out += [mag, err]
        return out


def star_keys(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """A stable int64 key per star: its position rounded to 0.01 arcsec.

    RA wraps (359.999999999 and 0 are one key); two extracts of the same star
    give the same key as long as they print the same position.
    """
    ra_i = np.rint(np.asarray(ra, dtype=np.float64) * KEY_UNITS_PER_DEG).astype(np.int64) % _KEY_RA_SPAN
    dec_i = np.rint(np.asarray(dec, dtype=np.float64) * KEY_UNITS_PER_DEG).astype(np.int64) + _KEY_DEC_OFFSET
    return ra_i * (2 * _KEY_DEC_OFFSET + 1) + dec_i


def order_span(order: int) -> int:
    """How many order-29 cells one pixel of ``order`` holds."""
    return 1 << (2 * (HEALPIX_ORDER - order))


def pixel_area_deg2(order: int) -> float:
    return 4 * np.pi * (180 / np.pi) ** 2 / (12 * 4**order)
