"""Real images for calibration and parity checks: a user's folder, or the bundled sample photos.

INT8 ranges are only as good as the images they are measured on, so calibration always uses real
photos: the user's own folder (``--calib DIR``), or, for the starter bundle and the tests, random
crops of the photos that ship inside scikit-image and scikit-learn (no download). Everything here is
torch-free and returns ``uint8`` ``NHWC`` RGB arrays at the model's input size, exactly what the
ONNX graphs take.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lit_edge.bundle import Preprocess
from lit_edge.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

#: Colour photos in scikit-image's bundled data (no download needed).
_SKIMAGE_COLOUR = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
)
#: Grey photos of real scenes, used as RGB (a field camera at night is grey too).
_SKIMAGE_GREY = ("camera", "coins", "clock", "grass", "gravel", "brick", "moon")


@dataclass(frozen=True)
class CropConfig:
    """Random-resized-crop parameters for turning a few photos into many varied inputs."""

    scale: tuple[float, float] = (0.08, 1.0)  # fraction of the photo's area
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    seed: int = 0


def sample_photos() -> list[tuple[str, np.ndarray]]:
    """The sample photos shipped with scikit-image and scikit-learn, as ``(name, HxWx3 uint8 RGB)``."""
    from lit_edge.examples import sample_photos as load

    return [(p.name, p.rgb) for p in load((*_SKIMAGE_COLOUR, *_SKIMAGE_GREY))]


def fit(img: np.ndarray, pre: Preprocess) -> np.ndarray:
    """Resize an RGB photo to the model's input the way the runtime does (timm's centre crop)."""
    h, w = pre.input_size
    interp = cv2.INTER_CUBIC if pre.interpolation == "bicubic" else cv2.INTER_LINEAR
    if pre.resize_mode == "squash":
        return cv2.resize(img, (w, h), interpolation=interp)
    ih, iw = img.shape[:2]
    scale = max(h / pre.crop_pct / ih, w / pre.crop_pct / iw)
    rh, rw = max(h, round(ih * scale)), max(w, round(iw * scale))
    big = cv2.resize(img, (rw, rh), interpolation=interp)
    top, left = (rh - h) // 2, (rw - w) // 2
    return np.ascontiguousarray(big[top : top + h, left : left + w])


def random_crops(
    photos: Sequence[np.ndarray], n: int, pre: Preprocess, cfg: CropConfig = CropConfig()
) -> np.ndarray:
    """``n`` random resized crops of ``photos`` (round robin), as ``[n, H, W, 3]`` uint8."""
    rng = np.random.default_rng(cfg.seed)
    h, w = pre.input_size
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        img = photos[i % len(photos)]
        ih, iw = img.shape[:2]
        for _ in range(10):
            area = ih * iw * rng.uniform(*cfg.scale)
            ar = np.exp(rng.uniform(np.log(cfg.ratio[0]), np.log(cfg.ratio[1])))
            cw, ch = round(np.sqrt(area * ar)), round(np.sqrt(area / ar))
            if 0 < cw <= iw and 0 < ch <= ih:
                break
        else:
            ch, cw = ih, iw
        top, left = rng.integers(0, ih - ch + 1), rng.integers(0, iw - cw + 1)
        crop = img[top : top + ch, left : left + cw]
        if cfg.flip and rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[i] = cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=cv2.INTER_LINEAR)
    return out


def read_folder(folder: Path, pre: Preprocess, limit: int | None = None) -> np.ndarray:
    """Decode every image under ``folder`` (sorted, recursive) fitted to ``pre``; unreadable files are
    skipped with a warning so one bad file never stops an export."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"calibration folder not found: {folder}; pass a folder of real photos to --calib")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    images = []
    for p in files:
        if limit is not None and len(images) >= limit:
            break
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is None:
            log.warning("skipping %s: not a readable image", p)
            continue
        images.append(fit(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), pre))
    if not images:
        raise UserError(f"{folder}: no readable images ({', '.join(IMAGE_SUFFIXES)}); add real photos")
    return np.stack(images)


def calibration_set(pre: Preprocess, folder: Path | None = None, n: int = 256, seed: int = 0) -> np.ndarray:
    """The images INT8 ranges are measured on: the folder's photos fitted to the input, plus random
    crops of them up to ``n`` (varied framing is what a camera trap sees); or crops of the samples."""
    if folder is None:
        photos = [img for _, img in sample_photos()]
        return random_crops(photos, n, pre, CropConfig(seed=seed))
    fitted = read_folder(folder, pre)
    if len(fitted) >= n:
        return fitted[:n]
    extra = random_crops(list(fitted), n - len(fitted), pre, CropConfig(seed=seed))
    return np.concatenate([fitted, extra])


def batches(images: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for i in range(0, len(images), size):
        yield images[i : i + size]
