"""Example photos for the demo, written at run time from photos that ship inside installed packages.

Nothing is committed or downloaded: scikit-image and scikit-learn carry a handful of real photos
(a cat, an astronaut, coffee, a rocket, a flower, a temple...). The demo tags a folder of them, plus a
few crops and the awkward inputs a field card really holds (a greyscale frame, a PNG with alpha).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_edge.errors import UserError

log = logging.getLogger(__name__)

#: scikit-image sample photos that are bundled in its wheel (no pooch download needed).
SKIMAGE_PHOTOS = ("chelsea", "astronaut", "coffee", "rocket", "hubble_deep_field", "camera", "logo")


@dataclass(frozen=True)
class ExamplePhoto:
    """One example photo: its file name and the pixels (RGB, RGBA or greyscale uint8)."""

    name: str
    pixels: np.ndarray

    @property
    def rgb(self) -> np.ndarray:
        """The pixels as contiguous H x W x 3 uint8 RGB (what a decoder hands the model): greyscale
        repeated, alpha dropped, boolean or wider integer samples scaled to 0-255."""
        img = self.pixels
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        elif img.dtype != np.uint8:
            img = (img.astype(np.float32) * (255.0 / max(float(img.max()), 1.0))).astype(np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        return np.ascontiguousarray(img[:, :, :3])


def sample_photos(skimage_names: tuple[str, ...] = SKIMAGE_PHOTOS) -> list[ExamplePhoto]:
    """The real photos available offline: the named scikit-image samples, then scikit-learn's two.

    The one loader of sample photos: the demo, INT8 calibration, the starter's evaluation and the
    benches each pick their names, and share the import and missing-sample handling here.
    """
    try:
        import skimage.data as skdata
        from sklearn.datasets import load_sample_images
    except ImportError as exc:
        raise UserError(
            "example photos come from scikit-image and scikit-learn, which are not installed; "
            "install them with: pip install scikit-image scikit-learn"
        ) from exc
    photos = []
    for name in skimage_names:
        try:
            photos.append(ExamplePhoto(name, np.asarray(getattr(skdata, name)())))
        except Exception as exc:  # a data file missing from this scikit-image build
            log.warning("skipping scikit-image sample %s: %s", name, exc)
    sklearn_photos = load_sample_images()  # decodes both JPEGs: once
    for path, img in zip(sklearn_photos.filenames, sklearn_photos.images, strict=True):
        photos.append(ExamplePhoto(Path(path).stem, np.asarray(img)))
    return photos


def crops(pixels: np.ndarray, n: int, rng: np.random.Generator, min_frac: float = 0.5) -> list[np.ndarray]:
    """Random square-ish crops covering at least ``min_frac`` of the shorter side."""
    h, w = pixels.shape[:2]
    out = []
    for _ in range(n):
        s = int(min(h, w) * rng.uniform(min_frac, 1.0))
        y = int(rng.integers(0, h - s + 1))
        x = int(rng.integers(0, w - s + 1))
        out.append(pixels[y : y + s, x : x + s])
    return out


def _to_bgr(pixels: np.ndarray) -> np.ndarray:
    import cv2

    if pixels.ndim == 2:
        return pixels
    if pixels.shape[2] == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)


def write_examples(folder: Path, crops_per_photo: int = 2, seed: int = 0) -> list[Path]:
    """Write the example photos (and a few crops) into ``folder``; returns the files written.

    Files already present are left alone, so re-running the demo does not touch its database's paths.
    """
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for photo in sample_photos():
        has_alpha = photo.pixels.ndim == 3 and photo.pixels.shape[2] == 4
        items = [(photo.name, photo.pixels)]
        if not has_alpha and photo.pixels.ndim == 3:
            items += [
                (f"{photo.name}_crop{i}", c) for i, c in enumerate(crops(photo.pixels, crops_per_photo, rng))
            ]
        for name, px in items:
            path = folder / f"{name}.{'png' if has_alpha else 'jpg'}"
            if not path.exists():
                ok = cv2.imwrite(str(path), _to_bgr(np.ascontiguousarray(px)))
                if not ok:
                    raise UserError(f"could not write example photo {path}; is the folder writable?")
            written.append(path)
    log.info("%d example photos in %s", len(written), folder)
    return written
