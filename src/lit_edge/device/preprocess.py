"""Resize an upright RGB image to the image tower's input, exactly as the bundle's ``Preprocess`` says.

The ONNX graph normalises internally, so this only crops and resizes and stays ``uint8``. Cropping
happens before resizing (only the pixels that survive the crop are resampled), and downscaling uses
area interpolation, which approximates the antialiased bilinear resize that training used (PIL /
torchvision) far better than plain bilinear sampling.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from lit_edge.bundle import Preprocess

_UP = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC, "nearest": cv2.INTER_NEAREST}


def min_decode_side(pp: Preprocess) -> int:
    """The shortest image side that still needs no upscaling; the bound for reduced JPEG decode."""
    short = min(pp.input_size)
    if pp.resize_mode == "center_crop":
        return int(math.floor(short / pp.crop_pct))
    return max(pp.input_size)


def _resize(img: np.ndarray, w: int, h: int, interpolation: str) -> np.ndarray:
    if img.shape[1] == w and img.shape[0] == h:
        return img
    down = w <= img.shape[1] and h <= img.shape[0]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if down else _UP.get(interpolation, 1))


def prepare(rgb: np.ndarray, pp: Preprocess) -> np.ndarray:
    """Upright RGB ``uint8`` H x W x 3 -> ``input_size`` RGB ``uint8`` (contiguous)."""
    out_h, out_w = pp.input_size
    h, w = rgb.shape[:2]
    if pp.resize_mode == "squash":
        out = _resize(rgb, out_w, out_h, pp.interpolation)
    elif pp.resize_mode == "letterbox":
        scale = min(out_w / w, out_h / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        out = np.zeros((out_h, out_w, 3), dtype=np.uint8)
        y0, x0 = (out_h - nh) // 2, (out_w - nw) // 2
        out[y0 : y0 + nh, x0 : x0 + nw] = _resize(rgb, nw, nh, pp.interpolation)
    elif pp.resize_mode == "center_crop":
        # timm: shorter side -> floor(size / crop_pct), then a centred input_size crop. Mapped back
        # to source pixels, the crop covers (out / scale) of the source around its centre.
        scale = math.floor(min(out_h, out_w) / pp.crop_pct) / min(h, w)
        ch, cw = min(h, round(out_h / scale)), min(w, round(out_w / scale))
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        out = _resize(rgb[y0 : y0 + ch, x0 : x0 + cw], out_w, out_h, pp.interpolation)
    else:
        raise ValueError(f"unknown resize_mode {pp.resize_mode!r}")
    return np.ascontiguousarray(out)
