"""Decoding real files with OpenCV: EXIF, orientation, reduced decode and awkward pixel formats."""

from __future__ import annotations

import resource

import cv2
import numpy as np
import pytest

from bundle_factory import giant_grey_jpeg, jpeg_with_exif, solid, write_jpeg
from lit_edge.bundle import Preprocess
from lit_edge.device.decode import DecodeError, decode_file, reduce_factor
from lit_edge.device.exif import read_jpeg_info
from lit_edge.device.preprocess import min_decode_side, prepare


def _halves(h=40, w=60):
    """Left half red, right half blue: its orientation is visible in the decoded pixels."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (255, 0, 0)
    img[:, w // 2 :] = (0, 0, 255)
    return img


def test_exif_time_gps_and_orientation_are_read(tmp_path):
    p = jpeg_with_exif(
        tmp_path / "e.jpg",
        _halves(),
        orientation=6,
        when="2024:05:06 07:08:09",
        gps=(-33.8568, 151.2153, 12.5),
    )
    info = read_jpeg_info(p.read_bytes())
    assert (info.width, info.height, info.orientation) == (60, 40, 6)
    assert info.datetime_original == "2024-05-06T07:08:09"
    assert info.latitude == pytest.approx(-33.8568, abs=1e-4)
    assert info.longitude == pytest.approx(151.2153, abs=1e-4)
    assert info.altitude == pytest.approx(12.5)


def test_garbage_exif_is_ignored_not_fatal(tmp_path):
    p = jpeg_with_exif(tmp_path / "e.jpg", _halves(), when="2024:05:06 07:08:09")
    data = bytearray(p.read_bytes())
    i = data.find(b"Exif\x00\x00")
    data[i + 10 : i + 40] = b"\xff" * 30  # smash the IFD offsets
    info = read_jpeg_info(bytes(data))
    assert info.width == 60 and info.orientation == 1


@pytest.mark.parametrize(
    "orientation,top,bottom",
    [(1, None, None), (3, None, None), (6, (255, 0, 0), (0, 0, 255)), (8, (0, 0, 255), (255, 0, 0))],
)
def test_orientation_is_applied(tmp_path, orientation, top, bottom):
    p = jpeg_with_exif(tmp_path / "o.jpg", _halves(), orientation=orientation)
    d = decode_file(p)
    if orientation in (1, 3):
        assert d.rgb.shape[:2] == (40, 60)
        left, right = d.rgb[20, 5], d.rgb[20, -5]
        want_left = (255, 0, 0) if orientation == 1 else (0, 0, 255)
        assert np.abs(left.astype(int) - want_left).max() < 10
        assert np.abs(right.astype(int) - want_left[::-1]).max() < 10
    else:
        assert d.rgb.shape[:2] == (60, 40) and (d.width, d.height) == (40, 60)
        assert np.abs(d.rgb[3, 20].astype(int) - top).max() < 10
        assert np.abs(d.rgb[-3, 20].astype(int) - bottom).max() < 10


def test_reduced_decode_keeps_orientation_and_enough_pixels(tmp_path):
    big = cv2.resize(_halves(), (1200, 800), interpolation=cv2.INTER_NEAREST)
    p = jpeg_with_exif(tmp_path / "big.jpg", big, orientation=6)
    d = decode_file(p, min_side=150)
    assert d.reduced == 4  # 800 / 4 = 200 >= 150, 800 / 8 = 100 < 150
    assert d.rgb.shape[:2] == (300, 200) and (d.width, d.height) == (800, 1200)
    assert np.abs(d.rgb[5, 100].astype(int) - (255, 0, 0)).max() < 10
    assert np.abs(d.rgb[-5, 100].astype(int) - (0, 0, 255)).max() < 10


def test_reduce_factor():
    assert reduce_factor(500, 500, 256) == 1
    assert reduce_factor(4000, 3000, 256) == 8
    assert reduce_factor(1200, 600, 256) == 2


def test_twenty_thousand_square_jpeg_decodes_reduced_in_little_memory(tmp_path):
    p = giant_grey_jpeg(tmp_path / "giant.jpg")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    d = decode_file(p, min_side=256)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert (d.width, d.height, d.reduced) == (20000, 20000, 8)
    assert d.rgb.shape == (2500, 2500, 3) and int(d.rgb.mean()) == 128
    assert grown_mb < 200  # a full decode would need 400 MB (grey) or 1.2 GB (RGB)


def test_pixel_formats(tmp_path):
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 2] = 255  # opaque red in BGRA
    rgba[..., 3] = 255
    rgba[:, 15:, 3] = 0  # right half transparent: composited over white
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    d = decode_file(tmp_path / "a.png")
    assert tuple(d.rgb[5, 2]) == (255, 0, 0) and tuple(d.rgb[5, 25]) == (255, 255, 255)

    sixteen = np.zeros((20, 30, 3), np.uint16)
    sixteen[..., 1] = 65535
    cv2.imwrite(str(tmp_path / "s.png"), sixteen)
    assert tuple(decode_file(tmp_path / "s.png").rgb[3, 3]) == (0, 255, 0)

    cv2.imwrite(str(tmp_path / "g.png"), np.full((20, 30), 77, np.uint8))
    g = decode_file(tmp_path / "g.png")
    assert g.rgb.shape == (20, 30, 3) and tuple(g.rgb[0, 0]) == (77, 77, 77)

    jpeg_with_exif(tmp_path / "c.jpg", solid((0, 0, 255), (40, 60)), mode="CMYK")
    c = decode_file(tmp_path / "c.jpg")
    assert c.rgb.shape == (40, 60, 3) and np.abs(c.rgb[10, 10].astype(int) - (0, 0, 255)).max() < 12


def test_bad_files_raise_decode_errors_with_reasons(tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    good = write_jpeg(tmp_path / "good.jpg", noise).read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(good[: len(good) // 2])  # cut in the image data
    (tmp_path / "head.jpg").write_bytes(good[:300])  # cut in the headers
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not a photo")
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    cases = {
        "trunc.jpg": "truncated JPEG",
        "head.jpg": "truncated JPEG",
        "zero.jpg": "empty file",
        "text.jpg": "not an image",
        "dangling.jpg": "broken symlink",
    }
    for name, reason in cases.items():
        with pytest.raises(DecodeError, match=reason):
            decode_file(tmp_path / name)


@pytest.mark.parametrize("mode", ["center_crop", "squash", "letterbox"])
def test_prepare_modes(mode):
    size = (32, 32) if mode == "center_crop" else (32, 48)
    pp = Preprocess(input_size=size, resize_mode=mode, crop_pct=0.875)
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, :100] = (255, 0, 0)
    img[:, 100:200] = (0, 255, 0)
    img[:, 200:] = (0, 0, 255)
    out = prepare(img, pp)
    assert out.shape == (*size, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    if mode == "center_crop":  # the crop sees only the green middle third
        assert np.abs(out.astype(int) - (0, 255, 0)).max() < 3
    elif mode == "squash":  # all three thirds, squeezed
        assert tuple(out[16, 2]) == (255, 0, 0) and tuple(out[16, -3]) == (0, 0, 255)
    else:  # the whole width fits; black bars above and below
        assert tuple(out[0, 24]) == (0, 0, 0) and tuple(out[16, 2]) == (255, 0, 0)


def test_min_decode_side_follows_crop_pct():
    assert min_decode_side(Preprocess(input_size=(224, 224), crop_pct=0.875)) == 256
    assert min_decode_side(Preprocess(input_size=(224, 224), resize_mode="squash")) == 224


def test_a_mostly_complete_truncated_jpeg_is_decoded_from_its_top_rows(tmp_path):
    """A card pulled early: the rows the file holds are decoded (and only those), with a warning."""
    top = np.zeros((240, 320, 3), np.uint8)
    top[:, :, 2] = np.linspace(0, 255, 320, dtype=np.uint8)  # a gradient, never one flat value per row
    top[120:] = 255 - top[120:]
    good = write_jpeg(tmp_path / "good.jpg", top).read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good[: int(len(good) * 0.9)])
    d = decode_file(cut)
    assert d.warning and "truncated JPEG" in d.warning
    assert (d.width, d.height) == (320, 240)  # the photo's size, as its header says
    assert 0.75 * 240 <= d.rgb.shape[0] < 240  # only the rows that are really there
    assert np.abs(d.rgb[5].astype(int) - decode_file(tmp_path / "good.jpg").rgb[5]).max() < 40
    rows = d.rgb.reshape(d.rgb.shape[0], -1)
    assert (rows.min(axis=1) != rows.max(axis=1)).all()  # no flat padding band left
