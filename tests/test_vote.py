"""One decision per visit: the shared vote, an event's photos, and a clip's frames."""

from __future__ import annotations

import pytest

from lit_edge.device.classify import Decision, Prediction
from lit_edge.device.video.decision import clip_decision
from lit_edge.fielddata.events import Classification, classify_event
from lit_edge.vote import Ballot, tally

DEER = Prediction(3, "Capreolus capreolus", "roe deer", 0.0)
FOX = Prediction(7, "Vulpes vulpes", "red fox", 0.0)


def _frame(name: str, rank: str, score: float, top: tuple[tuple[Prediction, float], ...] = ()) -> Decision:
    preds = tuple(Prediction(p.label_id, p.scientific_name, p.common_name, s) for p, s in top)
    label = next((p.label_id for p in preds if p.scientific_name == name), None)
    return Decision(preds, label if rank == "species" else None, name, rank, score)


def test_tally_weighs_named_votes_and_falls_back_in_order():
    won = tally(
        [Ballot("animal", "A", "species", 0.9), Ballot("animal", "B", "species", 0.6), Ballot("blank")]
    )
    assert (won.kind, won.name, won.probability) == ("animal", "A", pytest.approx(0.45))
    # people first (privacy): a visit with a person in any photo is a human visit; then animals
    assert (
        tally([Ballot("animal", "B", "genus", 0.9), Ballot("human", "Homo sapiens", "species", 0.3)]).kind
        == "human"
    )
    assert tally([Ballot("vehicle", "car", None, 0.9), Ballot("animal", "B", "genus", 0.3)]).name == "B"
    assert tally([Ballot("blank"), Ballot("unknown")]).kind == "unknown"
    assert tally([Ballot("blank"), Ballot("unclassified")]).kind == "blank"
    assert tally([]).kind == "unclassified"


def test_events_and_clips_decide_alike():
    frames = [
        _frame("Capreolus capreolus", "species", 0.8, ((DEER, 0.8), (FOX, 0.1))),
        _frame("Capreolus capreolus", "species", 0.6, ((DEER, 0.6), (FOX, 0.3))),
        _frame("Vulpes vulpes", "species", 0.7, ((FOX, 0.7), (DEER, 0.2))),
        _frame("blank", "blank", 0.9, ((DEER, 0.05),)),
    ]
    clip = clip_decision(frames)
    event = classify_event(
        [Classification("animal", f.name, f.rank, f.score) for f in frames[:3]] + [Classification("blank")]
    )
    assert (clip.name, clip.rank, clip.label_id) == ("Capreolus capreolus", "species", 3)
    assert (event.scientific_name, event.rank) == (clip.name, clip.rank)
    assert clip.score == pytest.approx(event.probability) == pytest.approx((0.8 + 0.6) / 3)
    # the clip's top-k: scores averaged over all four frames
    assert [(p.label_id, round(p.score, 4)) for p in clip.top] == [(3, 0.4125), (7, 0.275)]


def test_clips_of_nothing_named():
    blank = clip_decision([_frame("blank", "blank", 0.9), _frame("blank", "blank", 0.7)])
    assert (blank.rank, blank.name, blank.score) == ("blank", "blank", pytest.approx(0.8))
    unsure = clip_decision([_frame("blank", "blank", 0.9), _frame("uncertain", "uncertain", 0.3)])
    assert unsure.rank == "uncertain" and unsure.label_id is None
    rolled = clip_decision([_frame("Cervidae", "family", 0.7), _frame("uncertain", "uncertain", 0.2)])
    assert (rolled.name, rolled.rank, rolled.label_id) == ("Cervidae", "family", None)
    person = clip_decision([_frame("human", "human", 0.9), _frame("blank", "blank", 0.9)])
    assert person.rank == "human"
    assert clip_decision([]) is None


def test_a_resumed_clip_votes_with_the_frames_already_in_the_database(tmp_path):
    from fielddata_fixtures import DEER as DEER_ROW
    from fielddata_fixtures import _decided, fill_db
    from lit_edge.db.reader import read_detections
    from lit_edge.device.video.decision import decision_of

    db = tmp_path / "clip.db"
    rows = [
        {"path": "/c/a.mp4", "kind": "frame", "frame_index": i, **_decided(DEER_ROW, 0.8)} for i in (0, 30)
    ]
    rows.append({"path": "/c/a.mp4", "kind": "frame", "frame_index": 60, "status": "failed", "error": "x"})
    fill_db(db, rows)
    stored = [decision_of(m) for m in read_detections(db).media]
    assert stored[2] is None  # a failed frame has no decision
    earlier = [d for d in stored if d is not None]
    assert [(d.name, d.rank, d.label_id, d.score) for d in earlier] == [
        ("Capreolus capreolus", "species", 2, 0.8)
    ] * 2
    now = _frame("Vulpes vulpes", "species", 0.9, ((FOX, 0.9),))
    clip = clip_decision([*earlier, now])
    assert clip.name == "Capreolus capreolus" and clip.score == pytest.approx(1.6 / 3)
