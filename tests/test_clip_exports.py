"""Clips in the field-data exports: Camtrap DP media of their own, observations spanning their frames."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta

from clip_factory import write_clip
from fielddata_fixtures import BADGER, DEER, cli, fill_db, make_field
from lit_edge.device.video import ClipSampler, SampleConfig, probe
from lit_edge.device.video.stamps import stamp
from lit_edge.fielddata.validate import validate_package


def _named(top, score):
    return {
        "top_label_id": top[0],
        "top_name": top[1],
        "top_rank": "species",
        "top_score": score,
        "predictions": [(*top, score), (*BADGER, round(1 - score, 3))],
    }


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_camtrap_dp_clip_is_one_video_media_with_the_deers_time_range(tmp_path):
    field = make_field(tmp_path)  # two camera folders of photos, and their database
    site = field["a"]
    clip = write_clip(site / "PICT0042.AVI", frames=150, size=(320, 240), fourcc="MJPG")
    info = probe(clip)
    start = datetime(2024, 5, 1, 8, 0, 0)
    info = type(info)(**{**info.__dict__, "start": start, "time_source": "container"})
    frame_rows = []
    for f in ClipSampler(clip, SampleConfig(), info=info).frames():  # frames 0, 30, 60, 90, 120
        s = stamp(info, f.offset_s)
        decided = (
            _named(DEER, 0.8)
            if f.index in (30, 60, 90)
            else {"top_name": "blank", "top_rank": "blank", "top_score": 0.9}
        )
        frame_rows.append(
            {
                "path": str(clip.resolve()),
                "frame_index": f.index,
                "captured_at": s.captured_at,
                "time_source": s.time_source,
                **decided,
            }
        )
    clip_row = {
        "path": str(clip.resolve()),
        "frame_index": -1,
        "captured_at": start.isoformat(),
        "time_source": "container",
        "latitude": 51.1801,
        "longitude": 4.3501,
        **_named(DEER, 0.8),
    }
    fill_db(field["db"], [clip_row, *frame_rows])

    out = tmp_path / "dp"
    r = cli("db", "export", field["db"], "--format", "camtrap-dp", "-o", out, "--bundle", field["bundle"])
    assert r.exit_code == 0, r.output
    assert list(validate_package(out / "datapackage.json").errors) == []

    media = _rows(out / "media.csv")
    clips = [m for m in media if m["fileName"] == "PICT0042.AVI"]
    assert len(clips) == 1 and len(media) == 7  # the clip once, not once per frame
    assert (
        clips[0]["fileMediatype"] == "video/x-msvideo"
        and clips[0]["timestamp"] == "2024-05-01T08:00:00+00:00"
    )
    assert {m["fileMediatype"] for m in media if m is not clips[0]} == {"image/jpeg"}
    obs = [o for o in _rows(out / "observations.csv") if o["mediaID"] == clips[0]["mediaID"]]
    (o,) = obs
    assert o["scientificName"] == "Capreolus capreolus" and o["observationLevel"] == "media"
    # the deer is in the frames at 1, 2 and 3 s: the observation spans them, within the clip
    assert (o["eventStart"], o["eventEnd"]) == (
        (start + timedelta(seconds=1)).isoformat() + "+00:00",
        (start + timedelta(seconds=3)).isoformat() + "+00:00",
    )
