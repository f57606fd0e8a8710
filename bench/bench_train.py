"""Training throughput: lit-edge with the feature cache vs open_clip's own trainer, side by side.

Same data (a toy iNat set of real JPEGs, captions "a photo of <scientific name>."), same towers
(locked image tower + MiniLM text tower with a linear head), same batch size, same number of epochs,
on this machine, each run as its own process:

- open_clip: ``python -m open_clip_train.main --lock-image`` on a CSV of image paths and captions,
  with the model given as ``local-dir:`` (an ``open_clip_config.json`` we write; no hub);
- lit-edge: ``python -m lit_edge.train run train/smoke.py`` with ``cache.dir`` set, so the locked tower
  runs once (the cache build is inside the end-to-end time) and steps run only the text tower.

Per step: the median step time each trainer logs (open_clip's ``Batch (t)`` with
``--log-every-n-steps 1``; lit-edge's ``train/samples_per_s`` with ``log_every=1``), first steps
dropped. End to end: wall time of the whole process(es) for the run. Also samples/s of 1 vs 2 gloo
processes (torchrun) on the same cached data and global batch.

Why end to end gains less than per step: the cache build still runs the locked tower once over the
data, so with per-step costs ``a`` (locked tower, what open_clip pays every step) and ``t`` (text
tower), an E-epoch run gains about ``E(a + t) / (a + E t)`` (< E) if the cache pass costs what
open_clip's forward does. The table prints that estimate from the measured step times beside the
measured gain; a measured gain above it means the cache pass (eval mode, no autograd, decoded once)
is cheaper than open_clip's per-step forward and data loading.

The gloo row uses a larger global batch (``--gloo-batch``): each step all-reduces the whole text
tower's gradient (MiniLM: 22 M floats), a fixed cost that tiny batches cannot amortise.

    python bench/bench_train.py                 # EfficientNet-Lite0 and ViT-B/16 (random weights)
    python bench/bench_train.py --towers effnet --epochs 3
    python bench/bench_train.py --towers vitl16 --skip-gloo   # the paper's tower (slow on a CPU)
    python bench/bench_train.py --towers none   # only the 1 vs 2 gloo processes row
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "train" / "smoke.py"
PY = sys.executable

#: tower key -> (label, timm name, weights for lit-edge, image size)
TOWERS = {
    "effnet": ("EfficientNet-Lite0 (packaged)", "tf_efficientnet_lite0", "package:efficientnet_lite0", 224),
    "vitb16": ("ViT-B/16 (random init)", "vit_base_patch16_224", "", 224),
    "vitl16": ("ViT-L/16 (random init, the paper's tower)", "vit_large_patch16_224", "", 224),
}


def minilm_folder() -> str:
    from lit_edge.model import sources

    return str(sources.resolve_package("package:all_minilm_l6_v2"))


def write_data(root: Path, images: int, classes: int) -> Path:
    """The toy iNat set, plus the same images as open_clip's CSV (filepath, title)."""
    from lit_edge.data import DataConfig, load_dataset
    from lit_edge.data.toy import write_toy_inat

    write_toy_inat(
        root, classes=classes, train_per_class=max(1, images // classes), val_per_class=1, size=160
    )
    data = load_dataset(DataConfig(format="inat", root=str(root), split="train"))
    with open(root / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filepath", "title"])
        for p, y in zip(data.paths, data.labels.tolist(), strict=True):
            w.writerow([str(p), f"a photo of {data.taxa[y]['scientific_name']}."])
    return root


def model_files(tmp: Path, key: str) -> tuple[Path, Path]:
    """The same architecture twice: a lit-edge model config JSON and an open_clip local-dir."""
    _, timm_name, weights, size = TOWERS[key]
    folder = minilm_folder()
    ours = {
        "name": f"bench-{key}",
        "embed_dim": 384,
        "image": {
            "timm_name": timm_name,
            "weights": weights,
            "embed": "proj",
            "image_size": size,
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "lock": True,
        },
        "text": {
            "hf_model": "package:all_minilm_l6_v2",
            "pooler": "mean",
            "context_length": 32,
            "proj": "linear",
            "output": "l2",
        },
    }
    ours_path = tmp / f"lit-{key}.json"
    ours_path.write_text(json.dumps(ours))
    oc_dir = tmp / f"openclip-{key}"
    oc_dir.mkdir(exist_ok=True)
    oc = {
        "model_cfg": {
            "embed_dim": 384,
            "vision_cfg": {
                "timm_model_name": timm_name,
                "timm_model_pretrained": False,
                "timm_pool": "avg",
                "timm_proj": "linear",
                "image_size": size,
            },
            "text_cfg": {
                "hf_model_name": folder,
                "hf_tokenizer_name": folder,
                "hf_proj_type": "linear",
                "hf_pooler_type": "mean_pooler",
                "context_length": 32,
            },
        },
        "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    }
    (oc_dir / "open_clip_config.json").write_text(json.dumps(oc))
    # open_clip reads a local-dir model's tokenizer from that dir: give it MiniLM's tokenizer files.
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (Path(folder) / name).is_file():
            shutil.copy(Path(folder) / name, oc_dir / name)
    return ours_path, oc_dir


def _env(threads: int) -> dict:
    return {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }


def _run(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"failed ({res.returncode}): {' '.join(cmd)}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return wall, res.stdout + res.stderr


def _median_after_warmup(xs: list[float], drop: int = 2) -> float:
    xs = xs[drop:] if len(xs) > drop + 2 else xs
    return statistics.median(xs)


def run_open_clip(tmp: Path, oc_dir: Path, data: Path, batch: int, epochs: int, threads: int) -> dict:
    logs = tmp / f"oc-logs-{oc_dir.name}"
    cmd = [
        PY,
        "-m",
        "open_clip_train.main",
        "--model",
        f"local-dir:{oc_dir}",
        "--lock-image",
        "--train-data",
        str(data / "train.csv"),
        "--dataset-type",
        "csv",
        "--csv-separator",
        ",",
        "--csv-img-key",
        "filepath",
        "--csv-caption-key",
        "title",
        "--batch-size",
        str(batch),
        "--epochs",
        str(epochs),
        "--workers",
        "0",
        "--lr",
        "1e-3",
        "--warmup",
        "2",
        "--wd",
        "0.1",
        "--precision",
        "fp32",
        "--log-every-n-steps",
        "1",
        "--logs",
        str(logs),
        "--name",
        "bench",
        "--save-frequency",
        str(epochs),
        "--zeroshot-frequency",
        "0",
        "--val-frequency",
        "0",
        "--report-to",
        "",
        "--seed",
        "0",
    ]
    wall, out = _run(cmd, _env(threads))
    steps = [float(m) for m in re.findall(r"Batch \(t\): ([0-9.]+)", out)]
    if not steps:
        sys.exit(f"open_clip logged no steps:\n{out[-3000:]}")
    return {"step_s": _median_after_warmup(steps), "wall_s": wall, "steps": len(steps)}


def run_lit(
    tmp: Path,
    model_json: Path,
    data: Path,
    batch: int,
    epochs: int,
    threads: int,
    nproc: int = 0,
    tag: str = "",
) -> dict:
    out = tmp / f"lit-run-{model_json.stem}{tag}"
    cache = tmp / f"lit-cache-{model_json.stem}"
    sets = [
        f"model={model_json}",
        f"data.root={data}",
        f"cache.dir={cache}",
        f"out_dir={out}",
        f"global_batch={batch}",
        f"epochs={epochs}",
        "log_every=1",
        "optim.warmup_steps=2",
        f"checkpoint_every={10**9}",
        "cache.batch_size=8",
    ]
    launcher = (
        [PY, "-m", "lit_edge.train"]
        if not nproc
        else [
            PY,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "lit_edge.train",
        ]
    )
    cmd = [*launcher, "run", str(SMOKE)]
    for s in sets:
        cmd += ["--set", s]
    wall, _ = _run(cmd, _env(threads))
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    sps = [r["train/samples_per_s"] for r in rows if "train/samples_per_s" in r]
    return {
        "step_s": batch / _median_after_warmup(sps),
        "sps": _median_after_warmup(sps),
        "wall_s": wall,
        "steps": len(sps),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--towers", default="effnet,vitb16")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gloo-batch", type=int, default=64)
    ap.add_argument("--gloo-tower", default="effnet", choices=sorted(TOWERS))
    ap.add_argument("--skip-gloo", action="store_true")
    args = ap.parse_args()
    console = Console(width=160)
    table = Table(
        title=f"LiT training, {args.images} images, batch {args.batch}, {args.epochs} epochs, "
        f"CPU x{args.threads} threads"
    )
    for col in ("image tower", "measure", "open_clip --lock-image", "lit-edge (feature cache)", "ratio"):
        table.add_column(col, justify="right" if col in ("ratio",) else "left")
    with tempfile.TemporaryDirectory(prefix="bench-train-") as t:
        tmp = Path(t)
        data = write_data(tmp / "data", args.images, args.classes)
        for key in [k for k in args.towers.split(",") if k and k != "none"]:
            label = TOWERS[key][0]
            ours_json, oc_dir = model_files(tmp, key)
            console.log(f"{label}: open_clip ...")
            oc = run_open_clip(tmp, oc_dir, data, args.batch, args.epochs, args.threads)
            console.log(f"{label}: lit-edge ...")
            lit = run_lit(tmp, ours_json, data, args.batch, args.epochs, args.threads)
            table.add_row(
                label,
                "per step (s)",
                f"{oc['step_s']:.3f}",
                f"{lit['step_s']:.3f}",
                f"{oc['step_s'] / lit['step_s']:.1f}x",
            )
            table.add_row(
                label,
                f"{args.epochs}-epoch run, end to end (s)",
                f"{oc['wall_s']:.1f}",
                f"{lit['wall_s']:.1f}",
                f"{oc['wall_s'] / lit['wall_s']:.1f}x",
            )
            a = max(oc["step_s"] - lit["step_s"], 0.0)
            t_ = lit["step_s"]
            table.add_row(
                label,
                f"{args.epochs}-epoch estimate E(a+t)/(a+Et) from step times",
                "",
                "",
                f"{args.epochs * (a + t_) / (a + args.epochs * t_):.1f}x",
            )
            console.log(f"{label}: open_clip {oc}, lit-edge {lit}")
        if not args.skip_gloo:
            key = args.gloo_tower
            ours_json, _ = model_files(tmp, key)
            gb = min(args.gloo_batch, args.images // 2 * 2)  # the trainer refuses a batch > data
            one = run_lit(tmp, ours_json, data, gb, args.epochs, 1, nproc=1, tag="-n1")
            two = run_lit(tmp, ours_json, data, gb, args.epochs, 1, nproc=2, tag="-n2")
            table.add_row(
                TOWERS[key][0],
                f"samples/s, 1 vs 2 gloo processes (1 thread each, batch {gb})",
                f"1 proc: {one['sps']:.1f}",
                f"2 procs: {two['sps']:.1f}",
                f"{two['sps'] / one['sps']:.2f}x",
            )
    console.print(table)


if __name__ == "__main__":
    main()
