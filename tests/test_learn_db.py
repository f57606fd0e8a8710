"""The field loop through real parts: a real SQLite database written by the db package's Store (with
embeddings from the colour bundle's ONNX tower) and annotated with its annotation functions; the
real CLI learns a bundle from it, retags the database from its stored embeddings, and the new
decisions agree with the people more often than the old ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bundle_factory import make_bundle
from lit_edge import bundle as bf
from lit_edge.cli.app import app
from lit_edge.db import schema
from lit_edge.db.reader import Reader
from lit_edge.db.writer import MediaRecord, NewAnnotation, RunInfo, Store, add_annotation, undo_annotation
from lit_edge.device.classify import Classifier, ClassifyConfig
from test_learn import SITE, _embed, _photos

runner = CliRunner()
OBS = {"blank": "blank", "human": "human", "vehicle": "vehicle", "unknown": "unknown"}


def _tag(db: Path, b: bf.Bundle, per_label: int, seed: int, *, prefix: str = "") -> None:
    """What 'lit-edge tag' would store: a run, media rows with zero-shot decisions and embeddings."""
    rng = np.random.default_rng(seed)
    m = b.manifest.model
    decide = Classifier(
        b.text_embeddings, b.labels, m.logit_scale, m.logit_bias, ClassifyConfig(), b.manifest.scoring
    )
    with Store(db) as store:
        store.start_run(RunInfo("tag", "card/", bundle=b, backend="onnxruntime-cpu", flavour="fp32"))
        for name, rgb in SITE.items():
            emb = _embed(b, _photos(rgb, per_label, rng))
            for j, (e, d) in enumerate(zip(emb, decide(emb), strict=True)):
                store.put(
                    MediaRecord(
                        path=f"card/{prefix}{name}_{j}.jpg", decision=d, embedding=e, width=16, height=16
                    )
                )
        store.put(MediaRecord(path="card/broken.jpg", status="failed", error="truncated JPEG"))
    with Store(db) as store:  # a live frame whose JPEG the runtime saved
        store.start_run(RunInfo("detect", "rtsp://pole", bundle=b, flavour="fp32"))
        e = _embed(b, _photos(SITE["Rubra rosea"], 1, rng))[0]
        store.put(
            MediaRecord(
                path="rtsp://pole", frame_index=0, kind="live", decision=decide(e[None])[0], embedding=e
            )
        )
    conn = schema.connect(db)
    conn.execute("UPDATE media SET saved_frame = 'frames/pole-0.jpg' WHERE kind = 'live'")
    conn.close()


def _annotate(db: Path, every: int = 1) -> dict[str, int]:
    """Verify the photos (label = the site's truth, read from the file name); returns label counts.

    One photo is first mislabelled then corrected, one is verified then undone, one is 'unknown'.
    """
    conn = schema.connect(db)
    counts: dict[str, int] = {}
    with Reader(db) as r:
        rows = [m for m in r.iter_media(predictions=False) if m.status == "done"]
    for k, row in enumerate(rows[::every]):
        label = Path(row.path).stem.rsplit("_", 1)[0]
        obs = OBS.get(label, "animal")
        if k == 0:
            wrong = add_annotation(conn, NewAnnotation(row.id, "Viridis silva", "animal", "ann"))
            add_annotation(conn, NewAnnotation(row.id, label, obs, "ann", replaces=wrong))
        elif k == 1:
            undone = add_annotation(conn, NewAnnotation(row.id, label, obs, "bob"))
            undo_annotation(conn, undone, "bob")
            continue
        elif k == 2:
            add_annotation(conn, NewAnnotation(row.id, "unknown", "unknown", "bob"))
            continue
        else:
            common = "sun bird" if label == "Aurantia sol" else ""
            add_annotation(conn, NewAnnotation(row.id, label, obs, "ann", common_name=common))
        counts[label] = counts.get(label, 0) + 1
    conn.close()
    return counts


def _agreement(db: Path) -> tuple[int, int]:
    """(rows whose decision matches the current annotation, annotated rows)."""
    with Reader(db) as r:
        current = r.current_annotations()
        right = total = 0
        for m in r.iter_media(predictions=False):
            a = current.get(m.id)
            if a is None or a.label == "unknown":
                continue
            total += 1
            right += (m.top_rank == "blank") if a.label == "blank" else (m.top_name == a.label)
    return right, total


@pytest.fixture()
def site(tmp_path):
    b = bf.load(make_bundle(tmp_path / "bundle"))
    db = tmp_path / "card.db"
    _tag(db, b, 6, seed=0)
    counts = _annotate(db)
    return {"bundle": b, "db": db, "counts": counts, "tmp": tmp_path}


def test_learn_cli_reads_current_annotations_and_writes_a_verified_bundle(site):
    out = site["tmp"] / "learned"
    unverified = site["tmp"] / "unverified.db"  # a second card nobody has reviewed yet
    _tag(unverified, site["bundle"], 2, seed=5)
    r = runner.invoke(
        app, ["learn", str(site["db"]), str(unverified), "--bundle", str(site["bundle"].root), "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    new = bf.load(out)  # verifies every checksum
    p = new.manifest.extra["learn"]
    assert p["counts"] == dict(sorted(site["counts"].items()))  # undone and 'unknown' left out
    assert p["skipped"] == {"unknown": 1}
    assert p["sources"][0]["path"] == str(site["db"].resolve())
    assert p["sources"][1]["verified"] == 0 and p["sources"][1]["with_embedding"] == 0
    assert "Aurantia sol" in p["added_species"]
    assert next(lab for lab in new.labels if lab.scientific_name == "Aurantia sol").common_name == "sun bird"
    assert "held-out top-1" in r.output and "retag" in r.output
    again = runner.invoke(
        app, ["learn", str(site["db"]), "--bundle", str(out), "-o", str(site["tmp"] / "twice")]
    )
    assert again.exit_code == 0 and "warning:" in again.output and "learned bundle" in again.output


def test_retag_redecides_from_embeddings_keeps_ids_and_annotations_and_agrees_more(site):
    db, out = site["db"], site["tmp"] / "learned"
    assert (
        runner.invoke(app, ["learn", str(db), "-b", str(site["bundle"].root), "-o", str(out)]).exit_code == 0
    )
    before = _agreement(db)
    with Reader(db) as r:
        ids = [m.id for m in r.iter_media(predictions=False)]
        annotations = r.current_annotations()
        n_emb = r.count_embeddings()
    res = runner.invoke(app, ["db", "retag", str(db), "--bundle", str(out)])
    assert res.exit_code == 0, res.output
    after = _agreement(db)
    assert after[1] == before[1] and after[0] > before[0]
    with Reader(db) as r:
        assert [m.id for m in r.iter_media(predictions=False)] == ids  # no row added or lost
        assert r.current_annotations() == annotations  # the people's word is untouched
        assert r.count_embeddings() == n_emb
        runs = r.runs()
        assert runs[-1].command == "retag" and runs[-1].bundle == str(out)
        broken = next(m for m in r.iter_media() if m.path == "card/broken.jpg")
        assert broken.status == "failed" and broken.run_id == runs[0].id  # no embedding: left alone
        live = next(m for m in r.iter_media() if m.kind == "live")
        assert live.run_id == runs[-1].id and live.saved_frame == "frames/pole-0.jpg"  # the saved JPEG kept
    again = runner.invoke(app, ["db", "retag", str(db), "--bundle", str(out)])  # idempotent
    assert again.exit_code == 0 and _agreement(db) == after
    with Reader(db) as r:
        assert [m.id for m in r.iter_media(predictions=False)] == ids


def test_learn_refuses_embeddings_from_another_model_in_one_line(site, tmp_path):
    other = tmp_path / "other"
    make_bundle(other, dim=16)
    manifest = other / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"colour-test"', '"another-model"'))  # not checksummed
    r = runner.invoke(app, ["learn", str(site["db"]), "--bundle", str(other), "-o", str(tmp_path / "x")])
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and r.output.startswith("error:") and "another-model" in r.output
    assert "colour-test" in r.output and not (tmp_path / "x").exists()
    r = runner.invoke(
        app,
        ["learn", str(tmp_path / "missing.db"), "-b", str(site["bundle"].root), "-o", str(tmp_path / "y")],
    )
    assert r.exit_code == 2 and r.output.startswith("error: database not found")


def test_learn_and_retag_run_without_torch_or_onnx(site):
    """The device install: numpy, ONNX Runtime, no torch and no onnx package."""
    out = site["tmp"] / "device-learned"
    code = (
        "import sys\n"
        "sys.modules['torch'] = None; sys.modules['onnx'] = None\n"
        "from lit_edge.cli.app import app\n"
        f"for argv in ({['learn', str(site['db']), '-b', str(site['bundle'].root), '-o', str(out)]!r},"
        f" {['db', 'retag', str(site['db']), '-b', str(out)]!r}):\n"
        "    try:\n        app(argv)\n    except SystemExit as e:\n        assert not e.code, e.code\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert bf.load(out).manifest.extra["learn"]["counts"]


def test_the_field_loop_through_the_real_tag_command(tmp_path):
    """tag (real JPEGs, real decoding, embeddings stored) -> people verify -> learn -> retag."""
    from bundle_factory import write_jpeg

    b = bf.load(make_bundle(tmp_path / "bundle"))
    folder = tmp_path / "card"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for name in ("Caerulea mare", "Rubra rosea", "blank"):
        for j, img in enumerate(_photos(SITE[name], 5, rng, size=(48, 64))):
            write_jpeg(folder / f"{name}_{j}.jpg", img)
    db = tmp_path / "card.db"
    r = runner.invoke(
        app, ["tag", str(folder), "--db", str(db), "-b", str(b.root), "--backend", "onnxruntime-cpu"]
    )
    assert r.exit_code == 0, r.output
    with Reader(db) as reader:
        assert reader.count_embeddings() == 15
    _annotate(db, every=2)  # people verify about half of the photos
    before = _agreement(db)
    out = tmp_path / "learned"
    r = runner.invoke(app, ["learn", str(db), "-b", str(b.root), "-o", str(out)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["db", "retag", str(db), "--bundle", str(out)])
    assert r.exit_code == 0, r.output
    after = _agreement(db)
    assert after[1] == before[1] and after[0] > before[0]
