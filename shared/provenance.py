"""What produced a calibration: the code's version, the catalogue versions, the settings (issue 19).

A calibration record must say which catalogue release and version, which
code and which settings produced it, so that a stored upload can be re-run
to the same bits, and an archive recalibrated knowingly when one of them
changes. The code's version is the package's and the git commit it was
built from: ``PHOTCAL_GIT_COMMIT`` when set (the Docker image is built with
it), else asked of git once when the checkout is a git work tree.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from shared.contracts.messages import CatalogueUsed, Provenance, SoftwareVersion
from shared.contracts.surveys import get_survey

PACKAGE = "photcal"
REPO_ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def software_version() -> SoftwareVersion:
    """This process's code: package version, git commit and whether the tree had changes (asked once)."""
    try:
        package = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        package = "unknown"
    commit = os.environ.get("PHOTCAL_GIT_COMMIT") or None
    dirty = False
    if commit is None and (REPO_ROOT / ".git").exists():
        commit = _git("rev-parse", "HEAD")
        # only tracked files count: a test's or a run's scratch files do not change the code
        dirty = bool(commit and _git("status", "--porcelain", "--untracked-files=no"))
    return SoftwareVersion(package=package, commit=commit, dirty=dirty)


def settings_values(settings: Any) -> dict[str, Any]:
    """Every field of a settings dataclass (FitSettings), JSON-able (tuples as lists)."""
    values = dataclasses.asdict(settings)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def catalogues_used(covered: Iterable[str], versions: Mapping[str, str]) -> list[CatalogueUsed]:
    """The surveys a cone served, each with its release and the version it was read from."""
    out = []
    for name in covered:
        survey = get_survey(name)
        out.append(CatalogueUsed(survey=survey.name, release=survey.release, version=versions.get(name)))
    return out


def calibration_provenance(
    *,
    input_sha256: str | None,
    covered: Iterable[str],
    versions: Mapping[str, str],
    fit_settings: Any,
    match_radius_arcsec: float,
    force_filter: str | None,
    forced_bands: Iterable[tuple[str, str]] = (),
    observatory_filters: Iterable[str] = (),
) -> Provenance:
    return Provenance(
        input_sha256=input_sha256,
        software=software_version(),
        catalogues=catalogues_used(covered, versions),
        fit_settings=settings_values(fit_settings),
        match_radius_arcsec=match_radius_arcsec,
        force_filter=force_filter,
        forced_bands=[(survey, band) for survey, band in forced_bands],
        observatory_filters=list(observatory_filters),
    )
