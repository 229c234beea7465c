"""How the inner loops of the calibration core and of the catalogue reader are compiled.

The loops that dominate a calibration (the positional match, the robust
fit, the completeness limit; in the gateway, reading a text catalogue's
rows) are written as
plain loops and compiled with numba: with numpy alone each of them is a
chain of small array operations whose call overhead, not arithmetic, sets
the time. Compiled code is cached on disk (``__pycache__`` next to the
module, or ``NUMBA_CACHE_DIR``), so only the first process after an
install compiles; each service does that at start-up, before it says it
is ready (``warm_up`` in the calibration core and the catalogue reader).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: cache: compile once per install; nogil: the plot thread keeps running;
#: error_model numpy: a division by zero gives inf/nan as in numpy, not an exception
JIT: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy"}


def kernel_array(a, dtype=float):
    """``a`` as a C-contiguous, writeable array of ``dtype`` for a compiled kernel.

    numba compiles one version of a kernel per array layout and per
    read-only flag; arrays decoded from a NATS message are read-only, the
    ones computed here are not. Copying the few read-only ones keeps one
    compiled version, the one :func:`warm_up` has made, instead of a
    second compilation during a worker's first real upload.
    """
    out = np.ascontiguousarray(a, dtype=dtype)
    return out if out.flags.writeable else out.copy()
