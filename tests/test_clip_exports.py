"""Clips in the field-data exports: Camtrap DP media of their own, observations spanning their frames."""

from __future__ import annotations

import csv
import re
from datetime import datetime, timedelta

import pytest

from clip_factory import flight_db, write_clip
from fielddata_fixtures import CHROMIUM, DEER, _decided, cli, fill_db, make_field, parse, render
from lit_edge.device.video import ClipSampler, SampleConfig, probe
from lit_edge.device.video.stamps import stamp
from lit_edge.fielddata.validate import validate_package


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
            _decided(DEER, 0.8)
            if f.index in (30, 60, 90)
            else {"top_name": "blank", "top_rank": "blank", "top_score": 0.9}
        )
        frame_rows.append(
            {
                "path": str(clip.resolve()),
                "kind": "frame",
                "frame_index": f.index,
                "offset_s": f.offset_s,
                "captured_at": s.captured_at,
                "time_source": s.time_source,
                **decided,
            }
        )
    clip_row = {
        "path": str(clip.resolve()),
        "kind": "clip",
        "frame_index": -1,
        "duration_s": info.duration_s,
        "captured_at": start.isoformat(),
        "time_source": "container",
        "latitude": 51.1801,
        "longitude": 4.3501,
        **_decided(DEER, 0.8),
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


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (Debian: apt-get install chromium)")
def test_report_draws_each_flight_with_its_detections_offline(tmp_path):
    db, clip = flight_db(tmp_path)
    out = tmp_path / "report.html"
    r = cli("report", db, "-o", out)
    assert r.exit_code == 0, r.output
    html = out.read_text(encoding="utf-8")
    svg = re.search(r'<svg class="flight".*?</svg>', html, re.S).group(0)
    assert f'data-path="{clip}"' in svg
    points = re.search(r'<polyline class="track" points="([^"]+)"', svg).group(1).split()
    assert len(points) == 5  # one vertex per sampled frame
    xs = [float(p.split(",")[0]) for p in points]
    assert xs == sorted(xs)  # the made-up flight goes east: x grows
    dots = re.findall(r'<circle class="detection".*?<title>([^<]+)</title>', svg)
    assert len(dots) == 2 and all(
        t.startswith("Capreolus capreolus 0.90 at 2024-05-17T06:42:1") for t in dots
    )
    dom, console = render(out, tmp_path / "profile")  # headless Chromium, network off
    page = parse(dom)
    assert console == [] and page.errors.strip() == "" and page.body.get("data-rendered") == "ok"
    assert "Flights (1)" in " ".join(page.text)
    # the deer's thumbnails are its clip frames, decoded from the clip; the fox photo was never written
    assert len(page.imgs) == 2 and all(src.startswith("data:image/jpeg;base64,/9j/") for src in page.imgs)
