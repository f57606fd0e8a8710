"""Annotations and the review queue on real SQLite files: history, undo, concurrency, pagination."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest

from lit_edge.db import annotations as ann
from lit_edge.db import queue
from lit_edge.db.annotations import AnnotationError, Verdict
from lit_edge.db.reader import Reader
from lit_edge.db.schema import connect
from review_fixtures import Shot, record

FOX = ("Vulpes vulpes", "red fox")
BADGER = ("Meles meles", "European badger")


def _db(tmp_path, scores, **kw) -> tuple[sqlite3.Connection, list[int]]:
    shots = [
        Shot(tmp_path / "card" / f"p{i:03d}.jpg", f"2024-05-01T06:00:{i % 60:02d}", FOX[0], "species", s,
             [(*FOX, s or 0.5), (*BADGER, 0.1)], **kw)
        for i, s in enumerate(scores)
    ]  # fmt: skip
    ids = record(tmp_path / "d.db", shots)
    return connect(tmp_path / "d.db"), ids


def test_history_is_append_only_and_predictions_stay(tmp_path):
    conn, (m, *_) = _db(tmp_path, [0.4, 0.9])
    before = conn.execute("SELECT * FROM predictions ORDER BY id").fetchall()
    (w1,) = ann.annotate(conn, [(m, Verdict.of(*FOX))], "ann")
    (w2,) = ann.annotate(conn, [(m, Verdict.of(*BADGER))], "bob")
    assert w2.superseded.id == w1.current.id and w2.current.replaces == w1.current.id
    assert ann.current(conn, [m])[m].label == "Meles meles"
    assert [a.label for a in ann.history(conn, m)] == ["Vulpes vulpes", "Meles meles"]
    assert conn.execute("SELECT * FROM predictions ORDER BY id").fetchall() == before
    assert conn.execute("SELECT top_name FROM media WHERE id = ?", (m,)).fetchone()[0] == "Vulpes vulpes"
    # the same word again by the same person is not history
    (w3,) = ann.annotate(conn, [(m, Verdict.of(*BADGER))], "bob")
    assert w3.written == () and len(ann.history(conn, m)) == 2


def test_undo_restores_what_a_correction_replaced(tmp_path):
    conn, (m, n) = _db(tmp_path, [0.4, 0.9])
    (first,) = ann.annotate(conn, [(m, Verdict.of(*FOX))], "ann")
    (fix,) = ann.annotate(conn, [(m, Verdict.of("blank"))], "bob")
    assert fix.current.observation_type == "blank"
    (undone,) = ann.undo(conn, [fix.current.id], "bob")
    assert undone.current.label == "Vulpes vulpes" and undone.current.reviewer == "ann"
    assert ann.current(conn, [m])[m].label == "Vulpes vulpes"
    # undoing the first word leaves the photo unverified; the history keeps all five rows
    ann.undo(conn, [undone.current.id], "ann")
    assert m not in ann.current(conn, [m])
    rows = ann.history(conn, m)
    assert [(a.label, a.retracted) for a in rows] == [
        ("Vulpes vulpes", False), ("blank", False), ("blank", True), ("Vulpes vulpes", False),
        ("Vulpes vulpes", True),
    ]  # fmt: skip
    # the contract's rule, written independently: newest row nothing replaces, not retracted
    replaced = {a.replaces for a in rows}
    assert not [a for a in rows if a.id not in replaced and not a.retracted]
    # a longer walk: fox, blank, undo (fox again), deer, undo (fox again), undo -> unverified
    (w,) = ann.annotate(conn, [(n, Verdict.of(*FOX))], "ann")
    (x,) = ann.annotate(conn, [(n, Verdict.of("blank"))], "ann")
    (r1,) = ann.undo(conn, [x.current.id], "ann")
    assert r1.restores == w.current.id
    (y,) = ann.annotate(conn, [(n, Verdict.of("Capreolus capreolus"))], "ann")
    (r2,) = ann.undo(conn, [y.current.id], "ann")
    assert r2.current.label == "Vulpes vulpes" and r2.restores == r1.current.id
    (gone,) = ann.undo(conn, [r2.current.id], "ann")
    assert gone.current is None and n not in ann.current(conn, [n])
    # an undo of a row that is no longer current is refused, naming why
    (again,) = ann.annotate(conn, [(n, Verdict.of(*FOX))], "ann")
    ann.annotate(conn, [(n, Verdict.of(*BADGER))], "bob")
    with pytest.raises(AnnotationError, match="bob set it to Meles meles"):
        ann.undo(conn, [again.current.id], "ann")


def test_accept_takes_the_machine_decision_and_skips_undecided(tmp_path):
    shots = [
        Shot(tmp_path / "a.jpg", None, "Vulpes", "genus", 0.7, [(*FOX, 0.4)]),
        Shot(tmp_path / "b.jpg", None, "uncertain", "uncertain", 0.2, [(*FOX, 0.2)]),
        Shot(tmp_path / "c.jpg", None, "blank", "blank", 0.8, []),
        Shot(tmp_path / "d.jpg", None, "animal", "animal", 0.6, []),
        Shot(tmp_path / "e.jpg", None, *FOX[:1], "species", 0.9, [(*FOX, 0.9)]),
    ]
    ids = record(tmp_path / "d.db", shots)
    conn = connect(tmp_path / "d.db")
    out = ann.accept(conn, ids, "ann")
    got = {w.media_id: (w.current.label, w.current.observation_type, w.current.common_name) for w in out}
    assert got == {
        ids[0]: ("Vulpes", "animal", ""),
        ids[2]: ("blank", "blank", ""),
        ids[3]: ("Animalia", "animal", ""),
        ids[4]: ("Vulpes vulpes", "animal", "red fox"),
    }


def test_bad_writes_are_refused_whole(tmp_path):
    conn, (m, _) = _db(tmp_path, [0.4, 0.9])
    with pytest.raises(AnnotationError, match="no media row with id 999"):
        ann.annotate(conn, [(m, Verdict.of(*FOX)), (999, Verdict.of(*FOX))], "ann")
    assert ann.history(conn, m) == []  # one transaction: nothing of it was written
    with pytest.raises(AnnotationError, match="reviewer"):
        ann.annotate(conn, [(m, Verdict.of(*FOX))], "  ")
    with pytest.raises(AnnotationError, match="label"):
        Verdict.of(" ")
    assert Verdict.of(" Blank ").label == "blank" and Verdict.of("HUMAN").observation_type == "human"


def _writer(db: str, reviewer: str, ids: list[int], labels: list[str], barrier) -> None:
    conn = connect(db)
    barrier.wait()
    for i, label in zip(ids, labels, strict=True):
        ann.annotate(conn, [(i, Verdict.of(label))], reviewer)
    conn.close()


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    """Two reviewers (two processes, two connections) annotate the same 60 photos at the same time."""
    conn, ids = _db(tmp_path, [0.1 + i / 100 for i in range(60)])
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    jobs = [
        ctx.Process(
            target=_writer, args=(str(tmp_path / "d.db"), "ann", ids, ["Vulpes vulpes"] * 60, barrier)
        ),
        ctx.Process(
            target=_writer, args=(str(tmp_path / "d.db"), "bob", ids[::-1], ["Meles meles"] * 60, barrier)
        ),
    ]
    for j in jobs:
        j.start()
    for j in jobs:
        j.join(120)
        assert j.exitcode == 0
    rows = conn.execute("SELECT media_id, reviewer, replaces, id FROM annotations").fetchall()
    assert len(rows) == 120  # every write is there
    by_media = {}
    for media_id, reviewer, replaces, i in rows:
        by_media.setdefault(media_id, []).append((i, reviewer, replaces))
    for chain in by_media.values():
        # serialised: the second write of each photo replaces the first, never a sibling of it
        chain.sort()
        assert {r for _, r, _ in chain} == {"ann", "bob"}
        assert chain[0][2] is None and chain[1][2] == chain[0][0]
    with Reader(tmp_path / "d.db") as r:
        assert len(r.current_annotations()) == 60


def test_pages_cover_the_queue_once_in_doubt_order(tmp_path):
    scores = [0.5, None, 0.2, 0.9, 0.2, 0.7, None, 0.1, 0.3]
    conn, ids = _db(tmp_path, scores)
    ann.annotate(conn, [(ids[3], Verdict.of(*FOX))], "ann")  # 0.9 is verified
    seen, after = [], None
    while True:
        p = queue.page(conn, queue.View(order="doubt", status="todo", limit=2), after)
        seen += [i.id for i in p.items]
        assert len(p.items) <= 2
        if p.next is None:
            break
        after = queue.Cursor.decode(p.next.encode())
    expected = [ids[1], ids[6]] + sorted(
        (i for i, s in zip(ids, scores, strict=True) if s is not None and i != ids[3]),
        key=lambda i: (scores[ids.index(i)], i),
    )
    assert seen == expected
    verified = queue.page(conn, queue.View(status="verified"))
    assert [i.id for i in verified.items] == [ids[3]]
    assert verified.items[0].annotation.label == "Vulpes vulpes"
    top = verified.items[0].predictions
    assert [(p.position, p.scientific_name) for p in top] == [(1, "Vulpes vulpes"), (2, "Meles meles")]
    assert queue.counts(conn) == queue.Counts(reviewable=9, verified=1)


def test_views_by_species_and_folder(tmp_path):
    shots = [
        Shot(tmp_path / "cam1" / "a.jpg", "2024-05-01T06:00:10", *FOX[:1], "species", 0.6, [(*FOX, 0.6)]),
        Shot(
            tmp_path / "cam1" / "b.jpg", "2024-05-01T06:00:00", *BADGER[:1], "species", 0.5, [(*BADGER, 0.5)]
        ),
        Shot(tmp_path / "cam1" / "sub" / "c.jpg", "2024-05-01T05:00:00", *FOX[:1], "species", 0.4, []),
        Shot(tmp_path / "cam10" / "d.jpg", "2024-05-01T04:00:00", *FOX[:1], "species", 0.3, []),
        Shot(tmp_path / "cam1" / "e.jpg", None, *FOX[:1], "species", 0.3, [], status="failed"),
        Shot(tmp_path / "cam1" / "clip.mp4", None, *FOX[:1], "species", 0.8, [], kind="frame", frame_index=3),
    ]
    ids = record(tmp_path / "d.db", shots)
    conn = connect(tmp_path / "d.db")
    folder = str(tmp_path / "cam1") + "/"
    assert [i.id for i in queue.page(conn, queue.View(order="time", folder=folder)).items] == [ids[1], ids[0]]
    assert [i.id for i in queue.page(conn, queue.View(species="Vulpes vulpes")).items] == [
        ids[3],
        ids[2],
        ids[0],
    ]
    assert [(g.key, g.count) for g in queue.species(conn)] == [("Vulpes vulpes", 3), ("Meles meles", 1)]
    ann.annotate(conn, [(ids[0], Verdict.of("blank")), (ids[2], Verdict.of(*FOX))], "ann")
    assert queue.verified_by(conn, "species") == {"Vulpes vulpes": 2}
    assert queue.verified_by(conn, "folders") == {folder: 1, folder + "sub/": 1}
    assert [(g.key, g.count) for g in queue.folders(conn)] == [
        (folder, 2), (folder + "sub/", 1), (str(tmp_path / "cam10") + "/", 1)
    ]  # fmt: skip
    assert [i.id for i in queue.folder_rows(conn, folder)] == [ids[1], ids[0]]


def test_cursor_text_is_checked():
    assert queue.Cursor.decode(queue.Cursor(0.25, 7).encode()) == queue.Cursor(0.25, 7)
    assert queue.Cursor.decode(queue.Cursor(None, 3).encode()) == queue.Cursor(None, 3)
    assert queue.Cursor.decode(queue.Cursor("2024-05-01T06:00", 3).encode()).key == "2024-05-01T06:00"
    for bad in ("", "x:1:2", "f:one:0.5", "f:1:half"):
        with pytest.raises(ValueError, match="not a page cursor"):
            queue.Cursor.decode(bad)


def test_one_row_entries_in_the_writer_use_the_same_rules(tmp_path):
    from lit_edge.db.writer import NewAnnotation, add_annotation, undo_annotation
    from lit_edge.errors import UserError

    conn, (m, _) = _db(tmp_path, [0.4, 0.9])
    wrong = add_annotation(conn, NewAnnotation(m, "Meles meles", "animal", "ann"))
    right = add_annotation(conn, NewAnnotation(m, "Vulpes vulpes", "animal", "ann", replaces=wrong))
    with pytest.raises(UserError, match=f"annotation {wrong} was already replaced"):
        add_annotation(conn, NewAnnotation(m, "blank", "blank", "bob", replaces=wrong))
    undone = undo_annotation(conn, right, "ann")
    assert ann.history(conn, m)[-2].id == undone and ann.history(conn, m)[-2].retracted
    assert ann.current(conn, [m])[m].label == "Meles meles"  # the corrected word is back
    with pytest.raises(UserError, match="no media row with id 999"):
        add_annotation(conn, NewAnnotation(999, "blank", "blank", "ann"))
