"""How a run uses the machine: inference workers, intra-op threads, batch size, decode threads.

A plan depends on the backend that really opened (its :class:`~lit_edge.device.backends.Device`),
so it is made per candidate backend: ``backends.create`` asks for the threads of each candidate
before opening it, and the pipeline plans again from the opened one. An ``auto`` run that falls
back from a GPU to the CPU therefore gets the CPU's plan, not one all-core session per worker.

Why several inference workers of one intra-op thread each on a CPU, rather than one session on
all cores: EfficientNet-Lite0's convolutions are small, and splitting each of them over two
threads costs synchronisation. On a quiet 2-core machine the INT8 tower did 94 img/s as one
two-thread call and 131-152 as two one-thread calls side by side (``bench/bench_device.py``
prints both). The workers share one ONNX Runtime session (``run`` is thread-safe), which holds
the weights once; on OpenVINO they share one compiled model, with a stream and an infer request
per worker (``lit_edge.device.backends.ov.ov_config`` turns these threads into streams).
"""

from __future__ import annotations

from dataclasses import dataclass

from lit_edge.device.backends import BackendSpec, Device
from lit_edge.device.config import DetectConfig, TagConfig
from lit_edge.device.threads import usable_cores


@dataclass(frozen=True)
class Plan:
    """What a run made of its config's zeros (auto), recorded in the run's settings."""

    workers: int  # inference workers: batches run at once
    threads: int  # intra-op threads per inference call
    batch_size: int
    decoders: int  # decode threads (0: the source decodes, as a live camera's thread does)
    queued: int = 1  # batches queued behind the running ones: 1 keeps workers busy, 0 keeps latency low
    fill_batches: bool = True  # wait for a full batch (throughput) or run what is there (latency)


def cpu_workers(cores: int) -> int:
    """Inference workers on a CPU: one per core (one intra-op thread each), at most 4.

    The cap bounds memory: every worker has a batch in flight in ONNX Runtime's activation arena
    (10-20 MB per image). Past four, the leftover cores become intra-op threads of each call
    (a guess: only 2 cores were at hand to measure).
    """
    return max(1, min(cores, 4))


def auto_batch_size(spec: BackendSpec) -> int:
    """Small batches on a CPU, larger on a GPU.

    On a CPU a convolutional tower costs about the same per image at batch 1 or 32 (batch 8 was
    slower here), but ONNX Runtime's activation arena grows with the images in flight
    (EfficientNet-Lite0 INT8: 10-20 MB each), and every worker has a batch in flight: a batch of 2
    keeps ``tag`` well inside its 250 MB memory budget. A GPU needs batches to be busy.
    """
    return 2 if spec.device is Device.CPU else 16


def plan_tag(config: TagConfig, spec: BackendSpec, cores: int | None = None) -> Plan:
    """Throughput: one worker per core on a CPU, one on a GPU (the decode pool keeps it fed)."""
    cores = cores or usable_cores()
    workers = config.workers or (cpu_workers(cores) if spec.device is Device.CPU else 1)
    threads = config.engine.backend.threads or max(1, cores // workers)
    batch = config.batch_size or auto_batch_size(spec)
    return Plan(workers=workers, threads=threads, batch_size=batch, decoders=config.decoders or cores)


def plan_detect(config: DetectConfig, spec: BackendSpec, cores: int | None = None) -> Plan:
    """Latency: by default one worker with every core, and a batch never waits to fill.

    ``workers`` > 1 runs batches side by side, each on fewer intra-op threads; it is not the
    default for a video file either: on 2 cores the source thread's video decoding already fills
    the gaps the two-thread model leaves, and in ``bench/bench_device.py`` two workers were not
    faster.
    """
    cores = cores or usable_cores()
    workers = max(1, config.workers)
    threads = config.engine.backend.threads or max(1, cores // workers)
    return Plan(
        workers=workers,
        threads=threads,
        batch_size=config.batch_size,
        decoders=0,
        queued=0,
        fill_batches=False,
    )
