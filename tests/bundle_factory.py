"""Small, torch-free bundles for runtime tests: colour in, known species out.

The image tower is a real ONNX graph made with ``onnx.helper``: uint8 NHWC -> mean colour per
image -> centred -> a fixed random orthonormal projection to ``dim`` -> L2-normalised ``embedding``.
Each class's text embedding is the projection of its colour, so a solid-colour photo is classified
as the class of that colour with near certainty, a colour halfway between two classes of one genus
rolls up to the genus, and mid-grey (a zero vector) is uncertain.

Use: ``from bundle_factory import make_bundle, COLOURS`` (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lit_edge.bundle import RANKS, Label, Manifest, ModelInfo, Preprocess, write_labels, write_manifest

#: class id -> (scientific name, common name, genus, family, RGB colour)
SPECIES = (
    ("Rubra rosea", "red rose-bird", "Rubra", "Chromidae", (255, 0, 0)),
    ("Rubra purpurea", "purple rose-bird", "Rubra", "Chromidae", (255, 0, 255)),
    ("Viridis silva", "forest green", "Viridis", "Chromidae", (0, 255, 0)),
    ("Caerulea mare", "sea blue", "Caerulea", "Azuridae", (0, 0, 255)),
)
KINGDOMS = {"Chromidae": "Animalia", "Azuridae": "Plantae"}
COLOURS = {name: rgb for name, _, _, _, rgb in SPECIES}


def _centred(rgb) -> np.ndarray:
    return np.asarray(rgb, dtype=np.float32) / 255.0 - 0.5


def image_tower(path: Path, dim: int, seed: int = 0) -> np.ndarray:
    """Write the colour tower to ``path``; returns its 3 x dim projection."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, 3)))
    proj = np.ascontiguousarray(q.T, dtype=np.float32)  # 3 x dim, orthonormal rows
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["mean"], axes=[1, 2], keepdims=0),
        helper.make_node("Div", ["mean", "c255"], ["unit"]),
        helper.make_node("Sub", ["unit", "half"], ["centred"]),
        helper.make_node("MatMul", ["centred", "proj"], ["z"]),
        helper.make_node("ReduceL2", ["z"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["norm", "eps"], ["safe"]),
        helper.make_node("Div", ["z", "safe"], ["embedding"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(255.0, np.float32), "c255"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        numpy_helper.from_array(proj, "proj"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
    ]
    graph = helper.make_graph(
        nodes,
        "colour_tower",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", None, None, 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return proj


def make_bundle(
    folder: Path,
    *,
    dim: int = 16,
    input_size: tuple[int, int] = (32, 32),
    resize_mode: str = "center_crop",
    logit_scale: float = 30.0,
    flavours: tuple[str, ...] = ("fp32", "int8_cpu"),
) -> Path:
    """Write a verified bundle of the four colour species into ``folder``; returns ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    proj = image_tower(folder / "image_fp32.onnx", dim)
    towers = {"fp32": "image_fp32.onnx"}
    for fl in flavours:
        if fl != "fp32":  # same graph under the other names: the runtime only needs the contract
            (folder / f"image_{fl}.onnx").write_bytes((folder / "image_fp32.onnx").read_bytes())
            towers[fl] = f"image_{fl}.onnx"
    labels = []
    emb = []
    for i, (sci, common, genus, family, rgb) in enumerate(SPECIES):
        ranks = dict.fromkeys(RANKS, "")
        ranks.update(kingdom=KINGDOMS[family], family=family, genus=genus, species=sci)
        labels.append(Label(i, sci, common, tuple(ranks.items())))
        e = _centred(rgb) @ proj
        emb.append(e / np.linalg.norm(e))
    write_labels(folder / "labels.csv", labels)
    np.save(folder / "text_embeddings.npy", np.stack(emb).astype(np.float32))
    manifest = Manifest(
        model=ModelInfo(name="colour-test", embed_dim=dim, logit_scale=logit_scale, version="test"),
        preprocess=Preprocess(input_size=input_size, resize_mode=resize_mode),
        image_towers=towers,
        num_classes=len(labels),
    )
    write_manifest(folder, manifest)
    return folder


def solid(rgb, size=(48, 64)) -> np.ndarray:
    """An H x W x 3 RGB image of one colour."""
    img = np.zeros((*size, 3), dtype=np.uint8)
    img[:] = rgb
    return img


def write_jpeg(path: Path, rgb_image: np.ndarray, quality: int = 95) -> Path:
    """Write an RGB array as a JPEG with OpenCV (BGR on disk order)."""
    import cv2

    path = Path(path)
    ok = cv2.imwrite(
        str(path), cv2.cvtColor(rgb_image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    assert ok, path
    return path


def giant_grey_jpeg(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid baseline greyscale JPEG of ``width`` x ``height`` (multiples of 8), all mid-grey.

    Written by hand so the test never holds the full image in memory: with one-symbol Huffman
    tables (DC difference 0, AC end-of-block) each 8x8 block costs two zero bits, so a
    20,000 x 20,000 image is 1.5 MB of zero bytes. Decoding it at full size would need 400 MB.
    """
    import struct

    assert width % 8 == 0 and height % 8 == 0
    blocks = (width // 8) * (height // 8)

    def seg(marker: int, body: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body

    one_code = bytes([1] + [0] * 15) + b"\x00"  # one code of length 1, for symbol 0
    out = b"\xff\xd8"
    out += seg(0xDB, b"\x00" + bytes([1] * 64))
    out += seg(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    out += seg(0xC4, b"\x00" + one_code) + seg(0xC4, b"\x10" + one_code)
    out += seg(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    nbytes = (2 * blocks + 7) // 8
    with open(path, "wb") as f:
        f.write(out)
        f.write(bytes(nbytes))
        f.write(b"\xff\xd9")
    return Path(path)


def jpeg_with_exif(
    path: Path,
    rgb_image: np.ndarray,
    *,
    orientation: int = 1,
    when: str | None = None,
    gps: tuple[float, float, float] | None = None,
    mode: str = "RGB",
) -> Path:
    """Write a JPEG with PIL (dev-only) carrying EXIF orientation, DateTimeOriginal and GPS."""
    from fractions import Fraction

    from PIL import Image

    def dms(v: float):
        v = abs(v)
        d = int(v)
        m = int((v - d) * 60)
        s = Fraction((v - d - m / 60) * 3600).limit_denominator(1000)
        return (Fraction(d), Fraction(m), s)

    img = Image.fromarray(rgb_image)
    if mode != "RGB":
        img = img.convert(mode)
    exif = Image.Exif()
    exif[0x0112] = orientation
    if when:
        exif.get_ifd(0x8769)[0x9003] = when
    if gps:
        lat, lon, alt = gps
        g = exif.get_ifd(0x8825)
        g[1], g[2] = ("N" if lat >= 0 else "S"), dms(lat)
        g[3], g[4] = ("E" if lon >= 0 else "W"), dms(lon)
        g[5], g[6] = (0 if alt >= 0 else 1), Fraction(abs(alt)).limit_denominator(100)
    img.save(path, "JPEG", exif=exif.tobytes(), quality=95)
    return Path(path)
