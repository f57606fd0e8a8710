"""Every shell command the documentation shows, collected, and what the docs test does with each.

Collected from ``README.md``, ``docs/*.md``, ``export/README.md``, ``device/README.md`` (fenced
``bash``/``sh``/``shell``/``console`` blocks, unlabelled fences and 4-space indented blocks) and the
module docstrings of ``train/*.py``. A line is a command when it starts with a program: one named in
:data:`COMMANDS`' keys, one on ``PATH``, or a script path. ``\\`` continuations are joined and
trailing ``# comments`` dropped; the command's key is ``shlex.join`` of its words. Inline code in
prose is prose: put a command that should run in a code block.

:data:`COMMANDS` says, for every documented command, either :class:`Run` (run it as written, in a
temporary workspace and home, after :data:`PLACEHOLDERS` map the docs' example paths to the test's
small data) or :class:`Skip` (with the reason: what this machine lacks). A documented command
missing from :data:`COMMANDS` fails ``tests/test_docs.py``: new docs get covered when they land.
"""

from __future__ import annotations

import ast
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Where commands are collected from (globs relative to the repository).
SOURCES = ("README.md", "docs/*.md", "export/README.md", "device/README.md", "train/*.py")
_SHELL_FENCES = {"", "bash", "sh", "shell", "console", "shell-session"}


@dataclass(frozen=True)
class Doc:
    """One documented command: where it is and its words."""

    file: str  # relative to the repository
    line: int
    words: tuple[str, ...]

    @property
    def key(self) -> str:
        return shlex.join(self.words)


@dataclass(frozen=True)
class Run:
    """Run the command as written (after the placeholders), expecting exit status 0.

    ``append``: words added at the end, with ``why`` saying why (a documented full-size recipe run
    at smoke size, say). ``expect``: text the output must contain.
    """

    append: tuple[str, ...] = ()
    why: str = ""
    expect: str = ""
    timeout: int = 900


@dataclass(frozen=True)
class Skip:
    """Not run here; ``why`` names what this machine lacks."""

    why: str


GPU = "needs an NVIDIA GPU with TensorRT"
CAMERA = "needs a camera (CSI or V4L2) on this machine"
CLUSTER = "needs a Slurm cluster"
EIGHT_GPUS = "needs 8 GPUs and the ViT-L/16 weights (a local .safetensors this machine lacks)"
JETSON = "sets up a Jetson (system user, /opt, /etc, systemd): changes the host"
SERVER = "starts the review web server, which runs until stopped; tests/test_review_*.py drive it in Chromium"
SHARDS = CLUSTER + "; tests/test_slurm.py runs the array and the merge on a one-machine cluster"
VERIFIED = (
    "needs databases with people's verifications (made in 'lit-edge review'); "
    "tests/test_learn_db.py runs learn, retag and tag on real ones"
)
INSTALL = "installs packages into a virtualenv (network); the suite runs from the installed tree"

#: The docs' example paths and what they stand for in the test's workspace (``{name}`` fields are
#: filled by the test: ``photos``, ``toy``, ``ckpt``, ``video``, ``home``; relative paths stay
#: relative to the workspace, which holds ``photos/``, ``species.csv`` and ``my_species.csv``).
PLACEHOLDERS = {
    "/media/card/DCIM": "{photos}",
    "/data/inat2021": "{toy}",
    "/tmp/toy-inat": "{toy}",
    "/path/to/tiny/inat": "{toy}",
    "/tmp/cache": "{work}/cache",
    "/tmp/s": "{work}/starter-smoke",
    "/tmp/contrastive": "{work}/starter-contrastive",
    "CHECKPOINT": "{ckpt}",
    "rtsp://192.168.1.20/stream": "{video}",
    "DJI_0042.MP4": "{video}",
    "~/.cache/lit-edge/bundles/starter": "{home}/bundles/starter",
}

#: What a page takes as given before its first command (run in the page's workspace).
GIVEN = {
    "docs/field-data.md": ("lit-edge tag photos --db detections.db",),  # the page's first paragraph
}

