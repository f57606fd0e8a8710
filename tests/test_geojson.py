"""GeoJSON export: detections as points and drone tracks as lines, read back by an independent reader."""

from __future__ import annotations

import geojson
import pytest
from typer.testing import CliRunner

from clip_factory import flight_db, track
from fielddata_fixtures import FOX, _decided, fill_db
from lit_edge.cli.app import app


@pytest.fixture
def flight(tmp_path):
    return flight_db(tmp_path)


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
        lat, lon, h = track(second)
        assert p.geometry.coordinates == [round(lon, 4), round(lat, 4), round(h + 120, 2)]
        assert p.properties["relativeAltitude"] == pytest.approx(h)
        assert p.properties["time"].startswith(f"2024-05-17T06:42:1{second}")
    (flight_line,) = lines
    assert flight_line.properties["path"] == str(clip) and flight_line.properties["frames"] == 5
    assert [c[:2] for c in flight_line.geometry.coordinates] == [
        [round(track(i)[1], 4), round(track(i)[0], 4)] for i in range(5)
    ]


def test_geojson_without_positions_is_an_empty_valid_collection(tmp_path):
    db = tmp_path / "x.db"
    fill_db(db, [{"path": str(tmp_path / "a.jpg"), **_decided(FOX, 0.9)}])
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(app, ["db", "export", str(db), "--format", "geojson", "-o", str(out)])
    assert result.exit_code == 0, result.output
    fc = geojson.loads((out / "detections.geojson").read_text(encoding="utf-8"))
    assert fc.is_valid and fc.features == []
