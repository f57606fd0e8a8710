"""Export benchmarks: speed of the image tower per runtime, and INT8 accuracy per quantization recipe.

    .venv/bin/python bench/bench_export.py speed      # torch eager vs ORT fp32 vs ORT INT8, batch 1 and 16
    .venv/bin/python bench/bench_export.py accuracy   # INT8 recipes vs fp32 on held-out real crops
    .venv/bin/python bench/bench_export.py time       # where `export bundle`'s minutes go, per --flavours
    .venv/bin/python bench/bench_export.py towers     # a bundle's tower files: ORT vs OpenVINO, batch 1 and 16

Both use the real EfficientNet-Lite0 tower (the packaged ImageNet weights). The accuracy table
compares the ImageNet classifier output of the tower, which the starter's embedding is a function
of (``sqrt(softmax(logits))``): top-1 agreement with fp32 overall and where fp32 is confident
(top-1 minus top-2 probability >= 0.1), and the cosine of those embeddings. Each recipe row adds
one step to the row above (``RECIPES``); cpu rows run ORT's x86 kernels, tensorrt rows run the QDQ
graph in exact arithmetic (what TensorRT computes). Calibration and
evaluation crops come from the same sample photos with different seeds (held out). Everything is
measured side by side in one run and printed as a table of ratios; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

THREADS = 2


def _tower():
    import torch

    from lit_edge.bundle import Preprocess
    from lit_edge.model import get_config
    from lit_edge.model.image_tower import ImageTower

    torch.set_num_threads(THREADS)
    cfg = get_config("lit-effnetlite0-minilm-classdist")
    tower = ImageTower(cfg.image, cfg.embed_dim, pretrained=True).eval()
    pre = Preprocess(
        input_size=(cfg.image.image_size,) * 2,
        mean=cfg.image.mean,
        std=cfg.image.std,
        crop_pct=cfg.image.crop_pct,
    )
    return tower, pre


def _session(path: Path, threads: int = THREADS):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _time(fn, batch: np.ndarray, min_s: float = 3.0, warmup: int = 2) -> float:
    """Images per second: median of repeated runs for at least ``min_s`` seconds."""
    for _ in range(warmup):
        fn(batch)
    rates, t_end = [], time.perf_counter() + min_s
    while time.perf_counter() < t_end or len(rates) < 3:
        t0 = time.perf_counter()
        fn(batch)
        rates.append(len(batch) / (time.perf_counter() - t0))
    return statistics.median(rates)


def _race(fns: dict, batch: np.ndarray, seconds: float) -> dict[str, float]:
    """CPU ms per image of each of ``fns``, called in turn (one call each, round after round) for
    ``seconds``: the median of the process's CPU time per call. Only one of them runs at a time, so
    the process's CPU time is that call's work (threads that spin instead of sleeping count
    against it); unlike images per second, it hardly moves when other work shares the cores."""
    for fn in fns.values():
        fn(batch)
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or min(len(v) for v in cpu.values()) < 5:
        for k, fn in fns.items():
            c0 = time.process_time()
            fn(batch)
            cpu[k].append(1000 * (time.process_time() - c0) / len(batch))
    return {k: float(np.median(v)) for k, v in cpu.items()}


# speed -----------------------------------------------------------------------------------------


def speed(args) -> None:
    import torch

    from lit_edge.export import calib, quantize
    from lit_edge.export import onnx_export as ox

    tower, pre = _tower()
    graph = ox.ImageGraph(tower, pre)
    tmp = Path(tempfile.mkdtemp(prefix="bench-export-"))
    fp32 = ox.export(graph, tmp / "fp32.onnx", pre)
    images = calib.calibration_set(pre, n=args.calib)
    int8 = quantize.quantize(fp32, tmp / "int8_cpu.onnx", images, quantize.QuantConfig(target="cpu"))
    every = quantize.QuantConfig(
        target="cpu", method="minmax", keep_first=0, dense_weights="s8", bias_correction=False
    )
    int8_all = quantize.quantize(fp32, tmp / "int8_cpu_all.onnx", images, every)
    s_fp32, s_int8, s_all = _session(fp32), _session(int8), _session(int8_all)
    photos = calib.calibration_set(pre, n=16, seed=99)

    def torch_eager(b):
        with torch.inference_mode():
            return graph(torch.from_numpy(b))

    rows = []
    for bs in (1, 16):
        batch = photos[:bs]
        r = {
            "torch eager fp32": _time(torch_eager, batch, args.seconds),
            "ORT fp32": _time(lambda b: s_fp32.run(None, {"image": b}), batch, args.seconds),
            "ORT INT8 (cpu)": _time(lambda b: s_int8.run(None, {"image": b}), batch, args.seconds),
            "ORT INT8 all layers": _time(lambda b: s_all.run(None, {"image": b}), batch, args.seconds),
        }
        rows.append((bs, r))
    print(
        f"\nimage tower speed, {THREADS} threads, {os.cpu_count()} cores, img/s (ratio vs torch eager | vs ORT fp32)"
    )
    print(f"{'batch':>5} | {'runtime':<20} | {'img/s':>7} | {'x eager':>7} | {'x ORT fp32':>10}")
    for bs, r in rows:
        for name, v in r.items():
            print(
                f"{bs:>5} | {name:<20} | {v:7.1f} | {v / r['torch eager fp32']:7.2f} | {v / r['ORT fp32']:10.2f}"
            )
    print(
        f"\nsize: fp32 {fp32.stat().st_size / 1e6:.1f} MB, INT8 (cpu, default) {int8.stat().st_size / 1e6:.1f} MB, "
        f"INT8 all layers {int8_all.stat().st_size / 1e6:.1f} MB (goal <= 6 MB)"
    )
    print(
        "ORT INT8 (cpu): the bundle's int8_cpu recipe (first 3 convs float, u8 dense weights);\n"
        "all layers: every conv INT8 with ORT's default u8s8 (least accurate on AVX2, and no faster:\n"
        "the 112x112 stem and first block run faster as fp32 NCHWc convs than as int8)"
    )
    print(f"load average {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores")


# towers: ORT vs OpenVINO on a bundle's own files -----------------------------------------------


def _ov_compiled(path: Path, streams: int = 1, precision: str = ""):
    import openvino as ov

    from lit_edge.device.backends.ov import OpenVinoConfig, properties

    cfg = OpenVinoConfig(streams=streams, threads=THREADS, precision=precision, cache=False)
    return ov.Core().compile_model(str(path), "CPU", properties(cfg, None))


def _ov_infer(compiled):
    req = compiled.create_infer_request()

    def run(b):
        req.infer({"image": b})
        return req.get_tensor("embedding").data

    return run


def _ov_streams(compiled, streams: int):
    """``streams`` requests at once from as many threads (what tag's workers do)."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(streams)
    runs = [_ov_infer(compiled) for _ in range(streams)]

    def run(b):
        parts = np.array_split(b, streams)
        list(pool.map(lambda rp: rp[0](rp[1]), zip(runs, parts, strict=True)))

    return run


def towers(args) -> None:
    from bench_device import cpu_features  # the one CPU description the benches print

    from lit_edge.bundle import load
    from lit_edge.export import calib
    from lit_edge.paths import default_bundle_dir

    bundle = load(Path(args.bundle) if args.bundle else default_bundle_dir())
    pre = bundle.manifest.preprocess
    photos = calib.calibration_set(pre, n=16, seed=99)
    print(
        f"\ntowers of {bundle.root}: CPU ms per image (median of calls taken in turn, "
        f"{args.seconds:.0f} s per column, {THREADS} threads), one run"
    )
    print(f"CPU: {cpu_features()}")
    print(
        f"{'tower file':<26} | {'batch':>5} | {'ORT':>6} | {'OV lat.':>7} | {'OV 2 str.':>9} | "
        f"{'OV bf16':>7} | {'ORT/OV lat.':>11} | {'ORT/OV best':>11} | {'OV best, img/s on 2 idle cores':>30}",
        flush=True,
    )
    for name in sorted(bundle.manifest.image_towers.values()):
        path = bundle.root / name
        sess = _session(path)
        lat, thr = _ov_compiled(path, precision="f32"), _ov_compiled(path, streams=THREADS, precision="f32")
        bf16 = _ov_compiled(path, precision="bf16")
        for bs in (1, 16):
            runs = {
                "ort": lambda b, s=sess: s.run(None, {"image": b}),
                "lat": _ov_infer(lat),
                "bf16": _ov_infer(bf16),
            }
            if bs >= THREADS:
                runs["str"] = _ov_streams(thr, THREADS)
            r = _race(runs, photos[:bs], args.seconds * len(runs))
            best = min(v for k, v in r.items() if k != "ort")
            print(
                f"{name:<26} | {bs:>5} | {r['ort']:6.1f} | {r['lat']:7.1f} | {r.get('str', float('nan')):9.1f} | "
                f"{r['bf16']:7.1f} | {r['ort'] / r['lat']:11.2f} | {r['ort'] / best:11.2f} | {2000 / best:30.0f}",
                flush=True,
            )
    print(
        "OV lat.: one request, PERFORMANCE_HINT=LATENCY on both threads (detect); OV 2 str.: the batch\n"
        "split over two requests on two streams from two threads (tag's workers); both with\n"
        "INFERENCE_PRECISION_HINT=f32 (the runtime's); OV bf16: LATENCY with the bf16 hint (OpenVINO's\n"
        "default where the CPU has AVX512_BF16/AMX)"
    )
    print(f"load average {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores")


# accuracy --------------------------------------------------------------------------------------

#: Each row adds one step to the row above it (cost of a step = its row vs the one above).
_S8_ALL = {
    "method": "minmax",
    "keep_first": 0,
    "dense_weights": "s8",
    "bias_correction": False,
    "keep_convs": [],
}
_S1 = {**_S8_ALL, "method": "percentile", "keep_first": 3}  # session 1's default
RECIPES = {
    # name: (quantization target, overrides of QuantConfig)
    "cpu all INT8, ORT's u8s8": ("cpu", _S8_ALL),
    "cpu + first 3 convs float (session 1)": ("cpu", _S1),
    "cpu + dense convs u8 weights": ("cpu", {**_S1, "dense_weights": "u8"}),
    "cpu + minmax ranges": ("cpu", {**_S1, "dense_weights": "u8", "method": "minmax"}),
    "cpu + bias correction": (
        "cpu",
        {**_S1, "dense_weights": "u8", "method": "minmax", "bias_correction": True},
    ),
    "cpu + mixed ranges (default)": ("cpu", {}),
    "cpu default, entropy ranges": ("cpu", {"method": "entropy"}),
    "cpu default, 7-bit dense weights": ("cpu", {"dense_weights": "s8r"}),
    "trt all INT8": ("tensorrt", _S8_ALL),
    "trt + first 3 convs float (session 1)": ("tensorrt", _S1),
    "trt + minmax, bias correction": ("tensorrt", {**_S1, "method": "minmax", "bias_correction": True}),
    "trt + mixed ranges (default)": ("tensorrt", {}),
}


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _score(ref_logits: np.ndarray, logits: np.ndarray) -> dict:
    p, q = _softmax(ref_logits), _softmax(logits)
    top2 = np.sort(p, 1)[:, -2:]
    confident = (top2[:, 1] - top2[:, 0]) >= 0.1
    agree = p.argmax(1) == q.argmax(1)
    cos = (np.sqrt(p) * np.sqrt(q)).sum(1)  # both are unit vectors: the starter's embeddings
    return {
        "agree": float(agree.mean()),
        "agree_confident": float(agree[confident].mean()),
        "n_confident": int(confident.sum()),
        "cos_mean": float(cos.mean()),
        "cos_min": float(cos.min()),
    }


def _run_exact(path: Path, images: np.ndarray) -> np.ndarray:
    """The QDQ graph with ONNX Runtime's optimizer off: every Q/DQ and conv runs as written, in
    float, i.e. exact integer arithmetic with int32 sums. That is what TensorRT computes; ORT's x86
    kernels are not (u8s8 sums saturate in int16 on AVX2 without VNNI)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return np.concatenate(
        [sess.run(None, {"image": images[i : i + 16]})[0] for i in range(0, len(images), 16)]
    )


def _held_out(args, prefix: str) -> tuple[Path, Path, np.ndarray, np.ndarray, np.ndarray]:
    """(work folder, fp32 logits graph, calibration crops, held-out crops, fp32 logits of those):
    the tower's ImageNet logits, which the starter's embedding is made of, on crops of the sample
    photos; calibration and evaluation crops differ by seed."""
    from lit_edge.export import calib
    from lit_edge.export import onnx_export as ox

    tower, pre = _tower()
    graph = ox.ImageGraph(tower.trunk, pre, normalize=False)
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    fp32 = ox.export(graph, tmp / "logits.onnx", pre, output="embedding")
    photos = [img for _, img in calib.sample_photos()]
    crop = calib.CropConfig(scale=(args.min_area, 1.0))
    cal = calib.random_crops(photos, args.calib, pre, replace(crop, seed=0))
    held = calib.random_crops(photos, args.eval, pre, replace(crop, seed=1))
    return tmp, fp32, cal, held, ox.run_ort(fp32, held, threads=THREADS)


def accuracy(args) -> None:
    from lit_edge.export import onnx_export as ox
    from lit_edge.export import quantize

    tmp, fp32, cal, held, ref = _held_out(args, "bench-quant-")
    s = _session(fp32)
    base = _time(lambda b: s.run(None, {"image": b}), held[:1], args.seconds)
    names = args.recipes or list(RECIPES)
    results = []
    print(
        f"\nINT8 vs fp32 on {args.eval} held-out crops ({args.calib} calibration crops, area >= {args.min_area:.0%})"
    )
    print(
        "cpu rows run ORT's x86 INT8 kernels (what the CPU runtime gets); trt rows run exact integer\n"
        "arithmetic (what TensorRT computes). x fp32 b1: speed vs ORT fp32 at batch 1, cpu rows only."
    )
    print(
        f"{'recipe':<40} | {'agree':>6} | {'conf.':>6} | {'cos mean':>8} | {'cos min':>7} | {'x fp32 b1':>9} | {'quant s':>7}"
    )
    for name in names:
        target, over = RECIPES[name] if name in RECIPES else ("cpu", json.loads(name))
        over = dict(over)
        target = over.pop("target", target)
        qcfg = quantize.QuantConfig(
            target=target, **{k: tuple(v) if isinstance(v, list) else v for k, v in over.items()}
        )
        t0 = time.perf_counter()
        cache = tmp / f"ranges-{qcfg.target}-{qcfg.method}-{qcfg.percentile}.json"
        path = quantize.quantize(fp32, tmp / "q.onnx", cal, qcfg, calib_cache=cache)
        qs = time.perf_counter() - t0
        exact = qcfg.target == "tensorrt"
        r = _score(ref, _run_exact(path, held) if exact else ox.run_ort(path, held, threads=THREADS))
        speed = "-"
        if not exact:
            sq = _session(path)
            r["speed_vs_fp32_b1"] = (
                _time(lambda b, sq=sq: sq.run(None, {"image": b}), held[:1], args.seconds) / base
            )
            speed = f"{r['speed_vs_fp32_b1']:.2f}"
        print(
            f"{name[:40]:<40} | {r['agree']:6.1%} | {r['agree_confident']:6.1%} | {r['cos_mean']:8.4f} | "
            f"{r['cos_min']:7.4f} | {speed:>9} | {qs:7.0f}",
            flush=True,
        )
        results.append({"recipe": name, "config": asdict(qcfg), **r})
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def export_time(args) -> None:
    """``export bundle`` of the laptop model (EfficientNet-Lite0 + MiniLM) with a 20-species list, once
    per ``--flavours`` set, in one run: seconds per step (``extra["export_seconds"]`` of each bundle)."""
    import torch

    from lit_edge import bundle as bf
    from lit_edge.export.writer import BundleConfig, build_bundle
    from lit_edge.model import create_model
    from lit_edge.starter import species_list_path

    torch.set_num_threads(THREADS)
    tmp = Path(tempfile.mkdtemp(prefix="bench-export-time-"))
    lines = species_list_path().read_text(encoding="utf-8").splitlines()
    species = tmp / "species.csv"
    species.write_text("\n".join(lines[: 1 + args.species]) + "\n", encoding="utf-8")
    model = create_model(args.model)
    runs = {}
    for flavours in args.flavours:
        cfg = BundleConfig(flavours=tuple(flavours.split(",")))
        t0 = time.perf_counter()
        out = build_bundle(model, species, tmp / flavours.replace(",", "+"), cfg=cfg)
        total = time.perf_counter() - t0
        extra = bf.load(out).manifest.extra
        steps = dict(extra["export_seconds"])
        for flavour, parts in extra.get("export_steps", {}).items():
            for name, sec in parts.items():
                steps[f"  {flavour}: {name}"] = sec
        steps["classifier graphs, checksums, verify"] = total - sum(extra["export_seconds"].values())
        steps["total"] = total
        runs[flavours] = steps
    names = list(dict.fromkeys(k for steps in runs.values() for k in steps))
    names.append(names.pop(names.index("total")))
    print(
        f"\nexport bundle, {args.model}, {args.species} species, {THREADS} threads, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: seconds per step"
    )
    print(f"{'step':<40} | " + " | ".join(f"{f:>28}" for f in runs))
    for name in names:
        cells = [f"{runs[f][name]:28.1f}" if name in runs[f] else f"{'-':>28}" for f in runs]
        print(f"{name:<40} | " + " | ".join(cells))
    first = next(iter(runs.values()))["total"]
    print(
        f"{'x time of the first column':<40} | "
        + " | ".join(f"{r['total'] / first:28.2f}" for r in runs.values())
    )


def _ov_run_all(compiled, images: np.ndarray) -> np.ndarray:
    run = _ov_infer(compiled)
    return np.concatenate([np.array(run(images[i : i + 16])) for i in range(0, len(images), 16)])


def _nncf_quantize(fp32: Path, cal: np.ndarray, out: Path) -> Path:
    """NNCF's post-training quantization of the fp32 graph (its default preset), saved as OpenVINO IR."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(fp32))
    data = nncf.Dataset([cal[i : i + 1] for i in range(len(cal))])
    q = nncf.quantize(model, data, subset_size=len(cal))
    ov.save_model(q, str(out))
    return out


def accuracy_openvino(args) -> None:
    """Which tower suits OpenVINO: fp32 (and its bf16 hint), the bundle's two QDQ graphs, NNCF's own."""
    from bench_device import cpu_features

    from lit_edge.export import quantize

    tmp, fp32, cal, held, ref = _held_out(args, "bench-ov-")
    s = _session(fp32)
    base = _time(lambda b: s.run(None, {"image": b}), held[:16], args.seconds)
    # "" = OpenVINO's own default precision for the CPU: bf16 where the CPU has AVX512_BF16 or AMX
    variants: dict[str, tuple[Path, str]] = {
        "fp32, f32 hint": (fp32, "f32"),
        "fp32, default hint": (fp32, ""),
    }
    for target in ("tensorrt", "cpu"):
        t0 = time.perf_counter()
        q = quantize.quantize(fp32, tmp / f"int8_{target}.onnx", cal, quantize.QuantConfig(target=target))
        print(f"quantized int8_{target} in {time.perf_counter() - t0:.0f} s", flush=True)
        variants[f"int8_{target} QDQ, f32 hint"] = (q, "f32")
        variants[f"int8_{target} QDQ, default hint"] = (q, "")
    if not args.no_nncf:
        try:
            t0 = time.perf_counter()
            nncf_ir = _nncf_quantize(fp32, cal, tmp / "nncf.xml")
            variants["NNCF PTQ of fp32, f32 hint"] = (nncf_ir, "f32")
            variants["NNCF PTQ of fp32, default hint"] = (nncf_ir, "")
            print(f"NNCF quantized in {time.perf_counter() - t0:.0f} s", flush=True)
        except ImportError:
            print("nncf is not installed: no NNCF row")
    print(f"\nOpenVINO towers vs ORT fp32 on {args.eval} held-out crops ({args.calib} calibration crops)")
    default = _ov_compiled(fp32).get_property("INFERENCE_PRECISION_HINT")
    print(f"CPU: {cpu_features()}; OpenVINO's default precision hint here: {default}")
    print(f"x ORT fp32 b16: speed at batch 16 (LATENCY, {THREADS} threads)")
    print(
        f"{'OpenVINO runs':<36} | {'agree':>6} | {'conf.':>6} | {'cos mean':>8} | {'cos min':>7} | {'x ORT fp32 b16':>14}"
    )
    results = []
    for name, (path, precision) in variants.items():
        compiled = _ov_compiled(path, precision=precision)
        r = _score(ref, _ov_run_all(compiled, held))
        r["speed_vs_ort_fp32_b16"] = _time(_ov_infer(compiled), held[:16], args.seconds) / base
        print(
            f"{name:<36} | {r['agree']:6.1%} | {r['agree_confident']:6.1%} | {r['cos_mean']:8.4f} | "
            f"{r['cos_min']:7.4f} | {r['speed_vs_ort_fp32_b16']:14.2f}",
            flush=True,
        )
        results.append({"variant": name, **r})
    print("goals: agree >= 93 %, confident >= 99 %, cosine >= 0.993")
    print(f"load average {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--calib", type=int, default=128)
    sp.add_argument("--seconds", type=float, default=3.0)
    tw = sub.add_parser("towers")
    tw.add_argument("--bundle", default="", help="bundle folder (default: the starter)")
    tw.add_argument("--seconds", type=float, default=3.0)
    ac = sub.add_parser("accuracy")
    ac.add_argument("--calib", type=int, default=256)
    ac.add_argument("--eval", type=int, default=256)
    ac.add_argument(
        "--min-area", type=float, default=0.25, help="smallest crop, as a fraction of the photo area"
    )
    ac.add_argument("--seconds", type=float, default=2.0)
    ac.add_argument("--json", default="")
    ac.add_argument(
        "--openvino", action="store_true", help="OpenVINO's candidate towers instead of the recipes"
    )
    ac.add_argument("--no-nncf", action="store_true", help="skip the NNCF row (with --openvino)")
    ac.add_argument("recipes", nargs="*", help="recipe names, or QuantConfig overrides as JSON")
    tm = sub.add_parser("time")
    tm.add_argument("--model", default="lit-effnetlite0-minilm")
    tm.add_argument("--species", type=int, default=20)
    tm.add_argument("flavours", nargs="*", default=["fp32,int8_cpu,int8_tensorrt", "fp32,int8_cpu", "fp32"])
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    if args.what == "accuracy" and args.openvino:
        accuracy_openvino(args)
    else:
        {"speed": speed, "towers": towers, "accuracy": accuracy, "time": export_time}[args.what](args)


if __name__ == "__main__":
    main()
