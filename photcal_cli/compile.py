"""`photcal compile`: compile the numba kernels into their on-disk cache.

Done once per install (``make`` does it, and so does ``photcal run`` before
it starts the services), so that no service spends its first seconds
compiling; see :mod:`shared.jit`.
"""

from __future__ import annotations

import time


def compile_kernels() -> float:
    """Compile (or load from the cache) every kernel; returns the seconds it took."""
    from services.calibrate.warmup import warm_up as warm_up_core
    from services.ingest.rows import warm_up as warm_up_reader

    started = time.perf_counter()
    warm_up_core()
    warm_up_reader()
    return time.perf_counter() - started