COMMANDS: dict[str, Run | Skip] = {
    # video, review, learn, cluster and device pages (added as those landed)
    "lit-edge tag /media/card/DCIM --video-every 2": Run(),
    "lit-edge tag DJI_0042.MP4 --utc-offset +02:00": Run(),
    "lit-edge review card.db": Skip(SERVER),
    "lit-edge review card.db --reviewer 'A. Smith' --no-browser --port 8800": Skip(SERVER),
    "sbatch --array=0-15 device/tag_array.sh /data/photos /scratch/dbs": Skip(SHARDS),
    "lit-edge db merge photos.db '/scratch/dbs/lit-edge.shard-*.db'": Skip(SHARDS),
    "lit-edge learn card.db pole.db --bundle '~/.cache/lit-edge/bundles/starter' -o site-bundle": Skip(
        VERIFIED
    ),
    "lit-edge db retag card.db --bundle site-bundle": Skip(VERIFIED),
    "lit-edge tag /media/card2/DCIM --db card2.db --bundle site-bundle": Skip(VERIFIED),
    "lit-edge db export detections.db --format geojson -o map.geojson": Run(),
    "lit-edge learn card.db pole.db --bundle BUNDLE -o site-bundle '[--method' 'prototype|probe|auto]'": Skip(
        VERIFIED
    ),
    "lit-edge bundle info site-bundle": Skip(VERIFIED),
    "sbatch --array=0-15 device/tag_array.sh /data/photos /scratch/lit-edge": Skip(SHARDS),
    "lit-edge db merge photos.db '/scratch/lit-edge/lit-edge.shard-*.db'": Skip(SHARDS),
    "scontrol requeue 4242_3": Skip(CLUSTER),
    "SHARDS=16 sbatch --array=3,7 device/tag_array.sh /data/photos /scratch/lit-edge": Skip(SHARDS),
    "sbatch --nodes=4 train/slurm.sh cache-features train/inat2021_vitl16.py --set data.root=/data/inat2021": Skip(
        CLUSTER
    ),
    "sbatch --nodes=4 train/slurm.sh train/inat2021_vitl16.py --set data.root=/data/inat2021": Skip(CLUSTER),
    "sbatch --nodes=2 --gpus-per-node=0 --cpus-per-task=16 train/slurm.sh train/smoke.py --set ...": Skip(
        CLUSTER + "; tests/test_slurm.py submits train/slurm.sh train/smoke.py to a one-machine cluster"
    ),
    "/opt/lit-edge/venv/bin/python device/runtime_requirements.py --exclude opencv-python-headless '>' /tmp/runtime.txt": Skip(
        JETSON
    ),
    "/opt/lit-edge/venv/bin/pip install -r /tmp/runtime.txt 'numpy<2'": Skip(JETSON),
    # README.md
    "make demo": Skip(INSTALL + "; the commands below use the starter bundle it builds"),
    "make test": Skip(INSTALL + " (and it is this test suite)"),
    "lit-edge tag /media/card/DCIM --db card.db": Run(),
    "lit-edge detect rtsp://192.168.1.20/stream --db pole.db": Run(
        why="an RTSP camera is not reachable here: the same command on a video file"
    ),
    "lit-edge db summary card.db": Run(),
    "lit-edge db export card.db --format camtrap-dp -o package/": Run(),
    "lit-edge report card.db -o report.html": Run(),
    "lit-edge export species CHECKPOINT --species my_species.csv -o matrix/": Run(),
    "lit-edge bundle info": Run(expect="species"),
    "lit-edge train cache-features train/laptop.py --set data.root=/data/inat2021": Run(),
    "lit-edge train run train/laptop.py --set data.root=/data/inat2021": Run(),
    "torchrun --standalone --nproc_per_node=8 -m lit_edge.train run train/inat2021_vitl16.py "
    "--set data.root=...": Skip(EIGHT_GPUS),
    "sbatch train/slurm.sh train/inat2021_vitl16.py --set data.root=...": Skip(CLUSTER),
    "lit-edge train eval runs/laptop/checkpoints/last --data /data/inat2021": Run(),
    "lit-edge train starter": Run(),
    "lit-edge export starter --tower lite2": Skip(
        "builds a second starter and its INT8 tower (minutes of CPU); tests/test_starter.py checks its "
        "folders and tests/test_model_effnet.py its tower"
    ),
    "lit-edge export bundle CHECKPOINT --species species.csv --calib photos/ -o my-bundle --tar": Run(),
    "lit-edge export species CHECKPOINT --bundle my-bundle --add 'Lynx pardinus, Iberian lynx'": Run(),
    "lit-edge export species starter --bundle '~/.cache/lit-edge/bundles/starter' --add 'Ardea cinerea, Grey heron'": Run(
        expect="checksums rewritten"
    ),
    "lit-edge export engine my-bundle": Skip(GPU),
    "lit-edge bundle verify my-bundle": Run(expect="ok: "),
    "lit-edge bundle calibrate my-bundle --data /data/inat2021 --split val": Skip(
        "needs a trained model's bundle and its labelled val split; tests/test_calibrate_bundle.py runs it "
        "on a labelled folder through the CLI"
    ),
    # docs/field-data.md (detections.db: photos tagged before the page's commands)
    "lit-edge db summary detections.db": Run(),
    "lit-edge report detections.db -o report.html": Run(),
    "lit-edge db export detections.db --format camtrap-dp -o package/": Run(),
    "lit-edge db export detections.db --format megadetector -o md.json": Run(),
    "lit-edge db export detections.db --format csv -o detections.csv": Run(),
    "lit-edge db export detections.db --format xmp": Run(),
    "lit-edge db validate package/": Run(),
    # export/README.md
    "lit-edge export bundle CHECKPOINT --species species.csv --calib photos/ -o bundles/mine --tar": Run(),
    "lit-edge bundle verify bundles/mine.tar": Run(expect="ok: "),
    "lit-edge export starter": Run(),
    "lit-edge tag photos/ --bundle bundles/mine --backend onnxruntime-cpu": Run(),
    "lit-edge export engine bundles/mine --flavour int8_tensorrt --max-batch 8": Skip(GPU),
    "lit-edge detect csi://0 --bundle bundles/mine --backend tensorrt": Skip(CAMERA + "; " + GPU),
    "lit-edge export bundle CHECKPOINT --species species.csv -o bundles/cpu --flavours int8_cpu": Run(),
    # device/README.md
    "sudo useradd --system --groups video,render --home /var/lib/lit-edge lit-edge": Skip(JETSON),
    "python3 -m venv --system-site-packages /opt/lit-edge/venv": Skip(JETSON),
    "/opt/lit-edge/venv/bin/pip install --no-deps lit-edge": Skip(JETSON),
    "sudo install -D -m 644 device/example.toml /etc/lit-edge/device.toml": Skip(JETSON),
    "sudo cp -r bundles/starter /var/lib/lit-edge/bundles/starter": Skip(JETSON),
    "sudo install -m 644 device/lit-edge-detect.service /etc/systemd/system/": Skip(JETSON),
    "sudo systemctl daemon-reload": Skip(JETSON),
    "sudo systemctl enable --now lit-edge-detect": Skip(JETSON),
    "journalctl -u lit-edge-detect -f": Skip(JETSON),
    # docs/starter-model.md
    "apt-get install wordnet-base": Skip(
        "installs a system package (root, network); the tests need it installed"
    ),
    "python train/starter.py": Run(),
    # train/*.py
    "torchrun --standalone --nproc_per_node=8 -m lit_edge.train cache-features train/inat2021_vitl16.py "
    "--set data.root=/data/inat2021 --set image_checkpoint=/models/vit_l16.safetensors": Skip(EIGHT_GPUS),
    "torchrun --standalone --nproc_per_node=8 -m lit_edge.train run train/inat2021_vitl16.py "
    "--set data.root=/data/inat2021 --set image_checkpoint=/models/vit_l16.safetensors": Skip(EIGHT_GPUS),
    "python -m lit_edge.data.toy /tmp/toy-inat": Run(),
    "lit-edge train run train/laptop.py --set data.root=/tmp/toy-inat": Run(),
    "lit-edge train run train/laptop.py --set data.root=/tmp/toy-inat --set out_dir=runs/laptop-locked "
    "--set text.lock_encoder=true --set text.feature_cache=runs/laptop/text-features --set optim.lr=1e-3": Run(),
    "lit-edge train run train/smoke.py --set data.root=/path/to/tiny/inat --set cache.dir=/tmp/cache": Run(),
    "python train/starter.py --smoke --out /tmp/s": Run(),
    "python train/starter.py --set loss=contrastive --out /tmp/contrastive": Run(
        append=("--smoke",), why="the full recipe is minutes of CPU: the same command at smoke size"
    ),
}


