"""The TOM Toolkit plug-in (clients/tom_photcal) inside a real TOM project, against a real photcal stack.

The TOM Toolkit pins numpy<2.2 and Django 5, so the TOM project (tests/tom/project) runs in its
own virtualenv, .venv-tom (``make tom-venv``; ``make test`` builds it): this test starts the stack
as tests/clients/test_python_client.py does, then runs the project's Django tests there with the
stack's URL, an observatory's hashtag and the field by environment.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import field_dir
from tools.devstack import standalone_stack, stop_all

ROOT = Path(__file__).resolve().parents[2]
TOM_PYTHON = ROOT / ".venv-tom" / "bin" / "python"

pytestmark = [
    pytest.mark.integration,
    # checked before the stack starts; `make test` builds .venv-tom first, so on CI this runs
    pytest.mark.skipif(
        not TOM_PYTHON.exists(),
        reason=f"{TOM_PYTHON} is missing: build the TOM Toolkit's virtualenv with `make tom-venv` (`make test` does)",
    ),
]
PROJECT = Path(__file__).resolve().parent / "project"
FIELD = field_dir("north_V")
IVORN = "ivo://gaia/alerts#SimTom"
NAME = "SimTom"
OBSERVATORY = "TOM Observatory"
#: the Django tests the project holds: every one must run (none skipped, none lost)
EXPECTED_TESTS = len(re.findall(r"^    def test_", (PROJECT / "photcal_checks" / "tests.py").read_text(), re.M))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A stack with the north_V field loaded, an observatory and the field's alert."""
    stack, servers = standalone_stack(
        tmp=tmp_path_factory.mktemp("tom"), PHOTCAL_MONGO_DB="tom", PHOTCAL_UPLOAD_TIMEOUT="90"
    )
    try:
        stack.truth = stack.load_field(FIELD)
        stack.add_observatory(OBSERVATORY)
        a = stack.truth["alert"]
        stack.cli("alert", "add", "--ivorn", IVORN, "--ra", str(a["ra"]), "--dec", str(a["dec"]), "--name", NAME)
        stack.start()
        yield stack
    finally:
        stop_all(stack, servers)


@pytest.fixture(scope="module")
def frame(tmp_path_factory) -> Path:
    """The north_V field's CCD frame (FITS with WCS, MJD-OBS, EXPTIME, INSTRUME), as the camera wrote it."""
    from tools.datasets import simulate_field

    out = tmp_path_factory.mktemp("tom_frame")
    simulate_field(1, 150.0, 30.0, "V", name="north_V", out=out, keep_image=True, sextract=False)
    return out / "image.fits"


def test_the_tom_project_ingests_catalogues_frames_and_light_curves(site, frame, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOTCAL_", "DJANGO_", "PYTHON"))} | {
        "PHOTCAL_URL": site.url,
        "PHOTCAL_HASHTAG": site.hashtags[OBSERVATORY],
        "PHOTCAL_OBSERVATORY": OBSERVATORY,
        "PHOTCAL_ALERT": IVORN,
        "PHOTCAL_ALERT_NAME": NAME,
        "PHOTCAL_FIELD": str(FIELD),
        "PHOTCAL_FRAME": str(frame),
        "TOM_PROJECT_DIR": str(tmp_path),
    }
    run = subprocess.run(
        [str(TOM_PYTHON), "manage.py", "test", "photcal_checks", "-v", "2", "--noinput"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = run.stdout + run.stderr
    sys.stdout.write(output)  # shown by pytest when this test fails
    assert run.returncode == 0, output[-20000:]
    ran = re.search(r"Ran (\d+) tests?", output)
    assert ran and int(ran.group(1)) == EXPECTED_TESTS, output[-5000:]
    assert "skipped" not in output.split("Ran ")[-1], output[-5000:]
