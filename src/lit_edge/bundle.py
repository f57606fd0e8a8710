"""The bundle: everything the device runtime needs, checked before it is trusted.

A bundle is a folder (or a ``.tar`` of one) written by ``lit-edge export bundle``::

    manifest.json            format + version, model, preprocessing, files with sha256
    image_fp32.onnx          image tower: uint8 NHWC RGB in, L2-normalised embedding out
    image_int8_cpu.onnx      the same, explicit INT8 (QDQ), u8 activations / s8 weights
    image_int8_tensorrt.onnx the same, symmetric s8/s8 QDQ for TensorRT's explicit quantization
    labels.csv               one row per class: id, scientific name, common name, each rank
                             (rows named ``blank`` are background rows, see :data:`BLANK`)
    text_embeddings.npy      C x D float32, L2-normalised (loaded with allow_pickle=False)
    engines/                 TensorRT engines built on the device (not part of the checksummed set)

The runtime reads only this module's :class:`Bundle`; it never needs torch. Loading verifies the
format version and every file's sha256, so a truncated copy or a tampered file is refused with one
clear line instead of producing silently wrong species.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lit_edge import outcomes
from lit_edge.errors import UserError

FORMAT = "lit-edge-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
#: ``synonyms``: other scientific names of the row's taxon, ``;``-separated (``Euarctos americanus``
#: for ``Ursus americanus``). Every name lookup accepts them and writes the accepted name.
LABEL_COLUMNS = ("id", "scientific_name", "common_name", *RANKS, "synonyms")
SYNONYM_SEP = ";"
#: ``scientific_name`` of a background row ("no animal here"). A bundle may hold any number of them
#: (the starter has one per non-animal ImageNet class); together they span the background subspace,
#: and a photo whose embedding lies mostly in it is the runtime's ``blank`` outcome. They are never
#: species (no softmax, top-k or roll-up). Bundles without them behave as before.
BLANK = outcomes.BLANK
#: Rows named ``human`` or ``vehicle`` are *outcome rows* like the background rows: evidence for
#: "a person is in view" and "a vehicle is in view", never species (see ``lit_edge.device.classify``).
#: Rows named ``animal`` (the starter's) are evidence for an animal the species list does not hold:
#: never a species, only their ranks above it (phylum, class) count, in the roll-ups.
OUTCOME_ROWS = (outcomes.BLANK, outcomes.HUMAN, outcomes.VEHICLE, outcomes.ANIMAL)
#: Image tower flavours, best first for a CPU host.
FLAVOURS = ("int8_cpu", "fp32", "int8_tensorrt")


class BundleError(UserError):
    """A bundle that cannot be used: missing, foreign, tampered, truncated or unsafe."""


@dataclass(frozen=True)
class Preprocess:
    """How a frame becomes the image tower's input. Travels with the weights (timm's habit).

    The ONNX graph takes ``uint8`` ``NHWC`` RGB at ``input_size`` and normalises inside, so the
    runtime only decodes, converts colour and resizes.
    """

    input_size: tuple[int, int] = (224, 224)  # (height, width)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    colour_order: str = "RGB"
    layout: str = "NHWC"
    resize_mode: str = "center_crop"  # center_crop | squash | letterbox
    crop_pct: float = 0.875
    interpolation: str = "bilinear"

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        d = dict(d)
        for k in ("input_size", "mean", "std"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Scoring:
    """What a row's score means; travels with the bundle, because only the model knows.

    ``softmax`` (the default, any LiT model): ``softmax(logit_scale * cosine + bias)`` over the
    species rows, as the model was trained.
    ``class_mass``: the embedding is ``sqrt`` of a class distribution (the starter: the locked
    ImageNet head's softmax), every row is ``sqrt`` of the distribution it covers, and a row's score
    is the head's own probability mass on the classes it covers. See ``docs/starter-model.md``.
    """

    kind: str = "softmax"  # softmax | class_mass

    @classmethod
    def from_dict(cls, d: dict | None) -> Scoring:
        s = cls(**{k: v for k, v in (d or {}).items() if k in cls.__dataclass_fields__})
        if s.kind not in ("softmax", "class_mass"):
            raise BundleError(f"unknown scoring kind {s.kind!r}; upgrade lit-edge or re-export the bundle")
        return s


@dataclass(frozen=True)
class ModelInfo:
    """What the bundle's model is; ``logit_scale`` turns cosine similarities into logits."""

    name: str
    embed_dim: int
    logit_scale: float
    logit_bias: float | None = None
    version: str = ""
    description: str = ""

    @classmethod
    def from_dict(cls, d: dict) -> ModelInfo:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class Manifest:
    """The parsed ``manifest.json``."""

    model: ModelInfo
    preprocess: Preprocess
    image_towers: dict[str, str]  # flavour -> file name
    labels: str = "labels.csv"
    text_embeddings: str = "text_embeddings.npy"
    classifiers: dict[str, str] = field(default_factory=dict)  # flavour -> graph with scores output
    files: dict[str, dict] = field(default_factory=dict)  # name -> {"sha256", "bytes"}
    scoring: Scoring = field(default_factory=Scoring)
    num_classes: int = 0
    created: str = ""
    lit_edge_version: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **d}

    @classmethod
    def from_dict(cls, d: dict, where: Path) -> Manifest:
        if d.get("format") != FORMAT:
            raise BundleError(f"{where}: not a lit-edge bundle manifest (format={d.get('format')!r})")
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{where}: bundle format version {version} is not supported by this lit-edge "
                f"(expects {FORMAT_VERSION}); re-export the bundle or upgrade lit-edge"
            )
        try:
            return cls(
                model=ModelInfo.from_dict(d["model"]),
                preprocess=Preprocess.from_dict(d["preprocess"]),
                image_towers=dict(d["image_towers"]),
                labels=d.get("labels", "labels.csv"),
                text_embeddings=d.get("text_embeddings", "text_embeddings.npy"),
                classifiers=dict(d.get("classifiers", {})),
                files=dict(d["files"]),
                scoring=Scoring.from_dict(d.get("scoring")),
                num_classes=int(d.get("num_classes", 0)),
                created=d.get("created", ""),
                lit_edge_version=d.get("lit_edge_version", ""),
                extra=dict(d.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{where}: manifest is incomplete or malformed ({exc}); re-export it") from exc


@dataclass(frozen=True)
class Label:
    """One class of the species list: its id, names and ranks (empty string where unknown)."""

    id: int
    scientific_name: str
    common_name: str = ""
    ranks: tuple[tuple[str, str], ...] = ()
    synonyms: tuple[str, ...] = ()  # other scientific names of the same taxon (not accepted)

    def rank(self, name: str) -> str:
        return dict(self.ranks).get(name, "")

    @property
    def is_blank(self) -> bool:
        """A background row (:data:`BLANK`): evidence for "no animal", not a taxon."""
        return self.scientific_name.casefold() == BLANK

    @property
    def outcome(self) -> str | None:
        """``blank``, ``human``, ``vehicle`` or ``animal`` for an outcome row (:data:`OUTCOME_ROWS`), else None."""
        name = self.scientific_name.casefold()
        return name if name in OUTCOME_ROWS else None

    @property
    def names(self) -> tuple[str, ...]:
        """The accepted scientific name, then its synonyms."""
        return (self.scientific_name, *self.synonyms)

    @property
    def display(self) -> str:
        return f"{self.scientific_name} ({self.common_name})" if self.common_name else self.scientific_name


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_labels(path: Path) -> list[Label]:
    """Read ``labels.csv`` (the bundle's species list)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"id", "scientific_name"} - set(reader.fieldnames or [])
        if missing:
            raise BundleError(f"{path}: labels file lacks column(s) {sorted(missing)}")
        out = []
        for row in reader:
            ranks = tuple((r, (row.get(r) or "").strip()) for r in RANKS)
            out.append(
                Label(
                    id=int(row["id"]),
                    scientific_name=row["scientific_name"].strip(),
                    common_name=(row.get("common_name") or "").strip(),
                    ranks=ranks,
                    synonyms=split_synonyms(row.get("synonyms")),
                )
            )
    return out


def split_synonyms(text: str | None) -> tuple[str, ...]:
    """``"Euarctos americanus; Ursus americanus"`` -> a tuple of the names (empty parts dropped)."""
    return tuple(" ".join(n.split()) for n in (text or "").split(SYNONYM_SEP) if n.strip())


def write_labels(path: Path, labels: Iterable[Label]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(LABEL_COLUMNS)
        for lab in labels:
            w.writerow(
                [
                    lab.id,
                    lab.scientific_name,
                    lab.common_name,
                    *[lab.rank(r) for r in RANKS],
                    SYNONYM_SEP.join(lab.synonyms),
                ]
            )


class NameIndex:
    """Scientific name (accepted or synonym, any case) -> the row's index in ``labels``.

    The one place that resolves a name a user typed (``--species``, ``export species --add``, the
    field-data writers) to a row, so that an old name finds the row under its accepted name.
    """

    def __init__(self, labels: Iterable[Label]):
        self._index: dict[str, int] = {}
        taxa = [(i, lab) for i, lab in enumerate(labels) if not lab.outcome]
        for i, lab in taxa:  # accepted names first: a synonym never hides another row's name
            self._index.setdefault(" ".join(lab.scientific_name.split()).casefold(), i)
        for i, lab in taxa:
            for n in lab.synonyms:
                self._index.setdefault(" ".join(n.split()).casefold(), i)

    def get(self, name: str) -> int | None:
        return self._index.get(" ".join(name.split()).casefold())


def write_manifest(folder: Path, manifest: Manifest, extra_files: Iterable[str] = ()) -> Path:
    """Checksum every file the manifest names (and ``extra_files``) and write ``manifest.json``.

    Low level: a bundle that is in use is changed through :func:`edit`, never by rewriting files in
    place.
    """
    names = set(manifest.image_towers.values()) | set(manifest.classifiers.values())
    names |= {manifest.labels, manifest.text_embeddings, *extra_files}
    manifest.files = {}
    for name in sorted(names):
        p = folder / name
        manifest.files[name] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    out = folder / MANIFEST
    out.write_text(json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def _safe_members(tar: tarfile.TarFile, target: Path) -> list[tarfile.TarInfo]:
    """Refuse any member that would land outside ``target`` (absolute, ``..``, links, devices)."""
    root = target.resolve()
    members = []
    for m in tar.getmembers():
        if not (m.isfile() or m.isdir()):
            raise BundleError(
                f"refusing to unpack {m.name!r}: bundles hold only files and folders, not links or devices"
            )
        dest = (root / m.name).resolve()
        if m.name.startswith(("/", "\\")) or (dest != root and root not in dest.parents):
            raise BundleError(f"refusing to unpack {m.name!r}: its path leads outside {target}")
        members.append(m)
    return members


def unpack(tar_path: Path, target: Path) -> Path:
    """Unpack a bundle ``.tar`` into ``target`` safely; returns the folder holding the manifest."""
    try:
        with tarfile.open(tar_path) as tar:
            members = _safe_members(tar, target)
            target.mkdir(parents=True, exist_ok=True)
            for m in members:
                dest = target / m.name
                if m.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                assert src is not None
                with src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
    except tarfile.TarError as exc:
        raise BundleError(f"{tar_path}: not a readable bundle archive ({exc})") from exc
    hits = sorted(target.rglob(MANIFEST), key=lambda p: len(p.parts))
    if not hits:
        raise BundleError(f"{tar_path}: the archive holds no {MANIFEST}")
    return hits[0].parent


def pack(folder: Path, tar_path: Path) -> Path:
    """Write ``folder`` as an uncompressed tar (ONNX and npy barely compress).

    Written under a temporary name and renamed, so an interrupted pack never leaves a short archive.
    """
    tmp = tar_path.with_name(f".{tar_path.name}.partial")
    with tarfile.open(tmp, "w") as tar:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and "engines" not in p.relative_to(folder).parts:
                tar.add(p, arcname=str(p.relative_to(folder)))
    tmp.replace(tar_path)
    return tar_path


class Bundle:
    """A verified bundle on disk. Construct with :func:`load`."""

    def __init__(self, root: Path, manifest: Manifest):
        self.root = root
        self.manifest = manifest
        self._labels: list[Label] | None = None
        self._emb: np.ndarray | None = None

    @property
    def labels(self) -> list[Label]:
        if self._labels is None:
            self._labels = read_labels(self.root / self.manifest.labels)
        return self._labels

    @property
    def text_embeddings(self) -> np.ndarray:
        if self._emb is None:
            path = self.root / self.manifest.text_embeddings
            try:
                emb = np.load(path, allow_pickle=False)
            except ValueError as exc:
                raise BundleError(f"{path}: not a plain numpy array ({exc})") from exc
            if emb.ndim != 2 or emb.shape[0] != len(self.labels):
                raise BundleError(
                    f"{path}: shape {emb.shape} does not match {len(self.labels)} labels; re-export it"
                )
            self._emb = np.ascontiguousarray(emb, dtype=np.float32)
        return self._emb

    def image_tower(self, flavour: str) -> Path:
        if flavour not in self.manifest.image_towers:
            have = ", ".join(sorted(self.manifest.image_towers)) or "none"
            raise BundleError(f"{self.root}: bundle has no '{flavour}' image tower (it has: {have})")
        return self.root / self.manifest.image_towers[flavour]

    @property
    def engines_dir(self) -> Path:
        return self.root / "engines"

    def verify(self) -> None:
        """Check every listed file's size and sha256; raise :class:`BundleError` on the first mismatch."""
        for name, meta in sorted(self.manifest.files.items()):
            p = (self.root / name).resolve()
            if self.root.resolve() not in p.parents:
                raise BundleError(f"{self.root}: manifest names a file outside the bundle: {name!r}")
            if not p.is_file():
                raise BundleError(f"{self.root}: bundle file {name} is missing; copy the whole bundle again")
            size = p.stat().st_size
            if "bytes" in meta and size != meta["bytes"]:
                raise BundleError(
                    f"{p}: size {size} B, manifest says {meta['bytes']} B (truncated copy?); "
                    "copy the bundle again"
                )
            if sha256_file(p) != meta.get("sha256"):
                raise BundleError(
                    f"{p}: checksum does not match the manifest (corrupted or tampered); "
                    "copy the bundle again or re-export it"
                )
        needed = {self.manifest.labels, self.manifest.text_embeddings, *self.manifest.image_towers.values()}
        unlisted = needed - set(self.manifest.files)
        if unlisted:
            raise BundleError(f"{self.root}: manifest lists no checksum for {sorted(unlisted)}; re-export it")


def load(path: Path | str, *, verify: bool = True, unpack_dir: Path | None = None) -> Bundle:
    """Open a bundle folder or ``.tar``; verify checksums and format version unless told not to."""
    path = Path(path).expanduser()
    if not path.exists():
        from lit_edge.bundle_edit import recover

        recover(path)  # a swap killed half-way: put the verified bundle in place
    if not path.exists():
        raise BundleError(
            f"bundle not found: {path}; build the starter with 'lit-edge export starter' or pass --bundle"
        )
    if path.is_file():
        if not tarfile.is_tarfile(path):
            raise BundleError(f"{path}: not a bundle folder or .tar archive")
        path = unpack(path, unpack_dir or _unpack_cache(path))
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{path}: no {MANIFEST} here; is this a lit-edge bundle folder?")
    try:
        data = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{mpath}: manifest is not valid JSON ({exc}); copy the bundle again") from exc
    bundle = Bundle(path, Manifest.from_dict(data, mpath))
    if verify:
        bundle.verify()
    return bundle


def edit(target: Path | str, **base):
    """Change a bundle, or write a new one, through one staged, verified, atomic swap.

    ``with edit(path) as staged: staged.set_rows(labels, matrix)`` edits ``path`` in place;
    ``base=None`` starts from nothing, ``base=OTHER`` from another bundle. See
    :mod:`lit_edge.bundle_edit` for the staged bundle's methods and the crash guarantees.
    """
    from lit_edge import bundle_edit

    return bundle_edit.edit(target, **base)


def _unpack_cache(tar_path: Path) -> Path:
    """Where a ``.tar`` is unpacked: one folder per archive content, reused (and re-verified) later.

    Keyed by the archive's sha256, so a device that loads the same tar at every boot unpacks it once
    and never leaves a trail of temporary copies behind.
    """
    from lit_edge.paths import home

    target = home() / "bundles" / "unpacked" / sha256_file(tar_path)[:16]
    if target.exists() and not any(target.rglob(MANIFEST)):
        shutil.rmtree(target)  # an unpack killed half-way: start again
    if not target.exists():
        tmp = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=_mkdirs(target.parent)))
        try:
            unpack(tar_path, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # a refused or broken archive leaves nothing behind
            raise
        try:
            tmp.rename(target)
        except OSError:  # another process won the race; use its copy
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _mkdirs(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def default_path() -> Path:
    from lit_edge.paths import default_bundle_dir

    return default_bundle_dir()
