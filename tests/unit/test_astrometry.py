"""Plate solving refuses what it cannot solve, saying why and what to do (fast cases: no solve runs)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from services.photometry.imaging import astrometry
from services.photometry.imaging.astrometry import FrameNotSolved, solve_frame

ROOT = Path(__file__).resolve().parents[2]
NOT_INSTALLED = "astrometry.net is not installed here: run tools/system-deps.sh as root (make test does)"


def noise_frame(shape=(1024, 1024), seed=1) -> np.ndarray:
    """Sky and read noise, no star: what a closed dome or thick cloud gives."""
    rng = np.random.default_rng(seed)
    return (1000.0 + rng.normal(0.0, 12.0, shape)).astype(np.float32)


def star_frame(shape=(1024, 1024), n=300, seed=2) -> np.ndarray:
    """Noise plus ``n`` Gaussian stars (FWHM 2.5 px): plenty to detect."""
    rng = np.random.default_rng(seed)
    image = noise_frame(shape, seed).astype(np.float64)
    yy, xx = np.mgrid[-8:9, -8:9]
    sigma = 2.5 / 2.355
    for x, y, flux in zip(
        rng.uniform(20, shape[1] - 20, n), rng.uniform(20, shape[0] - 20, n), rng.uniform(1e3, 1e5, n)
    ):
        ix, iy = int(x), int(y)
        stamp = np.exp(-((xx - (x - ix)) ** 2 + (yy - (y - iy)) ** 2) / (2 * sigma**2))
        image[iy - 8 : iy + 9, ix - 8 : ix + 9] += flux * stamp / stamp.sum()
    return image


@pytest.fixture
def installed():
    """solve-field and the Tycho-2 index files are a requirement of the server: a clear failure without them."""
    if shutil.which("solve-field") is None or not astrometry.installed_indexes():
        pytest.fail(NOT_INSTALLED)


def reason_of(data: np.ndarray, **kwargs) -> str:
    kwargs = {"ra_hint": 150.0, "dec_hint": 20.0} | kwargs
    with pytest.raises(FrameNotSolved) as caught:
        solve_frame(data, **kwargs)
    return caught.value.reason


@pytest.mark.parametrize(
    "frame",
    [np.zeros((512, 512)), np.full((512, 512), 1234.5), np.full((512, 512), np.nan), noise_frame()],
    ids=["zeros", "constant", "nan", "noise only"],
)
def test_a_blank_frame_has_too_few_stars(installed, frame):
    started = time.perf_counter()
    reason = reason_of(frame, pixel_scale_hint_arcsec=2.0)
    assert reason.startswith("too few stars detected"), reason
    assert "catalogue" in reason  # what to do instead
    assert time.perf_counter() - started < 5.0, "refused before the solver's time limit"


def test_a_frame_smaller_than_the_index_scales_says_how_small_and_what_to_do(installed):
    # 1024 px at 0.5"/px: 8.5' across, far below Tycho-2's 22' quads
    started = time.perf_counter()
    reason = reason_of(star_frame(), pixel_scale_hint_arcsec=0.5)
    assert reason.startswith("no index covers the field's scale"), reason
    assert "8.5′ × 8.5′" in reason and "diagonal 12.1′" in reason
    smallest = astrometry.installed_indexes()[0]
    assert f"{smallest.low_arcmin:.0f}′" in reason and smallest.path.name in reason
    assert "finer index files" in reason and "catalogue" in reason
    assert time.perf_counter() - started < 5.0, "refused before running solve-field"


def test_installed_index_scales_cover_20_arcmin_to_2_degrees(installed):
    scales = astrometry.installed_indexes()
    assert scales[0].low_arcmin < 25.0, "a 25' frame needs tycho2-07 (22'-30')"
    assert max(s.high_arcmin for s in scales) >= 120.0
    for a, b in zip(scales, scales[1:]):
        assert b.low_arcmin <= a.high_arcmin * 1.01, f"a gap in index scales between {a.path.name} and {b.path.name}"


def test_not_installed_says_how_to_install(monkeypatch):
    monkeypatch.setattr(astrometry.shutil, "which", lambda name: None)
    reason = reason_of(star_frame())
    assert "astrometry.net is not installed" in reason and "apt-get install astrometry.net" in reason


def test_a_cube_is_not_an_image():
    reason = reason_of(np.zeros((3, 64, 64)))
    assert "not a 2-D image" in reason and "(3, 64, 64)" in reason


def test_a_solver_that_hangs_is_killed_at_the_wall_clock_limit(tmp_path, monkeypatch, installed):
    """solve-field and the engine it forks are killed together, and the reason says it timed out."""
    pid_file = tmp_path / "child.pid"
    fake = tmp_path / "solve-field"
    fake.write_text(f"#!/bin/sh\nsleep 120 &\necho $! > {pid_file}\nwait\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(astrometry, "KILL_GRACE_S", 0.5)
    started = time.perf_counter()
    reason = reason_of(star_frame(), pixel_scale_hint_arcsec=2.0, timeout_s=1.0)
    elapsed = time.perf_counter() - started
    assert reason.startswith("plate solving timed out"), reason
    assert elapsed < 5.0
    child = int(pid_file.read_text())
    for _ in range(50):
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the solver's child process survived the kill")


def test_the_docker_image_installs_what_the_tests_solve_with():
    """The server's image and `make test` (tools/system-deps.sh) install the same astrometry.net packages."""
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    image = set(
        re.findall(r"astrometry[\w.-]*", " ".join(line for line in dockerfile.splitlines() if "apt-get" in line))
    )
    deps = (ROOT / "tools" / "system-deps.sh").read_text()
    assert {"astrometry.net", "astrometry-data-tycho2-07", "astrometry-data-tycho2-10-19"} <= image
    for package in image:
        name = package.removeprefix("astrometry-data-tycho2-")
        assert package in deps or f" {name}" in deps, f"{package} is in the image but not installed for the tests"
