"""Every `photcal` command that needs the database says where it looked, in one line, when nothing answers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tools.infra import free_port


@pytest.mark.parametrize(
    "command",
    [
        ["observatory", "list"],
        ["recalibrate", "--survey", "APASS"],
        ["import", "cpcs", "nothing.json", "--observatory-map", os.devnull],
    ],
)
def test_a_command_without_a_database_exits_2_naming_it(command, tmp_path):
    url = f"mongodb://127.0.0.1:{free_port()}/"
    env = os.environ | {"PHOTCAL_MONGO_URL": url, "PHOTCAL_BACKEND_TIMEOUT": "1", "PHOTCAL_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "photcal_cli.main", *command], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"no database at {url}" in done.stderr and "Traceback" not in done.stderr
