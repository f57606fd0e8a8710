"""DJI telemetry: every fieldset SRT dialect, generated SRTs in both tuple orders, and frames stamped
from a clip's SRT."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

import pytest

from clip_factory import srt_text, track, write_clip
from lit_edge.device.telemetry import find_telemetry, load_telemetry, parse_srt
from lit_edge.device.video import ClipSampler, SampleConfig, probe
from lit_edge.device.video.stamps import stamp
from lit_edge.timezones import parse_offset


def _metres(lat1, lon1, lat2, lon2) -> float:
    """Great-circle distance (haversine, mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371008.8 * math.asin(math.sqrt(a))


def _srt_files(fieldset):
    return sorted((fieldset / "drone-srt").iterdir())


def _blocks_in(text: str) -> int:
    """How many entries the file itself holds: timecode lines, or (Mavic 2 style) dated blocks."""
    timecodes = len(re.findall(r"-->", text))
    if timecodes:
        return timecodes
    return len(re.findall(r"^\d+\s*\n\d{4}[.-]\d", text, re.M))


def test_every_fieldset_srt_parses_or_warns(fieldset, caplog):
    for path in _srt_files(fieldset):
        text = path.read_text(encoding="utf-8", errors="replace")
        t = load_telemetry(path)  # never raises
        if path.name.startswith("broken_empty"):
            assert t.entries == () and "no telemetry entries" in t.warning, path.name
            continue
        assert len(t.entries) == _blocks_in(text), path.name
        starts = [e.start_s for e in t.entries]
        assert starts == sorted(starts) and all(e.end_s >= e.start_s for e in t.entries), path.name
        for e in t.entries:
            if e.has_position:
                assert -90 <= e.latitude <= 90 and -180 <= e.longitude <= 180
        times = [e.local_time for e in t.entries if e.local_time is not None]
        assert times == sorted(times), path.name
    assert any("broken_empty.SRT" in r.message for r in caplog.records)  # a logged warning line


def test_cut_off_and_position_less_files_warn_but_keep_their_entries(fieldset):
    cut = load_telemetry(fieldset / "drone-srt" / "broken_incomplete.SRT")
    assert cut.entries[-1].latitude is None and cut.entries[0].has_position
    assert "1 of 20 telemetry entries have no position" in cut.warning
    air = load_telemetry(fieldset / "drone-srt" / "mavic_air.SRT")
    assert len(air.entries) == 2 and not air.has_positions and "no GPS position" in air.warning


@pytest.mark.parametrize("name", ["p4_rtk.SRT", "mix_p4rtk_mavic2pro.srt"])
def test_longitude_first_tuples_agree_with_the_files_own_distance_to_home(fieldset, name):
    """``GPS (a, b, n)``, ``HOME (a, b, ...)`` and ``D`` (metres to home): only lon-first fits ``D``."""
    path = fieldset / "drone-srt" / name
    t = load_telemetry(path)
    assert "lon,lat" in t.coordinate_order
    text = path.read_text(encoding="utf-8-sig")
    rows = re.findall(r"GPS \(([-\d.]+), ([-\d.]+), \d+\), HOME \(([-\d.]+), ([-\d.]+),.*?D ([\d.]+)m", text)
    assert len(rows) >= 5
    right = wrong = 0.0
    for a, b, ha, hb, d in rows:
        a, b, ha, hb, d = map(float, (a, b, ha, hb, d))
        err = abs(_metres(b, a, hb, ha) - d)  # read as (lon, lat)
        assert err < 0.01 * d + 1.5, (d, err)
        right, wrong = right + err, wrong + abs(_metres(a, b, ha, hb) - d)  # as (lat, lon)
    assert right < 0.2 * wrong
    first = next(e for e in t.entries if e.has_position)
    assert (first.longitude, first.latitude) == (float(rows[0][0]), float(rows[0][1]))


def test_a_mixed_file_places_keyed_and_tuple_entries_together(fieldset):
    t = load_telemetry(fieldset / "drone-srt" / "mix_p4rtk_mavic2pro.srt")
    assert t.coordinate_order == "keyed+lon,lat"
    pos = [(e.latitude, e.longitude) for e in t.entries if e.has_position]
    assert len(pos) == 12
    for lat, lon in pos:  # both dialects put the drone within 200 m of each other
        assert _metres(lat, lon, *pos[0]) < 200


def test_matrice_300_is_latitude_first_and_old_formats_longitude_first(fieldset):
    m300 = load_telemetry(fieldset / "drone-srt" / "matrice_300.srt")
    assert m300.coordinate_order == "lat,lon"  # the 'M' unit on the third value: GPS(lat,lon,altM)
    assert (m300.entries[0].latitude, m300.entries[0].longitude) == (36.6146, -6.112)
    assert m300.entries[8].relative_altitude == 21.8  # BAROMETER:21.8M
    for name in ("mavic_pro.SRT", "old_format.SRT", "mavic_mini.SRT"):
        t = load_telemetry(fieldset / "drone-srt" / name)
        # a value beyond 90 can only be a longitude: these files are longitude first
        assert t.coordinate_order == "lon,lat" and abs(t.entries[0].longitude) > 90, name
    keyed = load_telemetry(fieldset / "drone-srt" / "MAVIC3.srt")
    e = keyed.entries[0]
    assert (e.latitude, e.longitude, e.relative_altitude, e.absolute_altitude) == (
        3.41531,
        -3.3744,
        -2.4,
        0.401,
    )
    assert e.local_time == datetime(2021, 12, 25, 12, 27, 52, 373000)


@pytest.mark.parametrize("order", ["lon,lat", "lat,lon"])
def test_generated_720p_clip_with_its_srt_stamps_every_frame(tmp_path, order):
    clip = write_clip(tmp_path / "DJI_0042.MP4", frames=150, fps=30.0)
    start = datetime(2024, 5, 17, 6, 42, 10)
    (tmp_path / "DJI_0042.srt").write_text(srt_text(5, order, start), encoding="utf-8")  # any case
    found = find_telemetry(clip)
    assert found == tmp_path / "DJI_0042.srt"
    t = load_telemetry(found)
    assert t.coordinate_order == order and t.warning is None and len(t.entries) == 5
    info = probe(clip)
    tz = parse_offset("-07:00", "--utc-offset")
    frames = list(ClipSampler(clip, SampleConfig(every_s=1.0, keyframes=False)).frames())
    assert [f.index for f in frames] == [0, 30, 60, 90, 120]
    for f in frames:
        s = stamp(info, f.offset_s, t, tz)
        lat, lon, h = track(int(f.offset_s))
        assert (s.latitude, s.longitude) == (round(lat, 4), round(lon, 4))
        assert s.relative_altitude == pytest.approx(h)
        assert s.altitude == (pytest.approx(h + 120) if order == "lat,lon" else None)
        assert s.time_source == "telemetry"
        assert datetime.fromisoformat(s.captured_at) == (start + timedelta(seconds=f.offset_s)).replace(
            tzinfo=tz
        )


def test_without_telemetry_frames_take_the_clips_start_plus_their_offset(tmp_path):
    clip = write_clip(tmp_path / "PICT0001.AVI", frames=60, fps=30.0, size=(320, 240), fourcc="MJPG")
    assert find_telemetry(clip) is None
    info = probe(clip)
    s = stamp(info, 1.5)
    assert s.time_source == "mtime" and s.latitude is None
    got = datetime.fromisoformat(s.captured_at)
    assert abs(got - (info.start + timedelta(seconds=1.5))) < timedelta(milliseconds=1)
    # the file was written when recording stopped: it started one clip length before
    assert info.start.tzinfo is timezone.utc
    assert info.start.timestamp() == pytest.approx(clip.stat().st_mtime - info.duration_s, abs=1e-3)


def test_lookup_between_and_beyond_entries():
    t = parse_srt(srt_text(3, "lon,lat", datetime(2024, 1, 1, 12, 0, 0)))
    assert t.lookup(0.0).start_s == 0.0 and t.lookup(2.99).start_s == 2.0
    assert t.lookup(3.5).start_s == 2.0  # just past the last entry: still it
    assert t.lookup(10.0) is None  # far beyond: no position rather than a wrong one
    assert parse_srt("").entries == () and parse_srt("1\n").warning
    assert parse_srt("\x00\xff garbage \n\n 12 \n").entries == ()
