"""Local disk copies of the partition files of remote (HTTP/S3) HATS catalogues.

A cone over an attached remote catalogue reads whole partition files; the
first read of a partition downloads it once into
``<data_dir>/cache/<hash of the catalogue URL>/<path inside the catalogue>``
(written to a temporary name, then renamed, so a reader never sees half a
file and two processes may fill the cache at once). Later reads, in this
process or after a restart, open the local copy. The cache is bounded: when
it grows past ``max_bytes`` the least recently used files are deleted (the
file's mtime is refreshed on every use).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from pathlib import Path

_log = logging.getLogger(__name__)


class DiskCache:
    def __init__(self, root: Path, max_bytes: int = 4 << 30) -> None:
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._inflight: dict[str, threading.Lock] = {}
        self.downloads = 0
        self.hits = 0

    def catalogue_dir(self, source: str) -> Path:
        digest = hashlib.sha1(source.rstrip("/").encode()).hexdigest()[:16]
        return self.root / digest

    def local_path(self, source: str, remote) -> Path:
        """Where the copy of ``remote`` (a UPath under ``source``) lives."""
        full = str(remote)
        base = source.rstrip("/")
        rel = full[len(base) :].lstrip("/") if full.startswith(base) else hashlib.sha1(full.encode()).hexdigest()
        parts = [p for p in rel.split("/") if p not in ("", ".", "..")]
        return self.catalogue_dir(source).joinpath(*parts)

    def fetch(self, source: str, remote) -> str:
        """A local file holding ``remote``'s bytes (downloaded on first use)."""
        local = self.local_path(source, remote)
        if local.is_file():
            self.hits += 1
            _touch(local)
            return str(local)
        key = str(local)
        with self._lock:
            lock = self._inflight.setdefault(key, threading.Lock())
        with lock:  # one download per file at a time in this process
            if local.is_file():
                self.hits += 1
                return str(local)
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(f".{local.name}.{os.getpid()}.{threading.get_ident()}.part")
            started = time.perf_counter()
            try:
                with remote.fs.open(remote.path, "rb") as src, open(tmp, "wb") as dst:
                    while True:
                        chunk = src.read(8 << 20)
                        if not chunk:
                            break
                        dst.write(chunk)
                os.replace(tmp, local)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            finally:
                with self._lock:
                    self._inflight.pop(key, None)
            self.downloads += 1
            _log.info(
                "cached %s (%d bytes, %.0f ms)", remote, local.stat().st_size, 1000 * (time.perf_counter() - started)
            )
        self.evict()
        return str(local)

    def size(self) -> int:
        return sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file())

    def evict(self) -> None:
        """Delete least recently used files until the cache is within ``max_bytes``."""
        if not self.root.is_dir():
            return
        files = []
        for f in self.root.rglob("*"):
            try:
                if f.is_file() and not f.name.endswith(".part"):
                    st = f.stat()
                    files.append((st.st_mtime, st.st_size, f))
            except FileNotFoundError:
                continue
        total = sum(size for _, size, _ in files)
        if total <= self.max_bytes:
            return
        for _, size, f in sorted(files, key=lambda t: t[0]):
            if total <= self.max_bytes:
                break
            f.unlink(missing_ok=True)  # readers holding it open keep their copy (POSIX)
            total -= size


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)
