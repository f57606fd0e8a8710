"""Every documented command runs as written.

``tests/doc_commands.py`` collects every shell command of the README, ``docs/*.md``,
``export/README.md``, ``device/README.md`` and the docstrings of ``train/*.py``. Each one runs here
as a real process (the real CLI, ``python``), in file order, in a fresh workspace per page with a
temporary lit-edge home, after the docs' example paths are mapped to small real data (the example
photos, the toy iNat set, a tiny checkpoint, a short video). Commands that need what this machine
lacks (a GPU, TensorRT, a camera, a cluster, root) are skipped with the reason. A documented command
the mapping does not know fails :func:`test_every_documented_command_is_known`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from doc_commands import COMMANDS, GIVEN, PLACEHOLDERS, REPO, Doc, Run, Skip, collect

DOCS = collect()


def test_every_documented_command_is_known():
    unknown = [f"{d.file}:{d.line}: {d.key}" for d in DOCS if d.key not in COMMANDS]
    assert not unknown, (
        "documented commands that tests/doc_commands.py does not know (add each to COMMANDS, as Run() "
        "or Skip(why)):\n  " + "\n  ".join(unknown)
    )
    documented = {d.key for d in DOCS}
    stale = [k for k in COMMANDS if k not in documented]
    assert not stale, "COMMANDS entries no document shows any more (remove them):\n  " + "\n  ".join(stale)


def test_the_collector_reads_fences_indented_blocks_and_docstrings(tmp_path):
    from doc_commands import _from_docstring, _from_markdown

    md = (
        "Prose with `lit-edge inline --not-collected`.\n\n"
        "```bash\nlit-edge tag a --db b.db   # comment\nlit-edge report b.db \\\n  -o r.html\n```\n\n"
        "```csv\nlit-edge,not,a,command\n```\n\n"
        "    sudo make-it && journalctl -f\n    not-a-program at all\n"
    )
    got = [(d.line, d.key) for d in _from_markdown(md, "x.md")]
    assert got == [
        (4, "lit-edge tag a --db b.db"),
        (5, "lit-edge report b.db -o r.html"),
        (13, "sudo make-it"),
        (13, "journalctl -f"),
    ]
    script = tmp_path / "cfg.py"
    script.write_text('"""A config.\n\npython -m lit_edge.data.toy /tmp/x\n"""\nX = 1\n', encoding="utf-8")
    assert [(d.line, d.key) for d in _from_docstring(script, "cfg.py")] == [
        (3, "python -m lit_edge.data.toy /tmp/x")
    ]


# running them --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory, _isolated_home) -> dict[str, Path]:
    """Small real inputs for the docs' placeholders, and a home holding the starter model + bundle."""
    import cv2
    import numpy as np

    from bundle_factory import jpeg_with_exif
    from lit_edge.data.toy import write_toy_inat
    from lit_edge.examples import write_examples

    root = tmp_path_factory.mktemp("docs")
    home = root / "home"
    _starter_home(Path(_isolated_home), home)
    photos = root / "photos"
    write_examples(photos, crops_per_photo=0)
    for i, jpeg in enumerate(sorted(photos.glob("*.jpg"))):  # a GPS camera's card: time and place in EXIF
        rgb = cv2.cvtColor(cv2.imread(str(jpeg)), cv2.COLOR_BGR2RGB)
        jpeg_with_exif(jpeg, rgb, when=f"2024:05:01 08:{i:02d}:00", gps=(51.1801, 5.6501, 40.0))
    toy = write_toy_inat(root / "toy")
    ckpt = root / "ckpt"
    _tiny_checkpoint(ckpt)
    video = root / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    frames = [cv2.imread(str(p)) for p in sorted(photos.glob("*.jpg"))[:4]]
    for frame in frames:
        for _ in range(5):
            writer.write(cv2.resize(frame, (320, 240)))
    writer.release()
    assert video.stat().st_size > 0 and np.all([f is not None for f in frames])
    return {"root": root, "home": home, "photos": photos, "toy": toy, "ckpt": ckpt, "video": video}


