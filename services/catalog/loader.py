"""Loading VizieR extracts into a survey's local HATS catalogue.

``load_extracts("APASS", [Path("apass_m67.csv.gz")], data_dir)`` reads the
files, drops rows without a position, merges them with the survey's live
catalogue (one row per star: the key is the position rounded to 0.01 arcsec,
the row already stored wins, so loading a file twice changes nothing), writes
a NEW catalogue version next to the live one and switches the ``current``
pointer atomically. Readers (services.catalog.store) keep answering from the
old version during the load and see the new one on their next pointer check.
The version before the new one is kept for readers still using it; older ones
are deleted. One load per survey at a time (flock on ``<survey>/.lock``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from services.catalog import layout
from services.catalog.extracts import Extract, read_extract
from services.catalog.layout import HEALPIX_COLUMN, Columns
from shared.contracts.errors import ErrorCode
from shared.contracts.surveys import get_survey
from shared.errors import BadInput, Conflict


@dataclass
class LoadReport:
    survey: str = ""
    files: int = 0
    rows_read: int = 0
    rows_without_position: int = 0
    #: stars not in the catalogue before this load
    rows_new: int = 0
    #: stars in the catalogue after this load
    rows_total: int = 0
    #: the version directory now live (unchanged if nothing was new)
    version: str | None = None
    partitions: int = 0
    seconds: float = 0.0
    per_file: list[dict] = field(default_factory=list)


class _Progress:
    def __init__(self, enabled: bool, total: int, desc: str) -> None:
        self.bar = None
        self.enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="file", file=sys.stderr)
            except ImportError:  # pragma: no cover
                self.bar = None

    def step(self, note: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(note)
            self.bar.update(1)
        else:  # pragma: no cover
            print(note, file=sys.stderr)

    def note(self, note: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(note)
        else:  # pragma: no cover
            print(note, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextmanager
def _survey_lock(sdir: Path):
    sdir.mkdir(parents=True, exist_ok=True)
    with open(sdir / layout.LOCK_NAME, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _read_version(version_dir: Path, cols: Columns) -> dict[str, np.ndarray]:
    """Every row of a stored version, in the stored columns (plus _healpix_29)."""
    import hats

    wanted = [HEALPIX_COLUMN, cols.ra, cols.dec, *cols.value_columns]
    from hats.catalog.healpix_dataset.healpix_dataset import HealpixDataset

    catalog = hats.read_hats(version_dir, read_moc=False)
    assert isinstance(catalog, HealpixDataset)  # a stored version is the object catalogue build() wrote
    tables = []
    for pixel in catalog.get_healpix_pixels():
        path = hats.io.paths.pixel_catalog_file(version_dir, pixel)
        tables.append(pq.read_table(str(path), columns=wanted))
    if not tables:
        return {c: np.empty(0) for c in wanted}
    table = pa.concat_tables(tables)
    return {c: table.column(c).to_numpy() for c in wanted}


def _partitions(hp29: np.ndarray, threshold: int, lowest: int, highest: int) -> list[tuple[int, int, int, int]]:
    """Split sorted _healpix_29 values into HEALPix pixels of at most ``threshold`` rows.

    Returns (order, pixel, start row, end row), in _healpix_29 order. A pixel is
    split into its four children while it holds more than ``threshold`` rows and
    its order is below ``highest``; empty pixels are not partitions.
    """
    out: list[tuple[int, int, int, int]] = []

    def visit(order: int, lo: int, hi: int) -> None:
        # rows lo:hi all lie in pixels of `order`; group them by pixel
        shift = 2 * (layout.HEALPIX_ORDER - order)
        pix = hp29[lo:hi] >> shift
        bounds = np.flatnonzero(np.diff(pix)) + 1
        starts = np.concatenate(([0], bounds)) + lo
        ends = np.concatenate((bounds, [hi - lo])) + lo
        for s, e in zip(starts.tolist(), ends.tolist()):
            if e - s <= threshold or order >= highest:
                out.append((order, int(hp29[s] >> shift), s, e))
            else:
                visit(order + 1, s, e)

    if len(hp29):
        visit(lowest, 0, len(hp29))
    return out


def _write_version(
    tmp_dir: Path,
    survey: str,
    cols: Columns,
    data: dict[str, np.ndarray],
    progress: _Progress,
    *,
    partition_rows: int,
    row_group_rows: int,
) -> int:
    """Write sorted rows as a HATS catalogue in ``tmp_dir``; returns the partition count."""
    import hats
    from hats.catalog import CatalogType, PartitionInfo, TableProperties
    from hats.pixel_math.healpix_pixel import HealpixPixel

    hp29 = data[HEALPIX_COLUMN]
    parts = _partitions(hp29, partition_rows, layout.LOWEST_ORDER, layout.HIGHEST_ORDER)
    schema = pa.schema(
        [pa.field(HEALPIX_COLUMN, pa.int64()), pa.field(cols.ra, pa.float64()), pa.field(cols.dec, pa.float64())]
        + [pa.field(c, pa.float32()) for c in cols.value_columns]
    )
    table = pa.Table.from_arrays([pa.array(data[f.name]) for f in schema], schema=schema)

    def write(part: tuple[int, int, int, int]) -> None:
        order, pixel, start, end = part
        path = Path(str(hats.io.paths.pixel_catalog_file(tmp_dir, HealpixPixel(order, pixel))))
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            table.slice(start, end - start),
            path,
            row_group_size=row_group_rows,
            compression="snappy",
            write_statistics=[HEALPIX_COLUMN],
        )

    progress.note(f"writing {len(parts)} partitions")
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(write, parts))

    pixels = [HealpixPixel(o, p) for o, p, _, _ in parts]
    hats.io.parquet_metadata.write_parquet_metadata(tmp_dir)
    PartitionInfo(pixels).write_to_file(catalog_path=tmp_dir)
    max_order = max((o for o, *_ in parts), default=0)
    # TableProperties allows extra keys (hats_order is one of the HATS properties it has no field for)
    # and defaults its optional lists: hats' model config is more than pydantic's mypy plugin reads
    props = TableProperties(  # type: ignore[call-arg]
        catalog_name=survey,
        catalog_type=CatalogType.OBJECT,
        total_rows=int(len(hp29)),
        ra_column=cols.ra,
        dec_column=cols.dec,
        healpix_column=HEALPIX_COLUMN,
        healpix_order=layout.HEALPIX_ORDER,
        hats_max_rows=int(max((e - s for *_, s, e in parts), default=0)),
        hats_order=max_order,
        moc_sky_fraction=float(sum(4.0**-o for o, *_ in parts) / 12.0),
    )
    props.to_properties_file(tmp_dir)
    _write_moc(tmp_dir, hp29)
    progress.note("writing the margin catalogue")
    _write_margin(tmp_dir / layout.MARGIN_NAME, survey, cols, table, parts, row_group_rows)
    return len(parts)


def _write_margin(
    margin_dir: Path,
    survey: str,
    cols: Columns,
    table: pa.Table,
    parts: list[tuple[int, int, int, int]],
    row_group_rows: int,
) -> None:
    """A HATS margin catalogue: per partition, the other partitions' stars in the pixels bordering it.

    The bordering pixels are those of :data:`layout.MARGIN_ORDER` (12.9"
    across, no smaller than :data:`layout.MARGIN_ARCSEC`) outside the
    partition and touching it (``hats.pixel_math.get_margin``), so every
    star within the threshold of the partition's edge is there (and some a
    little farther, which a cross-match only considers and rejects). None
    is written for a catalogue of one partition.
    """
    import hats
    from hats.catalog import CatalogType, PartitionInfo, TableProperties
    from hats.pixel_math.healpix_pixel import HealpixPixel
    from hats.pixel_math.pixel_margins import get_margin

    # the rows are sorted by _healpix_29, so by their pixel at the margin order too
    margin_pixel = table.column(HEALPIX_COLUMN).to_numpy() >> (2 * (layout.HEALPIX_ORDER - layout.MARGIN_ORDER))
    pixels, total = [], 0
    for order, pixel, _, _ in parts:
        border = np.asarray(get_margin(order, pixel, layout.MARGIN_ORDER - order), dtype=np.int64)
        starts = np.searchsorted(margin_pixel, border, side="left")
        ends = np.searchsorted(margin_pixel, border, side="right")
        rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends) if b > a] or [np.empty(0, np.int64)])
        if rows.size == 0:
            continue
        path = Path(str(hats.io.paths.pixel_catalog_file(margin_dir, HealpixPixel(order, pixel))))
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.take(np.sort(rows)), path, row_group_size=row_group_rows, compression="snappy")
        pixels.append(HealpixPixel(order, pixel))
        total += int(rows.size)
    if not pixels:
        return  # one partition, no edge inside the catalogue: nothing to add
    hats.io.parquet_metadata.write_parquet_metadata(margin_dir)
    PartitionInfo(pixels).write_to_file(catalog_path=margin_dir)
    # its optional lists have defaults the pydantic mypy plugin does not see through hats' aliases
    TableProperties(  # type: ignore[call-arg]
        catalog_name=f"{survey}_margin",
        catalog_type=CatalogType.MARGIN,
        total_rows=total,
        ra_column=cols.ra,
        dec_column=cols.dec,
        healpix_column=HEALPIX_COLUMN,
        healpix_order=layout.HEALPIX_ORDER,
        primary_catalog=survey,
        margin_threshold=layout.MARGIN_ARCSEC,
    ).to_properties_file(margin_dir)


def _write_moc(version_dir: Path, hp29: np.ndarray) -> None:
    from mocpy import MOC

    cells = np.unique(hp29 >> (2 * (layout.HEALPIX_ORDER - layout.MOC_ORDER))).astype(np.uint64)
    if len(cells) == 0:
        return
    moc = MOC.from_healpix_cells(cells, np.full(len(cells), layout.MOC_ORDER, dtype=np.uint8), layout.MOC_ORDER)
    moc.save(str(version_dir / layout.MOC_NAME), format="fits", overwrite=True)


def _prune(sdir: Path, keep: list[Path]) -> None:
    keep_names = {p.name for p in keep}
    for version in layout.list_versions(sdir):
        if version.name not in keep_names:
            shutil.rmtree(version, ignore_errors=True)
    for stale in sdir.glob(".v*.tmp*"):
        shutil.rmtree(stale, ignore_errors=True)


def load_extracts(
    survey: str,
    files: list[Path],
    data_dir: Path,
    progress: bool = False,
    *,
    partition_rows: int | None = None,
    row_group_rows: int | None = None,
) -> LoadReport:
    """Add the stars of VizieR extracts to ``survey``'s local catalogue.

    ``partition_rows``/``row_group_rows`` override the layout defaults (at
    most 100,000 rows per partition pixel, 4,096 rows per row group).

    Raises BadInput for an unknown survey or an unreadable file (nothing is
    written then: the files are all read before the catalogue is touched).
    """
    t0 = time.perf_counter()
    try:
        sv = get_survey(survey)
    except KeyError as exc:
        raise BadInput(str(exc.args[0]), code=ErrorCode.UNKNOWN_SURVEY) from exc
    cols = Columns.for_survey(sv)
    files = [Path(f) for f in files]
    report = LoadReport(survey=sv.name, files=len(files))
    bar = _Progress(progress, len(files) + 1, f"load {sv.name}")
    try:
        extracts: list[Extract] = []
        for path in files:
            ex = read_extract(path, cols)
            extracts.append(ex)
            report.rows_read += ex.rows_read
            report.rows_without_position += ex.rows_without_position
            report.per_file.append(
                {"file": str(path), "rows_read": ex.rows_read, "rows_without_position": ex.rows_without_position}
            )
            bar.step(f"{path.name}: {len(ex):,} stars")

        sdir = layout.survey_dir(data_dir, sv.name)
        with _survey_lock(sdir):
            current = layout.read_pointer(sdir)
            stored_cols = [HEALPIX_COLUMN, cols.ra, cols.dec, *cols.value_columns]
            if current is not None and (current / layout.ATTACH_NAME).exists():
                raise Conflict(
                    f"{sv.name} is attached to an external HATS catalogue ({current / layout.ATTACH_NAME}); "
                    "local extracts cannot be added to it"
                )
            if current is not None and current.is_dir():
                bar.note(f"reading {current.name}")
                old = _read_version(current, cols)
            else:
                current = None
                old = {c: np.empty(0, dtype=np.int64 if c == HEALPIX_COLUMN else np.float64) for c in stored_cols}
            n_old = len(old[cols.ra])

            new_cols: dict[str, np.ndarray] = {}
            for c in [cols.ra, cols.dec, *cols.value_columns]:
                parts = [ex.columns[c] for ex in extracts]
                new_cols[c] = np.concatenate(parts) if parts else np.empty(0)
            n_new_rows = len(new_cols[cols.ra])

            # one row per star; the stored row (and then the earlier file) wins
            keys = layout.star_keys(
                np.concatenate([old[cols.ra], new_cols[cols.ra]]),
                np.concatenate([old[cols.dec], new_cols[cols.dec]]),
            )
            _, first = np.unique(keys, return_index=True)
            added = np.sort(first[first >= n_old]) - n_old
            report.rows_new = int(len(added))
            if report.rows_new == 0 and current is not None:
                report.rows_total = n_old
                report.version = current.name
                return report
            if report.rows_new == 0 and n_new_rows == 0:
                report.rows_total = 0
                return report

            from hats.pixel_math.spatial_index import compute_spatial_index

            add_ra = new_cols[cols.ra][added]
            add_dec = new_cols[cols.dec][added]
            add_hp = compute_spatial_index(add_ra, add_dec).astype(np.int64)
            hp29 = np.concatenate([old[HEALPIX_COLUMN].astype(np.int64), add_hp])
            order = np.argsort(hp29, kind="stable")
            data = {HEALPIX_COLUMN: hp29[order]}
            for c in [cols.ra, cols.dec, *cols.value_columns]:
                dtype = np.float64 if c in (cols.ra, cols.dec) else np.float32
                merged = np.concatenate(
                    [old[c].astype(dtype, copy=False), new_cols[c][added].astype(dtype, copy=False)]
                )
                data[c] = merged[order]
            report.rows_total = int(len(hp29))

            versions = layout.list_versions(sdir)
            number = max([layout.version_number(v) or 0 for v in versions], default=0) + 1
            final = sdir / f"v{number}"
            tmp = sdir / f".v{number}.tmp{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            try:
                report.partitions = _write_version(
                    tmp,
                    sv.name,
                    cols,
                    data,
                    bar,
                    partition_rows=partition_rows or layout.PARTITION_ROWS,
                    row_group_rows=row_group_rows or layout.ROW_GROUP_ROWS,
                )
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            layout.fsync_dir(sdir)
            layout.write_pointer(sdir, final)
            report.version = final.name
            _prune(sdir, keep=[final] + ([current] if current is not None else []))
            bar.step(f"{sv.name} {final.name}: {report.rows_total:,} stars")
        return report
    finally:
        report.seconds = time.perf_counter() - t0
        bar.close()


def _next_version(sdir: Path) -> int:
    return max([layout.version_number(v) or 0 for v in layout.list_versions(sdir)], default=0) + 1


def attach_catalogue(
    survey: str,
    source: str | Path,
    data_dir: Path,
    column_map: dict[str, str] | None = None,
) -> Path:
    """Serve ``survey`` from an existing HATS catalogue (local path or http(s) URL).

    ``column_map`` maps the survey's VizieR names (``RAJ2000``, ``Vmag``,
    ``e_Vmag`` ...) to the catalogue's columns; a name not mapped is looked up
    as is (case-insensitively), RA/Dec default to the catalogue's
    ``hats_col_ra``/``hats_col_dec``; bands the catalogue lacks come back NaN.
    The attachment is a new version (``v<N>/attached.json``) switched to like a
    load, so readers pick it up without a restart. Returns the version dir.
    """
    import hats

    try:
        sv = get_survey(survey)
    except KeyError as exc:
        raise BadInput(str(exc.args[0]), code=ErrorCode.UNKNOWN_SURVEY) from exc
    column_map = dict(column_map or {})
    source_str = str(source)
    if "://" not in source_str:
        source_str = str(Path(source_str).resolve())
    try:
        catalog = hats.read_hats(source_str, read_moc=False)
    except Exception as exc:
        raise BadInput(f"{source}: not a readable HATS catalogue: {exc}", code=ErrorCode.BAD_CATALOGUE_SOURCE) from exc
    from hats.catalog.catalog_collection import CatalogCollection
    from hats.catalog.healpix_dataset.healpix_dataset import HealpixDataset

    if isinstance(catalog, CatalogCollection):
        # a collection (catalogue + margins/indexes): serve its main catalogue
        source_str = str(catalog.main_catalog_dir)
        catalog = hats.read_hats(source_str, read_moc=False)
    if not isinstance(catalog, HealpixDataset) or catalog.catalog_info.catalog_type not in ("object", "source"):
        raise BadInput(f"{source}: not an object/source HATS catalogue", code=ErrorCode.BAD_CATALOGUE_SOURCE)
    names = list(catalog.schema.names) if catalog.schema is not None else []
    lower = {n.lower(): n for n in names}
    known = [sv.ra_column, sv.dec_column] + [c for b in sv.bands for c in (b.column, b.error_column)]

    def pick(ours: str, default: str | None = None) -> str | None:
        if ours in column_map:
            theirs = column_map[ours]
            if names and theirs not in names:
                raise BadInput(f"{source}: no column {theirs!r} (mapped from {ours!r})", code=ErrorCode.BAD_COLUMN_MAP)
            return theirs
        if default is not None:
            return default
        if ours in names:
            return ours
        if sum(c.lower() == ours.lower() for c in known) > 1:
            return None  # GaiaSP's Rmag and rmag: no case-insensitive guess
        return lower.get(ours.lower())

    info = catalog.catalog_info
    ra = pick(sv.ra_column, info.ra_column)
    dec = pick(sv.dec_column, info.dec_column)
    if not ra or not dec or (names and (ra not in names or dec not in names)):
        raise BadInput(
            f"{source}: no RA/Dec columns; map {sv.ra_column!r} and {sv.dec_column!r}", code=ErrorCode.BAD_COLUMN_MAP
        )
    bands = {}
    for band in sv.bands:
        bands[band.name] = (pick(band.column) or band.column, pick(band.error_column) or band.error_column)
    cols = Columns(ra=ra, dec=dec, bands=bands)

    sdir = layout.survey_dir(data_dir, sv.name)
    with _survey_lock(sdir):
        current = layout.read_pointer(sdir)
        final = sdir / f"v{_next_version(sdir)}"
        tmp = sdir / f".{final.name}.tmp{os.getpid()}"
        tmp.mkdir(parents=True)
        (tmp / layout.ATTACH_NAME).write_text(
            json.dumps(
                {
                    "source": source_str,
                    "columns": cols.to_json(),
                    "rows": info.total_rows,
                    # mapped columns the catalogue does not have: those bands answer NaN
                    "missing": [c for c in cols.value_columns if names and c not in names],
                },
                indent=1,
            )
        )
        os.rename(tmp, final)
        layout.write_pointer(sdir, final)
        _prune(sdir, keep=[final] + ([current] if current is not None else []))
    return final
