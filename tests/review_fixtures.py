"""Test helpers for ``lit-edge review``: databases of real JPEGs, a server in a real process, a browser.

``field_db`` writes real JPEGs (PIL, with EXIF times) into camera folders and records them with
controlled decisions in a real detection database. ``ReviewServer`` runs ``lit-edge review`` as a
subprocess (so SIGKILL is a real kill) and waits for the address it prints. ``browser`` launches
Debian's Chromium through Playwright (never a downloaded browser); tests that need it are skipped,
visibly, where either is missing.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import bundle_factory
from fielddata_fixtures import write_photo
from lit_edge.db.schema import connect

#: the colour bundle's species (tests/bundle_factory.py), so a real bundle names them
SPECIES = tuple((sci, common) for sci, common, *_ in bundle_factory.SPECIES)
SRC = Path(__file__).resolve().parent.parent / "src"
CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).is_file()), None
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Shot:
    """One media row to record: where, when, what the machine decided, and its top-k."""

    path: Path
    captured_at: str | None
    top_name: str | None
    top_rank: str | None
    top_score: float | None
    preds: list[tuple[str, str, float]] = field(default_factory=list)
    kind: str = "photo"
    frame_index: int = -1
    status: str = "done"
    saved_frame: str | None = None


def record(db: Path, shots: list[Shot], bundle: str = "") -> list[int]:
    """Write ``shots`` into ``db`` (created or migrated by the db package); returns their media ids."""
    conn = connect(db)
    ids = []
    try:
        conn.execute("BEGIN")
        run = conn.execute(
            "INSERT INTO runs (command, source, bundle, model_name, model_version, backend, flavour, settings, "
            "host, lit_edge_version, started_at, finished_at, status) VALUES ('tag', 'card', ?, 'test-lit', "
            "'0.1', 'onnxruntime-cpu', 'fp32', '{}', 'test', '0.1.0', '2024-06-01T10:00:00Z', "
            "'2024-06-01T10:01:00Z', 'finished')",
            (bundle,),
        ).lastrowid
        for s in shots:
            mid = conn.execute(
                "INSERT INTO media (run_id, path, frame_index, kind, captured_at, status, top_label_id, top_name, "
                "top_rank, top_score, saved_frame) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                (run, str(s.path), s.frame_index, s.kind, s.captured_at, s.status, s.top_name, s.top_rank,
                 s.top_score, s.saved_frame),
            ).lastrowid  # fmt: skip
            for k, (sci, common, score) in enumerate(s.preds, start=1):
                conn.execute(
                    "INSERT INTO predictions (media_id, position, label_id, scientific_name, common_name, score) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (mid, k, k, sci, common, score),
                )
            ids.append(int(mid))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return ids


def field_db(root: Path, n: int = 12, folders: tuple[str, ...] = ("siteA", "siteB"), seed: int = 0) -> Path:
    """``n`` real JPEGs over ``folders``, 20 s apart per folder, with decided species and a top-5
    whose scores are distinct (so the doubt order is well defined)."""
    rnd = random.Random(seed)
    shots = []
    scores = sorted({round(rnd.uniform(0.4, 0.95), 4) for _ in range(n * 3)})[:n]
    rnd.shuffle(scores)
    for i in range(n):
        folder = root / "card" / folders[i % len(folders)]
        t = 20 * (i // len(folders))
        when = f"2024-05-01 06:{t // 60:02d}:{t % 60:02d}"
        photo = write_photo(folder / f"IMG_{i:04d}.JPG", when.replace("-", ":"), (51.0, 5.0),
                            colour=(rnd.randrange(256), 120, 60), size=(320, 240))  # fmt: skip
        order = rnd.sample(SPECIES, len(SPECIES))
        top = scores[i]
        rest = [(1 - top) * w for w in (0.6, 0.3, 0.1)]
        preds = [(sci, common, s) for (sci, common), s in zip(order, [top, *rest], strict=True)]
        shots.append(Shot(photo.resolve(), when.replace(" ", "T"), order[0][0], "species", top, preds))
    db = root / "card.db"
    record(db, shots)
    return db


class ReviewServer:
    """``lit-edge review DB --no-browser`` in its own process; ``url`` once it listens."""

    def __init__(self, db: Path, home: Path, *extra: str, reviewer: str = "ann"):
        env = {**os.environ, "LIT_EDGE_HOME": str(home), "PYTHONPATH": str(SRC)}
        cmd = [
            sys.executable,
            "-m",
            "lit_edge.cli.app",
            "review",
            str(db),
            "--no-browser",
            "--reviewer",
            reviewer,
            *extra,
        ]
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.url = ""
        self.output: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            if m:
                self.url = m.group(1)
                return
        self.proc.kill()
        raise RuntimeError("review server did not start:\n" + "".join(self.output) + self.proc.stdout.read())

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=30) as r:
            return json.loads(r.read())

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def __enter__(self) -> ReviewServer:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def browser():
    """A headless Debian Chromium driven by Playwright; skipped, visibly, where either is missing."""
    if CHROMIUM is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="no Playwright here (pip install playwright)"
    )
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def open_page(browser, url: str, view: str = "doubt", status: str = "todo"):
    """A new page on ``url``, loaded; page errors are collected in ``page.errors``."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    page.goto(f"{url}?view={view}")
    page.wait_for_selector("body[data-ready='1']")
    if status != "todo":
        page.check(f"input[name=status][value={status}]")
        page.wait_for_function("() => document.querySelectorAll('#grid .unit').length > 0")
    return page


def press(page, *keys: str) -> None:
    """Press ``keys`` one by one, then wait until every write they made has its answer."""
    for k in keys:
        page.keyboard.press(k)
    settle(page)


def settle(page) -> None:
    page.wait_for_function("() => document.body.dataset.busy === '0'")


def selected_id(page) -> int:
    return int(page.get_attribute("#grid .unit.selected .photo", "data-id"))
