"""Decisions on real, labelled field photos: what a user would accept, review, and get wrong.

Tags every photo of FOLDER's ``labels.csv`` (default: ``../shared/fieldset``, or
``$LIT_EDGE_FIELDSET``) with BUNDLE through the runtime's own parts (OpenCV decoding, the bundle's
framing, the ONNX Runtime tower, the classifier), then prints, for every photo, expected vs decided
with its score, and:

- counts: right species, right but coarser (a genus or family of the expected species),
  ``animal`` without a name, blank/human/vehicle right, uncertain, wrong taxon, wrong outcome;
- a risk-coverage table: decisions kept at score >= 0.5 / 0.7 / 0.9 and how many are right;
- the expected calibration error (ECE, 10 bins);
- the wrong decisions at a score >= 0.9.

Nothing is fitted here: the fieldset is a test set (see ``lit_edge.scorecard``).

    .venv/bin/python bench/bench_fieldset.py BUNDLE [FOLDER]
    .venv/bin/python bench/bench_fieldset.py BUNDLE --framing squash,letterbox,center_crop

``--framing`` measures other framings of the same bundle side by side (one table row each, the
per-photo list for the first): ``center_crop`` (the bundle's ``crop_pct``), ``full_crop`` (the
whole short side), ``squash``, ``letterbox``. The heron photos need the grey heron in the bundle:
``lit-edge export species CHECKPOINT --bundle BUNDLE --add "Ardea cinerea, Grey heron"``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from lit_edge import scorecard
from lit_edge.bundle import read_labels
from lit_edge.device.config import BackendConfig, EngineConfig
from lit_edge.device.decode import DecodeError, decode_file
from lit_edge.device.pipeline import Engine
from lit_edge.device.preprocess import prepare

FRAMINGS = {
    "center_crop": {"resize_mode": "center_crop"},
    "full_crop": {"resize_mode": "center_crop", "crop_pct": 1.0},
    "squash": {"resize_mode": "squash"},
    "letterbox": {"resize_mode": "letterbox"},
}


def default_folder() -> Path:
    env = os.environ.get("LIT_EDGE_FIELDSET")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[1]
    for up in (here.parent / "shared" / "fieldset", here.parents[1] / "shared" / "fieldset"):
        if up.is_dir():
            return up
    return here.parent / "shared" / "fieldset"


def judge_folder(engine: Engine, folder: Path, framing: dict | None = None) -> list[scorecard.Judged]:
    """Decode, frame, embed and decide every labelled photo of ``folder``; judge each decision."""
    pp = replace(engine.preprocess, **(framing or {}))
    checklist = []
    try:
        from lit_edge.starter import species_list_path

        checklist = read_labels(species_list_path())
    except (ImportError, OSError):
        pass
    judge = scorecard.Judge([*engine.bundle.labels, *checklist])
    out = []
    for path, expected in scorecard.read_expected(folder):
        try:
            rgb = decode_file(folder / path, engine.min_side).rgb
        except DecodeError:
            out.append(judge.judge(path, expected, "", "", 0.0))
            continue
        (d,) = engine.classify_prepared([prepare(rgb, pp)])
        out.append(judge.judge(path, expected, d.name, d.rank, d.score))
    return out


def print_photos(rows: list[scorecard.Judged]) -> None:
    print("| photo | expected | decided | rank | score | verdict |")
    print("|---|---|---|---|---:|---|")
    for r in rows:
        score = f"{r.score:.2f}" if r.rank else "—"
        print(f"| {r.path} | {r.expected} | {r.name or '(unreadable)'} | {r.rank} | {score} | {r.verdict} |")


def summary_row(label: str, rows: list[scorecard.Judged]) -> str:
    c = scorecard.counts(rows)
    rc = scorecard.risk_coverage(rows)
    cells = [str(c.get(v, 0)) for v in scorecard.VERDICTS]
    cells += [f"{right}/{kept}" for _, kept, right in rc]
    cells += [f"{scorecard.expected_calibration_error(rows):.3f}", str(len(scorecard.confident_wrong(rows)))]
    return f"| {label} | " + " | ".join(cells) + " |"


def summary_header() -> str:
    heads = [
        *scorecard.VERDICTS,
        "right/kept >= 0.5",
        "right/kept >= 0.7",
        "right/kept >= 0.9",
        "ECE",
        "wrong >= 0.9",
    ]
    return "| framing | " + " | ".join(heads) + " |\n|---|" + "---:|" * len(heads)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("folder", type=Path, nargs="?", default=None)
    ap.add_argument(
        "--framing", default="", help="comma-separated framings to compare (default: the bundle's)"
    )
    ap.add_argument("--flavour", default=None, help="image tower: int8_cpu (default on CPU) | fp32")
    args = ap.parse_args(argv)
    folder = args.folder or default_folder()
    if not (folder / "labels.csv").is_file():
        print(f"error: {folder}/labels.csv not found; pass a folder with a labels.csv (path,expected)")
        return 2
    backend = BackendConfig(backend="onnxruntime-cpu", precision={"fp32": "fp32"}.get(args.flavour or ""))
    engine = Engine(EngineConfig(bundle=args.bundle, backend=backend))
    names = [f for f in args.framing.split(",") if f] or ["bundle"]
    t0 = time.perf_counter()
    results = {}
    for name in names:
        if name != "bundle" and name not in FRAMINGS:
            print(f"error: unknown framing {name!r}; use one of {', '.join(FRAMINGS)}")
            return 2
        results[name] = judge_folder(engine, folder, FRAMINGS.get(name))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    pp = engine.preprocess
    print(
        f"# bench_fieldset: {engine.bundle.root} ({engine.bundle.manifest.model.name}, "
        f"{engine.backend.flavour}, scoring {engine.bundle.manifest.scoring.kind}, "
        f"bundle framing {pp.resize_mode} {pp.crop_pct}) on {folder}"
    )
    print(
        f"# {len(results[names[0]])} labelled photos; {time.perf_counter() - t0:.0f} s; load average {load:.1f}\n"
    )
    first = results[names[0]]
    print_photos(first)
    print()
    print(summary_header())
    for name, rows in results.items():
        print(summary_row(name, rows))
    wrong = scorecard.confident_wrong(first)
    print(f"\nwrong at a score >= 0.9 ({names[0]}): {len(wrong)}")
    for r in wrong:
        print(f"  {r.path}: expected {r.expected}, decided {r.name} ({r.rank}) {r.score:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
