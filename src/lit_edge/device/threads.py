"""Keep numpy's BLAS single-threaded in the runtime.

Why: the classifier's matrix product (``[batch, D] @ [D, C]``) is tiny, and OpenBLAS would split it
over every core with spinning threads. Next to ONNX Runtime and the decode pool that costs more
than it saves: measured here, 12-20 ms of CPU per photo, as much as the image tower itself.
``OPENBLAS_NUM_THREADS`` only works before numpy is imported, which the CLI cannot guarantee, so
the loaded OpenBLAS is found in ``/proc/self/maps`` and told directly (Linux; elsewhere a no-op).
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

_SETTERS = (
    "openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "scipy_openblas_set_num_threads64_",
)


def limit_blas_threads(n: int = 1) -> int:
    """Set every loaded OpenBLAS to ``n`` threads; returns how many libraries were told."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(n))  # for anything started from here on
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = {ln.split()[-1] for ln in f if "openblas" in ln.lower()}
        libs = {p for p in paths if p.startswith("/") and (p.endswith(".so") or ".so." in p)}
    except OSError:
        return 0
    told = 0
    for path in sorted(libs):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SETTERS:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(ctypes.c_int(n))
                told += 1
                break
    log.debug("OpenBLAS threads set to %d in %d librar(ies)", n, told)
    return told
