"""Cone searches over the local HATS reference catalogues.

``CatalogStore(data_dir).cone(ra, dec, radius_deg, surveys)`` answers a
``shared.contracts.messages.ConeReply`` from ``<data_dir>/catalogs/<SURVEY>/<version>/``
(layout in services.catalog.layout) without lsdb/dask on the hot path:

1. the cone becomes a few ``_healpix_29`` ranges (cdshealpix MOC of the cone);
2. the survey's partitions (kept open: partition list + each file's row-group
   ``_healpix_29`` min/max) that meet those ranges are picked;
3. only the row groups that meet the ranges are read with pyarrow and kept
   in memory; partitions are held in a bounded LRU (``cache_partitions``);
   partitions of an attached remote (http/s3) catalogue are first copied to
   ``<data_dir>/cache/`` (services.catalog.diskcache), bounded on disk too;
4. rows are narrowed by binary search on the sorted ``_healpix_29`` and then
   cut exactly by angular distance (haversine), so RA 0/360 and the poles
   need no special case.

The store re-checks each survey's ``current`` pointer at most once per
``refresh_seconds`` (a stat; the version is reopened only when the pointer
changed), so a load is seen without a restart. Reads are thread-safe.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.parquet as pq

from services.catalog import layout
from services.catalog.layout import HEALPIX_COLUMN, Columns
from shared.contracts.errors import ErrorCode
from shared.contracts.messages import ConeReply, SurveyStars
from shared.contracts.surveys import SURVEYS, get_survey
from shared.errors import BadInput
from shared.sky import within_radius

if TYPE_CHECKING:  # only for the annotation of hats' paths
    from upath import UPath

_I64_MAX = np.iinfo(np.int64).max
_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- cone geometry


def cone_ranges(ra: float, dec: float, radius_deg: float) -> np.ndarray:
    """The cone as sorted, disjoint half-open ``_healpix_29`` ranges, shape (n, 2).

    The ranges cover the cone (cells partly inside included); the exact cut
    comes later. Cells are chosen about half the radius across.
    """
    from cdshealpix import cdshealpix as _chp

    radius_deg = float(radius_deg)
    # order-k pixels are ~58.6/2^k deg across
    depth = int(np.clip(math.floor(math.log2(58.6 * 2.0 / max(radius_deg, 1e-9))), 0, 24))
    ipix, depths, _ = _chp.cone_search(
        np.uint8(depth),
        np.uint8(2),
        np.float64(math.radians(ra % 360.0)),
        np.float64(math.radians(dec)),
        np.float64(math.radians(radius_deg)),
        False,
    )
    if len(ipix) == 0:
        return np.empty((0, 2), dtype=np.int64)
    shift = (2 * (layout.HEALPIX_ORDER - depths.astype(np.int64))).astype(np.int64)
    lo = ipix.astype(np.int64) << shift
    hi = (ipix.astype(np.int64) + 1) << shift
    order = np.argsort(lo)
    lo, hi = lo[order], hi[order]
    # merge touching ranges
    keep = np.ones(len(lo), dtype=bool)
    keep[1:] = lo[1:] != hi[:-1]
    starts = lo[keep]
    ends = np.append(hi[np.flatnonzero(keep)[1:] - 1], hi[-1])
    return np.stack([starts, ends], axis=1)


def brightest_mask(mags: list[np.ndarray], keep: int) -> np.ndarray:
    """The stars to keep: the ``keep`` brightest by their brightest band (ties kept), and every star
    with no magnitude at all (it still counts as a match, e.g. for ``bad_astrometry``)."""
    if not mags:
        return np.ones(0, dtype=bool)
    best = mags[0].astype(np.float32, copy=True)
    for m in mags[1:]:
        np.fmin(best, m, out=best)  # fmin: NaN only where every band is NaN
    finite = np.isfinite(best)
    n_finite = int(finite.sum())
    if n_finite <= keep:
        return np.ones(len(best), dtype=bool)
    threshold = np.partition(best[finite], keep - 1)[keep - 1]
    return ~finite | (best <= threshold)


# --------------------------------------------------------------------------- open catalogues


@dataclass
class _Partition:
    """One partition file: its row-group ``_healpix_29`` spans and the row groups read so far."""

    path: object
    columns: list[str]
    rg_lo: np.ndarray
    rg_hi: np.ndarray
    pf: pq.ParquetFile
    groups: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, path, wanted: list[str]) -> _Partition:
        if isinstance(path, str):
            pf = pq.ParquetFile(path)
        else:  # a UPath of an attached remote catalogue
            pf = pq.ParquetFile(path.path, filesystem=path.fs)
        meta = pf.metadata
        names = pf.schema_arrow.names
        columns = [c for c in wanted if c in names]
        n = meta.num_row_groups
        rg_lo = np.zeros(n, dtype=np.int64)
        rg_hi = np.full(n, _I64_MAX, dtype=np.int64)
        if HEALPIX_COLUMN in names:
            idx = names.index(HEALPIX_COLUMN)
            for i in range(n):
                stats = meta.row_group(i).column(idx).statistics
                if stats is not None and stats.has_min_max:
                    rg_lo[i] = int(stats.min)
                    rg_hi[i] = int(stats.max)
        return cls(path=path, columns=columns, rg_lo=rg_lo, rg_hi=rg_hi, pf=pf)

    def group(self, i: int) -> dict[str, np.ndarray]:
        got = self.groups.get(i)
        if got is not None:
            return got
        with self.lock:
            got = self.groups.get(i)
            if got is not None:
                return got
            table = self.pf.read_row_group(i, columns=self.columns)
        arrays = {c: table.column(c).to_numpy() for c in self.columns}
        hp = arrays.get(HEALPIX_COLUMN)
        if hp is not None and len(hp) > 1 and np.any(hp[1:] < hp[:-1]):
            order = np.argsort(hp, kind="stable")
            arrays = {c: a[order] for c, a in arrays.items()}
        self.groups[i] = arrays
        return arrays


@dataclass
class _Version:
    """One survey's open catalogue version: its partitions as _healpix_29 spans."""

    survey: str
    path: Path
    columns: Columns
    pixels: list[tuple[int, int]]
    files: list
    part_lo: np.ndarray
    part_hi: np.ndarray
    rows: int | None
    opened_at: float
    #: where the data is: the version dir, or an attached catalogue's path/URL
    source: str = ""
    #: columns an attached catalogue lacks (their bands answer NaN)
    missing: list = field(default_factory=list)
    _area: float | None = None

    @classmethod
    def open(cls, survey: str, path: Path, columns: Columns) -> _Version:
        import json

        from hats.catalog import PartitionInfo, TableProperties
        from hats.io.file_io import get_upath
        from hats.io.paths import pixel_catalog_file

        attached = path / layout.ATTACH_NAME
        remote = False
        source = str(path)
        missing: list[str] = []
        if attached.exists():
            spec = json.loads(attached.read_text())
            source = spec["source"]
            columns = Columns.from_json(spec["columns"])
            missing = list(spec.get("missing", []))
            remote = "://" in source
        base = get_upath(source)
        props = TableProperties.read_from_dir(base)
        pixels = sorted(
            PartitionInfo.read_from_dir(base).get_healpix_pixels(),
            key=lambda p: p.pixel << (2 * (layout.HEALPIX_ORDER - p.order)),
        )
        lo = np.array([p.pixel << (2 * (layout.HEALPIX_ORDER - p.order)) for p in pixels], dtype=np.int64)
        hi = np.array([(p.pixel + 1) << (2 * (layout.HEALPIX_ORDER - p.order)) for p in pixels], dtype=np.int64)
        files = [pixel_catalog_file(base, p, npix_suffix=props.npix_suffix) for p in pixels]
        opened: list[UPath] | list[str] = files if remote else [str(f) for f in files]
        return cls(
            survey=survey,
            path=path,
            columns=columns,
            pixels=[(p.order, p.pixel) for p in pixels],
            files=opened,
            part_lo=lo,
            part_hi=hi,
            rows=props.total_rows,
            opened_at=time.time(),
            source=source,
            missing=missing,
        )

    def partitions_for(self, ranges: np.ndarray) -> list[int]:
        """Indices of the partitions meeting any of the ranges."""
        out: set[int] = set()
        for lo, hi in ranges:
            # partitions with part_lo < hi and part_hi > lo
            first = int(np.searchsorted(self.part_hi, lo, side="right"))
            last = int(np.searchsorted(self.part_lo, hi, side="left"))
            out.update(range(first, last))
        return sorted(out)

    def area_deg2(self) -> float:
        if self._area is None:
            moc_path = self.path / layout.MOC_NAME
            area = None
            if moc_path.exists():
                try:
                    from mocpy import MOC

                    area = float(MOC.from_fits(str(moc_path)).sky_fraction) * 4 * math.pi * (180 / math.pi) ** 2
                except Exception:
                    area = None
            if area is None and self.source != str(self.path):
                area = self._attached_moc_area()
            if area is None:
                area = float(sum(layout.pixel_area_deg2(o) for o, _ in self.pixels))
            self._area = area
        return self._area

    def _attached_moc_area(self) -> float | None:
        """Sky area of an attached catalogue from its own MOC, if it has one."""
        try:
            import hats

            catalog = hats.read_hats(self.source)
            moc = getattr(catalog, "moc", None)
            if moc is None:
                return None
            return float(moc.sky_fraction) * 4 * math.pi * (180 / math.pi) ** 2
        except Exception:
            return None


