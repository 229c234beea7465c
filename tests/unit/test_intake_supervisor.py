"""`photcal run` starts the intake service only when the alerts list is to be read."""

from __future__ import annotations

from photcal_cli.supervisor import Supervisor
from shared.settings import CommonSettings


def _started(settings: CommonSettings, without: tuple[str, ...] = ()) -> list[str]:
    return [child.name for child in Supervisor(settings, without).children]


def test_the_intake_runs_only_when_the_feed_is_enabled(monkeypatch, tmp_path):
    settings = CommonSettings(data_dir=tmp_path)
    monkeypatch.delenv("PHOTCAL_ALERTS_FEED_ENABLED", raising=False)
    assert "intake" not in _started(settings)
    monkeypatch.setenv("PHOTCAL_ALERTS_FEED_ENABLED", "1")
    assert _started(settings).count("intake") == 1
    assert "intake" not in _started(settings, without=("intake",))
    monkeypatch.setenv("PHOTCAL_ALERTS_FEED_ENABLED", "0")
    assert "intake" not in _started(settings)
