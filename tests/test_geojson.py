"""GeoJSON export: detections as points and drone tracks as lines, read back by an independent reader."""

from __future__ import annotations

from datetime import datetime

import geojson
import pytest
from typer.testing import CliRunner

from clip_factory import write_clip
from fielddata_fixtures import BADGER, DEER, FOX, fill_db
from lit_edge.cli.app import app
from lit_edge.device.telemetry import find_telemetry, load_telemetry
from lit_edge.device.video import ClipSampler, SampleConfig, probe
from lit_edge.device.video.stamps import stamp
from test_telemetry import _srt, _track


def _named(top, score):
    return {
        "top_label_id": top[0],
        "top_name": top[1],
        "top_rank": "species",
        "top_score": score,
        "predictions": [(*top, score), (*BADGER, round(1 - score, 3))],
    }


@pytest.fixture
def flight(tmp_path):
    """A drone clip with its SRT, sampled and stamped for real; a photo with GPS; a blank; one unplaced."""
    clip = write_clip(tmp_path / "DJI_0007.MP4", frames=150, size=(320, 240))
    (tmp_path / "DJI_0007.SRT").write_text(
        _srt(5, "lat,lon", datetime(2024, 5, 17, 6, 42, 10)), encoding="utf-8"
    )
    info, tele = probe(clip), load_telemetry(find_telemetry(clip))
    rows = []
    for f in ClipSampler(clip, SampleConfig(keyframes=False)).frames():
        s = stamp(info, f.offset_s, tele)
        row = {
            "path": str(clip),
            "frame_index": f.index,
            "captured_at": s.captured_at,
            "time_source": s.time_source,
            "latitude": s.latitude,
            "longitude": s.longitude,
            "altitude": s.altitude,
        }
        rows.append(
            {
                **row,
                **(
                    _named(DEER, 0.9)
                    if f.index in (30, 90)
                    else {"top_name": "blank", "top_rank": "blank", "top_score": 0.8}
                ),
            }
        )
    rows.append(
        {
            "path": str(tmp_path / "IMG_1.JPG"),
            "captured_at": "2024-05-17T07:00:00",
            "latitude": -20.2533,
            "longitude": 149.0251,
            **_named(FOX, 0.7),
        }
    )
    rows.append(
        {"path": str(tmp_path / "IMG_2.JPG"), "captured_at": "2024-05-17T07:01:00", **_named(FOX, 0.8)}
    )
    db = tmp_path / "flight.db"
    fill_db(db, rows)
    return db, clip


def test_geojson_points_and_tracks_read_back(flight, tmp_path):
    db, clip = flight
    out = tmp_path / "map.geojson"
    result = CliRunner().invoke(app, ["db", "export", str(db), "--format", "geojson", "-o", str(out)])
    assert result.exit_code == 0, result.output
    fc = geojson.loads(out.read_text(encoding="utf-8"))
    assert isinstance(fc, geojson.FeatureCollection) and fc.is_valid, fc.errors()
    points = [f for f in fc.features if f.geometry.type == "Point"]
    lines = [f for f in fc.features if f.geometry.type == "LineString"]
    # two deer frames on the flight and the fox photo with GPS; the unplaced fox and blanks are not points
    assert sorted(p.properties["scientificName"] for p in points) == ["Capreolus capreolus"] * 2 + [
        "Vulpes vulpes"
    ]
    fox = next(p for p in points if p.properties["scientificName"] == "Vulpes vulpes")
    assert fox.geometry.coordinates == [149.0251, -20.2533]  # RFC 7946: longitude first
    assert fox.properties["commonName"] == "red fox" and fox.properties["score"] == 0.7
    deer = sorted(
        (p for p in points if p.properties["frameIndex"] is not None),
        key=lambda p: p.properties["frameIndex"],
    )
    for p, second in zip(deer, (1, 3), strict=True):
        lat, lon, h = _track(second)
        assert p.geometry.coordinates == [round(lon, 4), round(lat, 4), round(h + 120, 2)]
        assert p.properties["time"].startswith(f"2024-05-17T06:42:1{second}")
    (track,) = lines
    assert track.properties["path"] == str(clip) and track.properties["frames"] == 5
    assert [c[:2] for c in track.geometry.coordinates] == [
        [round(_track(i)[1], 4), round(_track(i)[0], 4)] for i in range(5)
    ]


def test_geojson_without_positions_is_an_empty_valid_collection(tmp_path):
    db = tmp_path / "x.db"
    fill_db(db, [{"path": str(tmp_path / "a.jpg"), **_named(FOX, 0.9)}])
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(app, ["db", "export", str(db), "--format", "geojson", "-o", str(out)])
    assert result.exit_code == 0, result.output
    fc = geojson.loads((out / "detections.geojson").read_text(encoding="utf-8"))
    assert fc.is_valid and fc.features == []