@dataclass
class _SurveyState:
    survey: str
    pointer_stat: tuple[int, int] | None = None
    checked_at: float = 0.0
    version: _Version | None = None


# --------------------------------------------------------------------------- the store


class CatalogStore:
    """Read side of the local catalogues. Thread-safe; one per process is enough."""

    def __init__(
        self,
        data_dir: Path,
        cache_partitions: int = 64,
        refresh_seconds: float = 1.0,
        disk_cache_bytes: int = 4 << 30,
    ) -> None:
        from services.catalog.diskcache import DiskCache

        self.data_dir = Path(data_dir)
        self.cache_partitions = max(1, int(cache_partitions))
        #: local copies of remote (attached http/s3) partition files
        self.disk = DiskCache(self.data_dir / "cache", disk_cache_bytes)
        self.refresh_seconds = float(refresh_seconds)
        self._lock = threading.RLock()
        self._states: dict[str, _SurveyState] = {}
        self._cache: OrderedDict[tuple[str, int, int], _Partition] = OrderedDict()
        #: versions asked for by name (a recalibration's ``versions``), opened once: they never change
        self._pinned: dict[tuple[str, str], _Version] = {}
        self.cache_hits = 0
        self.cache_misses = 0
        # open what is there now, so the first cone pays no imports or metadata reads
        self.surveys()

    # ---- versions

    def _pointer_stat(self, survey: str) -> tuple[int, int] | None:
        try:
            st = os.stat(layout.survey_dir(self.data_dir, survey) / layout.POINTER_NAME)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def _version(self, survey: str, force: bool = False) -> _Version | None:
        """The open live version of a survey, re-checking the pointer when due."""
        now = time.monotonic()
        with self._lock:
            state = self._states.get(survey)
            if state is None:
                state = self._states[survey] = _SurveyState(survey)
                force = True
            if not force and now - state.checked_at < self.refresh_seconds:
                return state.version
            state.checked_at = now
            stat = self._pointer_stat(survey)
            if stat == state.pointer_stat and not force:
                return state.version
            path = layout.read_pointer(layout.survey_dir(self.data_dir, survey))
            old = state.version
            if path is None or not path.is_dir():
                state.version = None
            elif old is None or old.path != path or force:
                try:
                    state.version = _Version.open(survey, path, Columns.for_survey(get_survey(survey)))
                except Exception:
                    _log.exception("cannot open catalogue %s; still serving %s", path, old.path if old else None)
                    return old
            state.pointer_stat = stat
            if old is not None and (state.version is None or state.version.path != old.path):
                self._drop_cached(str(old.path))
            return state.version

    def _drop_cached(self, version_path: str) -> None:
        for key in [k for k in self._cache if k[0] == version_path]:
            del self._cache[key]

    def _pinned_version(self, survey: str, name: str) -> _Version:
        """A named version of a survey (``v6``), on disk beside the live one; BadInput
        ``unknown_catalogue_version`` if it is not there (never loaded, or pruned: a load keeps the
        live and the previous version)."""
        sdir = layout.survey_dir(self.data_dir, survey)
        path = sdir / name
        with self._lock:
            found = self._pinned.get((survey, name))
        if found is not None:
            if path.is_dir():  # a stat: a version pruned since (two loads later) is not served from memory
                return found
            with self._lock:
                self._pinned.pop((survey, name), None)
                self._drop_cached(str(found.path))
        if layout.version_number(path) is None or not path.is_dir():
            on_disk = ", ".join(p.name for p in layout.list_versions(sdir)) or "none"
            raise BadInput(
                f"{survey} has no catalogue version {name[:20]!r} on disk (versions: {on_disk})",
                code=ErrorCode.UNKNOWN_CATALOGUE_VERSION,
            )
        version = _Version.open(survey, path, Columns.for_survey(get_survey(survey)))
        with self._lock:
            self._pinned[(survey, name)] = version
        return version

    def _search_pinned(self, version: _Version, ranges: np.ndarray, ra: float, dec: float, radius: float, value_dtype):
        try:
            return self._search(version, ranges, ra, dec, radius, value_dtype)
        except OSError as exc:  # pruned since it was opened (a load keeps only the live and the previous version)
            with self._lock:
                self._pinned.pop((version.survey, version.path.name), None)
                self._drop_cached(str(version.path))
            raise BadInput(
                f"{version.survey} catalogue version {version.path.name} is no longer on disk",
                code=ErrorCode.UNKNOWN_CATALOGUE_VERSION,
            ) from exc

    def versions_on_disk(self) -> dict[str, list[str]]:
        """Survey -> its catalogue versions on disk, oldest first (surveys without any left out)."""
        out = {}
        for name in SURVEYS:
            versions = [p.name for p in layout.list_versions(layout.survey_dir(self.data_dir, name))]
            if versions:
                out[name] = versions
        return out

    def surveys(self) -> list[str]:
        """Surveys that have a local catalogue, in shared.contracts.surveys order."""
        return [name for name in SURVEYS if self._version(name) is not None]

    # ---- partitions

    def _partition(self, version: _Version, index: int, wanted: list[str]) -> _Partition:
        order, pixel = version.pixels[index]
        key = (str(version.path), order, pixel)
        with self._lock:
            part = self._cache.get(key)
            if part is not None:
                self._cache.move_to_end(key)
                self.cache_hits += 1
                return part
            self.cache_misses += 1
        file = version.files[index]
        if not isinstance(file, str):  # a remote catalogue: read the local copy
            file = self.disk.fetch(version.source, file)
        part = _Partition.open(file, wanted)
        with self._lock:
            self._cache[key] = part
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_partitions:
                self._cache.popitem(last=False)
        return part

    def _search(
        self, version: _Version, ranges: np.ndarray, ra: float, dec: float, radius: float, value_dtype=np.float64
    ) -> dict[str, np.ndarray]:
        cols = version.columns
        wanted = [HEALPIX_COLUMN, cols.ra, cols.dec, *cols.value_columns]
        pieces: list[dict[str, np.ndarray]] = []
        for index in version.partitions_for(ranges):
            part = self._partition(version, index, wanted)
            # clip the ranges to this partition, then find row groups meeting them
            lo = np.maximum(ranges[:, 0], version.part_lo[index])
            hi = np.minimum(ranges[:, 1], version.part_hi[index])
            ok = lo < hi
            lo, hi = lo[ok], hi[ok]
            if len(lo) == 0:
                continue
            # row group i meets range j if rg_lo[i] < hi[j] and rg_hi[i] >= lo[j]
            meets = (part.rg_lo[:, None] < hi[None, :]) & (part.rg_hi[:, None] >= lo[None, :])
            for g in np.flatnonzero(meets.any(axis=1)):
                arrays = part.group(int(g))
                hp = arrays.get(HEALPIX_COLUMN)
                if hp is None:
                    idx = np.arange(len(arrays[cols.ra]))
                else:
                    a = np.searchsorted(hp, lo, side="left")
                    b = np.searchsorted(hp, hi, side="left")
                    spans = [np.arange(s, e) for s, e in zip(a.tolist(), b.tolist()) if e > s]
                    if not spans:
                        continue
                    idx = np.concatenate(spans) if len(spans) > 1 else spans[0]
                r = arrays[cols.ra][idx]
                d = arrays[cols.dec][idx]
                sel = idx[within_radius(r, d, ra, dec, radius)]
                if len(sel):
                    pieces.append({c: a[sel] for c, a in arrays.items()})
        n = sum(len(p[cols.ra]) for p in pieces)
        out: dict[str, np.ndarray] = {}
        for c in [cols.ra, cols.dec, *cols.value_columns]:
            dtype = np.float64 if c in (cols.ra, cols.dec) else value_dtype
            if pieces and c in pieces[0]:
                out[c] = np.concatenate([p[c] for p in pieces]).astype(dtype, copy=False)
            else:
                out[c] = np.full(n, np.nan, dtype=dtype)
        return out

    # ---- public

    def cone(
        self,
        ra: float,
        dec: float,
        radius_deg: float,
        surveys: list[str] | None = None,
        *,
        brightest: int | None = None,
        float32: bool = False,
        versions: dict[str, str] | None = None,
    ) -> ConeReply:
        """Stars within ``radius_deg`` of (ra, dec) from each survey asked (all local ones if None/empty).

        ``covered`` lists, in the order asked, the surveys with at least one
        star in the cone; ``stars`` holds exactly those surveys.
        ``brightest``: at most about that many stars per survey, the brightest
        (see :func:`brightest_mask`). ``float32``: magnitudes and errors as
        stored (float32) instead of float64, for a binary reply.
        ``versions``: survey -> the catalogue version to read instead of the live one (a
        recalibration against an earlier release); one not on disk is a BadInput
        ``unknown_catalogue_version``.
        """
        if not (math.isfinite(ra) and math.isfinite(dec) and -90.0 <= dec <= 90.0):
            raise BadInput(f"bad cone centre ({ra}, {dec})", code=ErrorCode.BAD_CONE)
        if not (math.isfinite(radius_deg) and 0.0 < radius_deg <= 180.0):
            raise BadInput(f"bad cone radius {radius_deg}", code=ErrorCode.BAD_CONE)
        if surveys:
            names: list[str] = []
            for s in surveys:
                try:
                    name = get_survey(s).name
                except KeyError as exc:
                    raise BadInput(str(exc.args[0]), code=ErrorCode.UNKNOWN_SURVEY) from exc
                if name not in names:
                    names.append(name)
        else:
            names = list(SURVEYS)
        pinned: dict[str, _Version] = {}
        for s, version_name in (versions or {}).items():
            try:
                survey_name = get_survey(s).name
            except KeyError as exc:
                raise BadInput(str(exc.args[0]), code=ErrorCode.UNKNOWN_SURVEY) from exc
            pinned[survey_name] = self._pinned_version(survey_name, version_name)
        ra = float(ra) % 360.0
        ranges = cone_ranges(ra, dec, radius_deg)
        reply = ConeReply()
        for name in names:
            value_dtype = np.float32 if float32 else np.float64
            if name in pinned:
                found = (pinned[name], self._search_pinned(pinned[name], ranges, ra, dec, radius_deg, value_dtype))
            else:
                found = self._cone_one(name, ranges, ra, dec, radius_deg, value_dtype)
            if found is None:
                continue
            version, arrays = found
            cols = version.columns
            if len(arrays[cols.ra]) == 0:
                continue
            if brightest is not None and len(arrays[cols.ra]) > brightest:
                keep = np.flatnonzero(brightest_mask([arrays[m] for m, _ in cols.bands.values()], brightest))
                arrays = {c: a.take(keep) for c, a in arrays.items()}  # take: ~5x a boolean mask here
            reply.covered.append(name)
            reply.versions[name] = version.path.name
            reply.stars[name] = SurveyStars(
                survey=name,
                ra=arrays[cols.ra],
                dec=arrays[cols.dec],
                mags={band: arrays[m] for band, (m, _) in cols.bands.items()},
                errs={band: arrays[e] for band, (_, e) in cols.bands.items()},
            )
        return reply

    def _cone_one(self, name: str, ranges: np.ndarray, ra: float, dec: float, radius: float, value_dtype=np.float64):
        for attempt in range(2):
            version = None
            try:
                version = self._version(name, force=attempt > 0)
                if version is None:
                    return None
                return version, self._search(version, ranges, ra, dec, radius, value_dtype)
            except OSError:
                # the version was pruned under us (two loads in a row): reopen once
                if version is not None:
                    with self._lock:
                        self._drop_cached(str(version.path))
                if attempt:
                    raise
        return None

    def attach(self, survey: str, url_or_path: str | Path, column_map: dict[str, str] | None = None) -> dict:
        """Serve ``survey`` from an existing HATS catalogue; see loader.attach_catalogue."""
        from services.catalog.loader import attach_catalogue

        attach_catalogue(survey, url_or_path, self.data_dir, column_map)
        name = get_survey(survey).name
        self._version(name, force=True)
        return next(c for c in self.list_catalogs() if c["survey"] == name)

    def live(self, survey: str) -> tuple[str, Columns, str] | None:
        """The live catalogue of ``survey``: (HATS path or URL, its columns, version name), or None."""
        version = self._version(get_survey(survey).name, force=True)
        if version is None:
            return None
        return version.source, version.columns, version.path.name

    def list_catalogs(self) -> list[dict]:
        """One dict per local catalogue: survey, source, version, rows, bands, partitions, area."""
        out = []
        for name in SURVEYS:
            version = self._version(name)
            if version is None:
                continue
            try:
                loaded = datetime.fromtimestamp(version.path.stat().st_mtime, tz=UTC).isoformat()
            except OSError:
                loaded = None
            out.append(
                {
                    "survey": name,
                    "source": version.source,
                    "attached": version.source != str(version.path),
                    "remote": "://" in version.source,
                    "version": version.path.name,
                    "rows": version.rows,
                    "bands": [b for b, (m, _) in version.columns.bands.items() if m not in version.missing],
                    "partitions": len(version.pixels),
                    "area_deg2": round(version.area_deg2(), 3),
                    "loaded_at": loaded,
                }
            )
        return out

    def cache_info(self) -> dict[str, int]:
        with self._lock:
            return {
                "partitions": len(self._cache),
                "capacity": self.cache_partitions,
                "hits": self.cache_hits,
                "misses": self.cache_misses,
                "disk_downloads": self.disk.downloads,
                "disk_hits": self.disk.hits,
            }
