"""Review bench: does ``lit-edge review`` open and move as fast on 100,000 photos as on 1,000?

The goals (issue 15): the page opens in <= 2 s on a 100,000-photo database, and the next photo
shows in <= 100 ms. Measured side by side in one run, on a small and a large database built the
same way, so the ratio column says whether anything grows with the database:

- **open**: wall clock from launching ``lit-edge review DB --no-browser`` (a fresh process, a cold
  thumbnail cache) until the page, its script, ``/api/info``, the first page of the doubt queue
  and the first photo's preview have all been served: what a reviewer waits for;
- **annotate**: one key's write (``POST /api/annotate``, committed before the answer);
- **next page**: the next 60 rows of the queue (keyset, after a cursor deep in the queue);
- **preview cold / warm**: the next photo's 1280 px preview made from a 12-megapixel JPEG, and
  served from the thumbnail cache (the page prefetches the next three, so a reviewer sees warm);
- **key -> photo (browser)**: in headless Chromium, from the key press to the next preview's
  ``load`` event (skipped where Chromium or Playwright is missing).

The photos are real pictures (scikit-image's samples) scaled to 4000 x 3000, JPEG quality 90;
the 100,000 rows are hard links to a pool of them in 50 camera folders, so every row is its own
file to the server (its own thumbnail), at the disk cost of the pool. Everything is written under
``--work`` (default: a temporary folder, removed afterwards).

    .venv/bin/python bench/bench_review.py                 # 1,000 vs 100,000 photos
    .venv/bin/python bench/bench_review.py --sizes 1000 20000 --repeat 2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2

from lit_edge.db.schema import connect

CLI = [sys.executable, "-m", "lit_edge.cli.app"]
SPECIES = [(f"Genus{i // 4} species{i}", f"animal {i}") for i in range(120)]
PER_FOLDER = 2000


def photo_pool(folder: Path, n: int = 8) -> list[Path]:
    """``n`` real 12-megapixel JPEGs (scikit-image samples, resized)."""
    from lit_edge.examples import sample_photos

    folder.mkdir(parents=True, exist_ok=True)
    photos = [
        p.pixels for p in sample_photos(("astronaut", "coffee", "chelsea", "rocket")) if p.pixels.ndim == 3
    ]
    out = []
    for i in range(n):
        rgb = cv2.resize(photos[i % len(photos)], (4000, 3000), interpolation=cv2.INTER_CUBIC)
        if i >= len(photos):
            rgb = cv2.flip(rgb, 1)
        path = folder / f"pool{i}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.append(path)
    return out


def build(root: Path, n: int, pool: list[Path]) -> Path:
    """A database of ``n`` photos (hard links into the pool) with a decision and a top-5 each."""
    rnd = random.Random(n)
    media, preds = [], []
    for i in range(n):
        folder = root / "card" / f"cam{i // PER_FOLDER:02d}"
        if i % PER_FOLDER == 0:
            folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"IMG_{i:06d}.JPG"
        os.link(pool[i % len(pool)], path)
        t = (i % PER_FOLDER) * 40 + (i % 3) * 5  # bursts of three, 5 s apart, every 2 minutes
        when = f"2024-05-{1 + t // 86400:02d}T{t % 86400 // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d}"
        top5 = rnd.sample(SPECIES, 5)
        s = sorted((rnd.random() for _ in range(5)), reverse=True)
        total = sum(s) * rnd.uniform(1.0, 1.6)
        scores = [x / total for x in s]
        media.append((i + 1, 1, str(path), when, top5[0][0], scores[0]))
        preds += [
            (i + 1, k + 1, SPECIES.index(sp), sp[0], sp[1], sc)
            for k, (sp, sc) in enumerate(zip(top5, scores, strict=True))
        ]
    db = root / "card.db"
    conn = connect(db)
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO runs (id, command, source, bundle, model_name, model_version, status, started_at) "
        "VALUES (1, 'tag', 'card', '', 'bench', '0', 'finished', '2024-06-01T00:00:00Z')"
    )
    conn.executemany(
        "INSERT INTO media (id, run_id, path, frame_index, kind, captured_at, status, top_label_id, top_name, "
        "top_rank, top_score) VALUES (?, ?, ?, -1, 'photo', ?, 'done', 0, ?, 'species', ?)",
        media,
    )
    conn.executemany(
        "INSERT INTO predictions (media_id, position, label_id, scientific_name, common_name, score) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        preds,
    )
    conn.execute("COMMIT")
    conn.close()
    return db


class Server:
    def __init__(self, db: Path, home: Path):
        env = {**os.environ, "LIT_EDGE_HOME": str(home)}
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [*CLI, "review", str(db), "--no-browser", "--reviewer", "bench"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for line in self.proc.stdout:
            m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            if m:
                self.url = m.group(1)
                break
        else:
            raise RuntimeError("the review server did not start")
        html = self.get("")
        self.token = re.search(r'name="review-token" content="([^"]+)"', html.decode()).group(1)

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return r.read()

    def json(self, path: str) -> dict:
        return json.loads(self.get(path))

    def post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-Review-Token": self.token},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def ms(seconds: float) -> float:
    return seconds * 1000.0


def measure(db: Path, work: Path, repeat: int, browser_presses: int) -> dict[str, float]:
    out: dict[str, float] = {}
    opens = []
    for r in range(repeat):
        home = work / f"home-{db.parent.name}-{r}"
        srv = Server(db, home)  # launched at srv.t0; the page was fetched once it listened
        try:
            srv.get("static/review.js")
            srv.get("static/review.css")
            srv.json("api/info")
            first = srv.json("api/page?order=doubt&status=todo&limit=60")["items"][0]["id"]
            srv.get(f"thumb/{first}?size=preview")
            opens.append(time.perf_counter() - srv.t0)
        finally:
            srv.close()
    out["open (s)"] = min(opens)

    srv = Server(db, work / f"home-{db.parent.name}-run")
    try:
        page = srv.json("api/page?order=doubt&status=todo&limit=60")
        items = page["items"]
        annotate, cold, warm = [], [], []
        for i in range(min(30, len(items) - 1)):
            t = time.perf_counter()
            srv.post("api/annotate", {"media_ids": [items[i]["id"]], "label": items[i]["preds"][1]["name"]})
            annotate.append(time.perf_counter() - t)
            nxt = items[i + 1]["id"]
            t = time.perf_counter()
            srv.get(f"thumb/{nxt}?size=preview")
            cold.append(time.perf_counter() - t)
            t = time.perf_counter()
            srv.get(f"thumb/{nxt}?size=preview")
            warm.append(time.perf_counter() - t)
        # a page deep in the queue: walk 20 pages of cursors, time each
        pages, cursor = [], page["next"]
        for _ in range(20):
            if cursor is None:
                break
            t = time.perf_counter()
            p = srv.json(f"api/page?order=doubt&status=todo&limit=60&after={urllib.request.quote(cursor)}")
            pages.append(time.perf_counter() - t)
            cursor = p["next"]
        out["annotate p50 (ms)"] = ms(statistics.median(annotate))
        out["annotate p95 (ms)"] = ms(sorted(annotate)[int(0.95 * (len(annotate) - 1))])
        out["next page p50 (ms)"] = ms(statistics.median(pages))
        out["preview cold p50 (ms)"] = ms(statistics.median(cold))
        out["preview warm p50 (ms)"] = ms(statistics.median(warm))
        if browser_presses:
            key = browser_key_to_photo(srv.url, browser_presses)
            if key is not None:
                out["key -> photo p50 (ms)"] = ms(statistics.median(key))
                out["key -> photo p90 (ms)"] = ms(sorted(key)[int(0.9 * (len(key) - 1))])
                out["key -> photo max (ms)"] = ms(max(key))
    finally:
        srv.close()
    return out


def browser_key_to_photo(url: str, presses: int) -> list[float] | None:
    """Seconds from a key press to the next preview's load event, in headless Chromium."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not Path(chromium).is_file():
        return None
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=args)
        page = b.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        page.wait_for_timeout(1500)  # let the first prefetches land, as a reviewer's first look does
        page.evaluate(
            """() => {
              window.benchTimes = [];
              const img = document.getElementById('preview');
              document.addEventListener('keydown', () => { window.benchKey = performance.now(); }, true);
              const done = () => requestAnimationFrame(() => window.benchTimes.push(performance.now() - window.benchKey));
              img.addEventListener('load', done);
            }"""
        )
        for _ in range(presses):
            n = page.evaluate("() => window.benchTimes.length")
            page.keyboard.press("1")
            page.wait_for_function(f"() => window.benchTimes.length > {n}", timeout=30000)
            page.wait_for_timeout(300)  # a reviewer looks before the next key
        times = page.evaluate("() => window.benchTimes")
        b.close()
    return [t / 1000.0 for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs=2, default=(1000, 100_000), metavar=("SMALL", "LARGE"))
    ap.add_argument("--repeat", type=int, default=3, help="fresh launches per database (best is kept)")
    ap.add_argument("--browser-presses", type=int, default=20, help="0 to skip the Chromium measurement")
    ap.add_argument("--work", type=Path, default=None, help="where to build (default: a temporary folder)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-review-"))
    try:
        pool = photo_pool(work / "pool")
        dbs = {}
        for n in args.sizes:
            t = time.perf_counter()
            dbs[n] = build(work / f"db{n}", n, pool)
            print(f"built {n:,} photos in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        results = {n: measure(db, work, args.repeat, args.browser_presses) for n, db in dbs.items()}
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    small, large = args.sizes
    goals = {"open (s)": "<= 2 s", "key -> photo p50 (ms)": "<= 100 ms", "key -> photo p90 (ms)": "<= 100 ms"}
    print(f"\nload average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"| measure | {small:,} photos | {large:,} photos | ratio | goal |")
    print("|---|---:|---:|---:|---|")
    for key in results[large]:
        a, b = results[small].get(key), results[large][key]
        ratio = f"{b / a:.2f}" if a else ""
        fmt = "{:.2f}" if key.endswith("(s)") else "{:.1f}"
        print(
            f"| {key} | {fmt.format(a) if a is not None else ''} | {fmt.format(b)} | {ratio} | {goals.get(key, '')} |"
        )


if __name__ == "__main__":
    main()
