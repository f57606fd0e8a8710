"""The runtime's typed configs: the one home of every default of ``tag`` and ``detect``.

The CLI reads its option defaults from these dataclasses (``lit-edge detect --config FILE`` then
overrides them through click's ``default_map``), so a default is written once, here. The module
imports no OpenCV and no ONNX Runtime: ``lit-edge --help`` loads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ClassifyConfig:
    """How scores become a decision (:mod:`lit_edge.device.classify`)."""

    top_k: int = 5
    threshold: float = 0.5  # probability the decision must reach
    margin: float = 0.1  # how far the best species must lead the runner-up to be named
    species_file: Path | None = None  # restrict to these scientific names (one per line)
    blank_threshold: float = 0.5  # share of the embedding in the background subspace: 'blank'


@dataclass(frozen=True)
class BackendConfig:
    """Which backend runs the image tower, on which tower variant, with how many threads."""

    backend: str = "auto"  # 'auto' or a registered backend name (lit_edge.device.backends)
    precision: str | None = None  # fp32 | int8; None = the backend's own default
    threads: int = 0  # intra-op threads per call; 0 = planned from the cores and the workers


@dataclass(frozen=True)
class EngineConfig:
    """Which bundle, which backend, how to decide."""

    bundle: Path | None = None  # None = lit_edge.paths.default_bundle_dir()
    backend: BackendConfig = field(default_factory=BackendConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    verify: bool = True  # check the bundle's checksums before trusting it


@dataclass(frozen=True)
class CaptureConfig:
    """How a live source is opened and sampled."""

    width: int = 1280  # requested capture size (CSI, V4L2)
    height: int = 720
    capture_fps: int = 30
    flip: int = 0  # nvvidconv flip-method for CSI
    fps: float = 0.0  # at most this many frames per second to classify (0 = no limit)
    every: int = 1  # classify every Nth frame
    motion: float = 0.0  # classify only frames where this fraction of pixels changed (0 = off)
    queue_size: int = 4
    reconnect: bool = True  # reopen a live source that drops
    max_reconnects: int = -1  # -1 = forever
    backoff_s: float = 0.5  # first wait before reopening; doubles up to backoff_max_s
    backoff_max_s: float = 30.0
    timeout_s: float = 10.0  # open/read timeout for network streams


@dataclass(frozen=True)
class TagConfig:
    """Everything one ``lit-edge tag`` run needs."""

    source: str  # folder, image file or glob
    db: Path
    engine: EngineConfig = field(default_factory=EngineConfig)
    retry_failed: bool = False
    batch_size: int = 0  # photos per inference; 0 = planned for the backend
    workers: int = 0  # inference workers (batches run at once); 0 = planned for the backend
    decoders: int = 0  # decode threads; 0 = planned from the cores
    embeddings: bool = True  # keep each photo's image embedding (float16) for review and learn
    commit_every: int = 256  # records per database transaction


@dataclass(frozen=True)
class DetectConfig:
    """Everything one ``lit-edge detect`` run needs."""

    source: str
    db: Path = Path("detections.db")
    engine: EngineConfig = field(default_factory=EngineConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    batch_size: int = 2  # most frames per inference; a batch never waits to fill
    workers: int = 1  # inference workers (batches side by side); 1 = the lowest latency
    embeddings: bool = True  # keep each frame's image embedding (float16) for review and learn
    duration_s: float = 0.0  # stop after this many seconds (0 = until stopped / source ends)
    status_every_s: float = 10.0  # a status line this often (0 = never)
    print_detections: bool = True  # a line per frame that names a taxon (not uncertain or blank)
    display: bool = False  # show frames in a window (needs OpenCV with GUI; headless is the default)
    save_frames: Path | None = None  # save confident frames as JPEG here
    save_min_score: float = 0.8
    save_quota_mb: float = 500.0
    commit_every: int = 32
