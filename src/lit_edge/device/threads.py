"""Cores the runtime may use, and numpy's BLAS kept single-threaded.

Why: the classifier's matrix product (``[batch, D] @ [D, C]``) is tiny, and OpenBLAS would split it
over every core with spinning threads. Next to ONNX Runtime and the decode pool that costs more
than it saves: measured here, 12-20 ms of CPU per photo, as much as the image tower itself.
``OPENBLAS_NUM_THREADS`` only works before numpy is imported, which the CLI cannot guarantee, so
threadpoolctl tells the BLAS libraries already loaded.
"""

from __future__ import annotations

import os

from threadpoolctl import threadpool_limits


def limit_blas_threads(n: int = 1) -> None:
    """Set every loaded BLAS to ``n`` threads, for the rest of the process."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(n))  # for anything started from here on
    threadpool_limits(limits=n, user_api="blas")


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity (taskset, cgroup cpusets), not the host's,
    and no more than a Slurm task was given (``--cpus-per-task``), which clusters that do not pin
    tasks to cores (``TaskPlugin=task/none``) leave to the program."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 2
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return min(cores, int(slurm)) if slurm.isdigit() and int(slurm) > 0 else cores
