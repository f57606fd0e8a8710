"""Clip sampling bench: ``ClipSampler`` against a naive loop that reads every frame, at one frame a second.

Measured side by side in one run on H.264 clips the bench writes (FFmpeg's libx264 from the
``imageio-ffmpeg`` wheel, since OpenCV's own writer here has no H.264 encoder; ``testsrc2``, a moving
test pattern, ``-preset veryfast``, yuv420p) at 720p and 1080p, 30 fps, with a keyframe every 1 s
(what camera traps and drones write: 0.5-2 s) and every 250 frames (x264's default, 8.3 s):

- ``naive``: ``cv2.VideoCapture.read()`` on every frame, keep one per second (the issue's baseline);
- ``sampler``: ``ClipSampler(every_s=1)``, keyframes first, decoding the rest (the default);
- ``decode``: ``ClipSampler(every_s=1, keyframes=False)``: every frame decoded, only sampled ones
  converted to colour (``grab``/``retrieve``).

Every row produces the same thing: the sampled frames as RGB, downscaled so the shorter side is
256 px (what the image tower needs; the model side is the pipeline's and not measured here).

End to end (with a bundle: the starter, or ``--bundle``), each sampled frame also classified and
written to SQLite, on the 1 s-keyframe clips:

- ``naive+model``: the naive loop, each kept frame classified by the same engine and inserted
  into SQLite (one transaction per clip): what a script around OpenCV and the model would do;
- ``tag``: ``run_tag`` on a folder holding the clip (the pipeline: sampler on the decode pool,
  batched inference workers, the store's writer thread), its sampled frames/s.

The engine is opened (and warmed up) before the clock starts in both.
Each measurement runs in its own process (spawn, FFmpeg warmed up on the clip first), so peak RSS
is that method's alone; the methods
alternate over ``--repeat`` rounds and the best time counts, so a load spike hits all of them.

    .venv/bin/python bench/bench_video.py               # 20 s clips, 3 rounds
    .venv/bin/python bench/bench_video.py --seconds 8 --repeat 1 [--bundle B | --no-model]

The goal (issue 11): sampled frames/s >= 5x the naive loop at one frame a second.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

MIN_SIDE = 256


def write_h264(path: Path, size: tuple[int, int], seconds: float, gop: int) -> Path:
    import imageio_ffmpeg

    w, h = size
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=30", "-t", str(seconds),
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", str(gop), str(path),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    return path


def _naive(path: str) -> int:
    import cv2

    from lit_edge.device.video.sampler import downscale

    cap = cv2.VideoCapture(path)
    step = round(cap.get(cv2.CAP_PROP_FPS))
    n = kept = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if n % step == 0:
            cv2.cvtColor(downscale(bgr, MIN_SIDE), cv2.COLOR_BGR2RGB)
            kept += 1
        n += 1
    cap.release()
    return kept


def _sampler(path: str, keyframes: bool) -> int:
    from lit_edge.device.video import ClipSampler, SampleConfig

    s = ClipSampler(path, SampleConfig(every_s=1.0, min_side=MIN_SIDE, keyframes=keyframes))
    n = sum(1 for _ in s.frames())
    assert s.failure is None, s.failure
    return n


def _engine(bundle: str):
    from lit_edge.device.config import EngineConfig
    from lit_edge.device.pipeline import Engine

    return Engine(EngineConfig(bundle=Path(bundle)))  # its warm-up inference runs here


def _naive_model(path: str, engine, db: Path) -> int:
    """The naive loop, each kept frame classified and inserted into SQLite."""
    import sqlite3

    import cv2

    from lit_edge.device.video.sampler import downscale

    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE media (path TEXT, frame_index INT, top_name TEXT, top_score REAL)")
    cap = cv2.VideoCapture(path)
    step = round(cap.get(cv2.CAP_PROP_FPS))
    n = kept = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if n % step == 0:
            rgb = cv2.cvtColor(downscale(bgr, engine.min_side), cv2.COLOR_BGR2RGB)
            (d,) = engine.classify_prepared([engine.prepare(rgb)])
            conn.execute("INSERT INTO media VALUES (?, ?, ?, ?)", (path, n, d.name, d.score))
            kept += 1
        n += 1
    cap.release()
    conn.commit()
    conn.close()
    return kept


def _tag(path: str, engine, work: Path) -> int:
    """``run_tag`` on a folder holding the clip: its sampled frames."""
    from lit_edge.device.config import ClipConfig, TagConfig
    from lit_edge.device.tagger import run_tag

    folder = work / "card"
    folder.mkdir()
    (folder / Path(path).name).symlink_to(path)
    cfg = TagConfig(
        source=str(folder), db=work / "tag.db", engine=engine.config, clips=ClipConfig(every_s=1.0)
    )
    result = run_tag(cfg, engine=engine)
    assert result.clips.failed == 0 and result.clips.clips == 1
    return result.clips.frames


def _measure(method: str, path: str, bundle: str | None, out) -> None:
    import cv2

    cap = cv2.VideoCapture(path)  # warm up: load FFmpeg's codecs before the clock starts
    cap.read()
    cap.release()
    engine = _engine(bundle) if method in ("naive+model", "tag") else None
    with tempfile.TemporaryDirectory(prefix="bench-video-run-") as work:
        t0 = time.perf_counter()
        if method == "naive":
            n = _naive(path)
        elif method == "naive+model":
            n = _naive_model(path, engine, Path(work) / "naive.db")
        elif method == "tag":
            n = _tag(path, engine, Path(work))
        else:
            n = _sampler(path, keyframes=method == "sampler")
        dt = time.perf_counter() - t0
    out.send((n, dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def measure(method: str, path: Path, bundle: str | None = None) -> tuple[int, float, float]:
    """(frames, seconds, peak RSS MB) of ``method`` on ``path``, in a fresh process."""
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_measure, args=(method, str(path), bundle, send))
    p.start()
    result = recv.recv()
    p.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="clip length")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the best time counts")
    ap.add_argument(
        "--bundle", type=Path, default=None, help="bundle for the end-to-end rows (default: the starter)"
    )
    ap.add_argument("--no-model", action="store_true", help="leave out the end-to-end rows")
    args = ap.parse_args()
    bundle = None
    if not args.no_model:
        from lit_edge.paths import default_bundle_dir

        where = args.bundle or default_bundle_dir()
        if (where / "manifest.json").is_file() or where.suffix == ".tar":
            bundle = str(where)
        else:
            print(f"no bundle at {where}: end-to-end rows left out (pass --bundle, or build the starter)")
    rows, e2e = [], []
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        for size in ((1280, 720), (1920, 1080)):
            for gop in (30, 250):
                clip = write_h264(Path(tmp) / f"{size[1]}p_g{gop}.mp4", size, args.seconds, gop)
                best: dict[str, tuple[int, float, float]] = {}
                methods = ["naive", "sampler", "decode"]
                if bundle and gop == 30:
                    methods += ["naive+model", "tag"]
                for _ in range(args.repeat):
                    for m in methods:
                        n, dt, rss = measure(m, clip, bundle)
                        if m not in best or dt < best[m][1]:
                            best[m] = (n, dt, max(rss, best.get(m, (0, 0, 0))[2]))
                for m in methods:
                    n, dt, rss = best[m]
                    into, base = (e2e, "naive+model") if m in ("naive+model", "tag") else (rows, "naive")
                    ratio = n / dt / (best[base][0] / best[base][1])
                    into.append((f"{size[1]}p", f"{gop / 30:.1f} s", m, n, n / dt, ratio, rss))
    load = os.getloadavg()
    print(
        f"\nclip sampling at 1 frame/s, {args.seconds:g} s H.264 clips at 30 fps, frames to {MIN_SIDE} px RGB"
    )
    print(
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; best of {args.repeat}\n"
    )
    print(
        f"{'clip':>5} {'keyframes':>9} {'method':>8} {'frames':>6} {'frames/s':>9} {'x naive':>8} {'peak RSS MB':>12}"
    )
    for clip, gop, m, n, fps, ratio, rss in rows:
        print(f"{clip:>5} {gop:>9} {m:>8} {n:>6} {fps:>9.1f} {ratio:>8.2f} {rss:>12.0f}")
    if e2e:
        print(f"\nend to end (classified and written to SQLite), bundle {bundle}\n")
        print(
            f"{'clip':>5} {'keyframes':>9} {'method':>11} {'frames':>6} {'frames/s':>9} "
            f"{'x naive+model':>13} {'peak RSS MB':>12}"
        )
        for clip, gop, m, n, fps, ratio, rss in e2e:
            print(f"{clip:>5} {gop:>9} {m:>11} {n:>6} {fps:>9.1f} {ratio:>13.2f} {rss:>12.0f}")


if __name__ == "__main__":
    main()
