"""`photcal catalog` helpers: the --columns mapping, the list table, the remote partitions' disk cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import fsspec
import pytest
from upath import UPath

from photcal_cli.catalog import format_table, parse_columns
from photcal_cli.main import build_parser
from services.catalog.diskcache import DiskCache
from shared.errors import BadInput


def test_parse_columns():
    assert parse_columns("Gmag=phot_g_mean_mag, e_Gmag = phot_g_mean_mag_error,") == {
        "Gmag": "phot_g_mean_mag",
        "e_Gmag": "phot_g_mean_mag_error",
    }
    assert parse_columns(None) == {} and parse_columns("") == {}
    with pytest.raises(BadInput):
        parse_columns("Gmag")
    with pytest.raises(BadInput):
        parse_columns("=x")


def test_attach_and_recalibrate_commands_parse():
    args = build_parser().parse_args(
        ["catalog", "attach", "--survey", "gaia", "https://example.org/gaia", "--columns", "Gmag=g"]
    )
    assert (args.action, args.survey, args.source, args.columns) == (
        "attach",
        "GAIA",
        "https://example.org/gaia",
        "Gmag=g",
    )
    args = build_parser().parse_args(["recalibrate", "--survey", "ps1"])
    assert (args.command, args.survey, args.scheduler) == ("recalibrate", "PS1", None)
    assert build_parser().parse_args(["catalog", "list", "--json"]).json


def test_format_table():
    text = format_table(
        [
            {
                "survey": "APASS",
                "source": "/d/catalogs/APASS/v2",
                "attached": False,
                "remote": False,
                "version": "v2",
                "rows": 1234567,
                "bands": ["B", "V"],
                "partitions": 32,
                "area_deg2": 512.25,
            },
            {
                "survey": "GAIA",
                "source": "https://h/gaia",
                "attached": True,
                "remote": True,
                "version": "v1",
                "rows": None,
                "bands": ["G"],
                "partitions": 3,
                "area_deg2": 41252.96,
            },
        ]
    )
    header, apass, gaia = text.splitlines()
    assert header.split()[:3] == ["SURVEY", "SOURCE", "ROWS"]
    assert "1,234,567" in apass and "local" in apass and "512.2" in apass and "1.24" in apass and "B,V" in apass
    assert "remote" in gaia and "100.00" in gaia and "https://h/gaia" in gaia
    assert "no reference catalogues" in format_table([])


def test_disk_cache_copies_once_and_stays_bounded(tmp_path):
    remote_root = tmp_path / "remote"
    (remote_root / "dataset").mkdir(parents=True)
    for i in range(4):
        (remote_root / "dataset" / f"Npix={i}.parquet").write_bytes(bytes([i]) * 1000)
    source = f"file://{remote_root}"
    cache = DiskCache(tmp_path / "cache", max_bytes=2500)
    first = cache.fetch(source, UPath(f"{source}/dataset/Npix=0.parquet"))
    assert Path(first).read_bytes() == bytes([0]) * 1000 and first.startswith(str(tmp_path / "cache"))
    assert cache.fetch(source, UPath(f"{source}/dataset/Npix=0.parquet")) == first
    assert (cache.downloads, cache.hits) == (1, 1)
    old = time.time() - 100
    os.utime(first, (old, old))
    for i in (1, 2):
        cache.fetch(source, UPath(f"{source}/dataset/Npix={i}.parquet"))
    # 3,000 bytes > 2,500: the least recently used copy went
    assert not os.path.exists(first) and cache.size() <= 2500
    assert fsspec  # the remote side is any fsspec filesystem
    # no way out of the cache directory
    sneaky = cache.local_path(source, UPath(f"{source}/../../etc/passwd"))
    assert str(sneaky).startswith(str(tmp_path / "cache"))