def collect(repo: Path = REPO) -> list[Doc]:
    """Every documented command, in file order."""
    out: list[Doc] = []
    for pattern in SOURCES:
        for path in sorted(repo.glob(pattern)):
            rel = str(path.relative_to(repo))
            if path.suffix == ".py":
                out += _from_docstring(path, rel)
            else:
                out += _from_markdown(path.read_text(encoding="utf-8"), rel)
    return out


def _from_markdown(text: str, rel: str) -> list[Doc]:
    lines = text.splitlines()
    blocks: list[tuple[int, list[str], bool]] = []  # (first line number, lines, is a shell fence)
    i, prev_blank = 0, True
    while i < len(lines):
        fence = re.match(r"^\s*(```+|~~~+)\s*([\w-]*)", lines[i])
        if fence:
            mark, lang = fence.group(1), fence.group(2).lower()
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(mark):
                j += 1
            blocks.append((i + 2, lines[i + 1 : j], lang in _SHELL_FENCES))
            i, prev_blank = j + 1, False
            continue
        if prev_blank and lines[i].startswith("    ") and lines[i].strip():
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                j += 1
            blocks.append((i + 1, [ln[4:] for ln in lines[i:j]], False))
            i, prev_blank = j, False
            continue
        prev_blank = not lines[i].strip()
        i += 1
    out = []
    for first, block, shell in blocks:
        out += _commands(block, first, rel, every_line=shell)
    return out