def _starter_home(source: Path, home: Path) -> None:
    """The starter model and bundle in ``home``: hard-linked from the session's home when it has
    them (LIT_EDGE_TEST_KEEP_HOME), else built once (minutes)."""
    for part in ("models/starter", "bundles/starter"):
        if (source / part).is_dir() and not (home / part).exists():
            shutil.copytree(source / part, home / part, copy_function=os.link)
    if not (home / "bundles/starter/manifest.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "lit_edge.cli.app", "export", "starter"],
            env=_env(home),
            check=True,
            timeout=3600,
        )


def _tiny_checkpoint(folder: Path) -> None:
    import torch

    from lit_edge.model import create_model, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(create_model("lit-tiny-test"), folder)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LIT_EDGE_BUNDLE", "LIT_EDGE_TEST_KEEP_HOME")}
    src = str(REPO / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env["PYTHONPATH"]]) if env.get("PYTHONPATH") else src
    env.update(LIT_EDGE_HOME=str(home), OMP_NUM_THREADS="2", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["COLUMNS"] = "200"
    return env


_workspaces: dict[str, Path] = {}


def _workspace(file: str, data: dict[str, Path]) -> Path:
    """A fresh folder per page, standing for the repository root: the repository's ``train/`` and
    ``device/``, and the page's other relative paths (photos/, species.csv, runs/...) land here."""
    if file not in _workspaces:
        ws = data["root"] / "ws" / file.replace("/", "__")
        ws.mkdir(parents=True)
        shutil.copytree(data["photos"], ws / "photos", copy_function=os.link)
        for name in ("train", "device"):  # the docs run from the repository root
            (ws / name).symlink_to(REPO / name, target_is_directory=True)
        for name in ("species.csv", "my_species.csv"):
            (ws / name).write_text(
                "scientific_name,common_name\nVulpes vulpes,Red fox\nMeles meles,Badger\n"
                "Capreolus capreolus,Roe deer\n",
                encoding="utf-8",
            )
        _workspaces[file] = ws
        for command in GIVEN.get(file, ()):
            _run(command.split(), ws, data, timeout=900)
    return _workspaces[file]


def _mapped(word: str, fields: dict[str, str]) -> str:
    for placeholder, target in PLACEHOLDERS.items():
        value = target.format(**fields)
        if word == placeholder:
            return value
        if word.endswith("=" + placeholder):
            return word[: -len(placeholder)] + value
    return word


def _run(words: list[str], ws: Path, data: dict[str, Path], timeout: int) -> subprocess.CompletedProcess:
    fields = {k: str(v) for k, v in data.items()} | {"work": str(ws)}
    words = [_mapped(w, fields) for w in words]
    program = {"lit-edge": [sys.executable, "-m", "lit_edge.cli.app"], "python": [sys.executable]}
    program["python3"] = program["python"]
    argv = program.get(words[0], [words[0]]) + words[1:]
    r = subprocess.run(
        argv, cwd=ws, env=_env(data["home"]), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert r.returncode == 0, (
        f"{' '.join(words)} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    )
    return r


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS, ids=[f"{d.file}:{d.line}:{d.words[0]}" for d in DOCS])
def test_documented_command_runs_as_written(doc: Doc, data):
    action = COMMANDS.get(doc.key)
    if action is None:
        pytest.fail(f"{doc.file}:{doc.line}: {doc.key} is not in tests/doc_commands.py COMMANDS")
    if isinstance(action, Skip):
        pytest.skip(f"{doc.file}:{doc.line}: {action.why}")
    assert isinstance(action, Run)
    ws = _workspace(doc.file, data)
    r = _run([*doc.words, *action.append], ws, data, action.timeout)
    if action.expect:
        assert action.expect in r.stdout + r.stderr, r.stdout[-2000:]