def _from_docstring(path: Path, rel: str) -> list[Doc]:
    source = path.read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source), clean=False)
    if not doc:
        return []
    offset = source[: source.index(doc[:40])].count("\n") if doc[:40] in source else 0
    return _commands(doc.splitlines(), offset + 1, rel, every_line=False)


def _commands(block: list[str], first: int, rel: str, every_line: bool) -> list[Doc]:
    out = []
    k = 0
    while k < len(block):
        start, text = k, block[k].strip()
        while text.endswith("\\") and k + 1 < len(block):
            k += 1
            text = text[:-1].rstrip() + " " + block[k].strip()
        k += 1
        text = re.sub(r"^\$\s+", "", text)
        if not text or text.startswith("#"):
            continue
        try:
            words = tuple(shlex.split(text, comments=True))
        except ValueError:
            words = tuple(text.split())
        for part in _split_and(words):  # `a && b` is two commands
            if part and (every_line or _is_program(part[0])):
                out.append(Doc(rel, first + start, part))
    return out


def _split_and(words: tuple[str, ...]) -> list[tuple[str, ...]]:
    parts: list[list[str]] = [[]]
    for w in words:
        if w in ("&&", ";"):
            parts.append([])
        else:
            parts[-1].append(w)
    return [tuple(p) for p in parts]


def _is_program(word: str) -> bool:
    """A program name the docs use, one on PATH, or a path to a program (``/opt/.../pip``)."""
    known = {shlex.split(k)[0] for k in COMMANDS}
    return word in known or word.startswith(("/", "./")) or shutil.which(word) is not None
