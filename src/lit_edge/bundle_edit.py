"""One staged edit for every change to a bundle: write the new bundle aside, verify it, swap it in.

Every writer of bundles goes through :func:`edit`: ``export bundle`` (a new bundle from nothing),
``export species`` (new rows), the starter's background rows, and ``learn`` (a new bundle from an
old one)::

    with bundle.edit(target) as staged:              # edit in place (base = target)
        staged.set_rows(labels, matrix)              # labels.csv + text_embeddings.npy
        staged.manifest.extra["calibration"] = {...}
    new = staged.bundle                              # the verified result

    with bundle.edit(new_dir, base=old_dir) as staged: ...   # a new bundle from another one
    with bundle.edit(out_dir, base=None) as staged:          # from nothing: set staged.manifest

The edit writes a complete bundle into a hidden sibling folder (``.NAME.staging-XXXX``, same
filesystem as the target), carries over the base's files that did not change (hard links when the
base is the target, copies otherwise), refolds the classifier graphs whose inputs changed (rows,
tower, logit scale), checksums and verifies the result, then swaps it in:

- with Linux's ``renameat2(RENAME_EXCHANGE)`` the old and the new folder trade places in one atomic
  step, so the target path always holds a complete, verified bundle; the old one is then deleted;
- elsewhere (other systems, filesystems without it) a rename dance: staging -> ``.NAME.ready-X``
  (complete and verified), target -> ``.NAME.old-X``, ready -> target. A crash between the last two
  renames leaves no folder at the target; :func:`recover` (called by :func:`lit_edge.bundle.load`)
  rolls the verified new bundle forward into place, or, if there is none, the old one back.

A SIGKILL at any point therefore leaves the old bundle or the new one, valid
(``tests/test_bundle_edit.py`` kills real processes at every named step). Leftover staging folders
of a killed edit are removed by the next edit. Edits of one folder are serialised by a lock on the
parent folder. TensorRT engines (``engines/``) depend on the image tower only and are validated by
their own sidecar, so an in-place edit keeps them.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import ctypes.util
import dataclasses
import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from lit_edge import bundle as bf

log = logging.getLogger(__name__)

_SAME = object()  # edit(target): the base is the target itself
_NORM_TOLERANCE = 1e-3


def tower_file(flavour: str) -> str:
    """The file name of a bundle's image tower of ``flavour`` (fp32, int8_cpu, int8_tensorrt)."""
    return f"image_{flavour}.onnx"


def classifier_file(flavour: str) -> str:
    """The file name of the classifier graph (tower + species matrix folded in) of ``flavour``."""
    return f"classifier_{flavour}.onnx"


def _step(name: str) -> None:
    """A named point of an edit. Does nothing; the crash tests replace it to stop the process here."""


class StagedBundle:
    """The bundle being written. Read the base through it; change it with the methods below.

    ``manifest`` is a deep copy of the base's (``None`` for a bundle from nothing: assign one before
    the ``with`` block ends); change ``model``, ``preprocess`` or ``extra`` freely. File names and
    checksums, ``num_classes``, ``image_towers`` and ``classifiers`` are filled in at the end.
    After the block, ``bundle`` is the verified new bundle.
    """

    def __init__(self, root: Path, target: Path, base: bf.Bundle | None):
        self.root = root
        self.target = target
        self.base = base
        self.manifest: bf.Manifest | None = copy.deepcopy(base.manifest) if base else None
        self.bundle: bf.Bundle | None = None
        self._rows: tuple[list[bf.Label], np.ndarray] | None = None
        self._written: set[str] = set()
        self._towers: dict[str, str | None] = {}  # flavour -> file written here (None = dropped)
        self._classifiers: tuple[str, ...] | None = None  # None: the base's

    # what the new bundle holds --------------------------------------------------------------
    @property
    def labels(self) -> list[bf.Label]:
        """The rows' labels: the staged ones, else the base's."""
        if self._rows is not None:
            return list(self._rows[0])
        return list(self.base.labels) if self.base else []

    @property
    def matrix(self) -> np.ndarray:
        """The rows' text embeddings ``[C, D]``: the staged ones, else the base's."""
        if self._rows is not None:
            return self._rows[1]
        if self.base is None:
            raise bf.BundleError(f"{self.target}: a new bundle has no rows until set_rows()")
        return self.base.text_embeddings

    # changes ----------------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        """Where to write the bundle file ``name`` (a plain file name) in the staged bundle."""
        if not name or Path(name).name != name or name in (".", "..", bf.MANIFEST):
            raise ValueError(f"bundle file names are plain names, not {name!r}")
        self._written.add(name)
        return self.root / name

    def set_rows(self, labels: Sequence[bf.Label], matrix: np.ndarray) -> None:
        """Replace every row: ``labels`` (ids are rewritten 0..C-1 in order) and their unit-norm
        ``matrix`` rows. Written once, when the block ends; the classifier graphs are refolded."""
        m = np.ascontiguousarray(matrix, dtype=np.float32)
        if m.ndim != 2 or m.shape[0] != len(labels):
            raise ValueError(f"{len(labels)} labels need a [{len(labels)}, D] matrix, not {m.shape}")
        if not np.isfinite(m).all():
            raise ValueError("the text-embedding matrix has non-finite values")
        norms = np.linalg.norm(m, axis=1)
        if len(m) and np.abs(norms - 1.0).max() > _NORM_TOLERANCE:
            raise ValueError("text-embedding rows must be L2-normalised (a bundle's matrix is unit rows)")
        rows = [dataclasses.replace(lab, id=i) for i, lab in enumerate(labels)]  # names, ranks, synonyms kept
        self._rows = (rows, m)

    def put_tower(self, flavour: str) -> Path:
        """Where to write the image tower of ``flavour`` (an ONNX file); it joins the manifest."""
        name = tower_file(flavour)
        self._towers[flavour] = name
        return self.path(name)

    def drop_tower(self, flavour: str) -> None:
        """Leave the image tower of ``flavour`` (and its classifier graph) out of the new bundle."""
        self._towers[flavour] = None

    def set_classifiers(self, flavours: Iterable[str]) -> None:
        """Which flavours get a classifier graph (``()``: none). Default: the base's."""
        self._classifiers = tuple(dict.fromkeys(flavours))

    # commit -------------------------------------------------------------------------------------
    def _commit(self) -> None:
        m = self.manifest
        if m is None:
            raise bf.BundleError(f"{self.target}: a new bundle needs a manifest (staged.manifest = ...)")
        base = self.base
        for flavour, name in self._towers.items():
            if name is None:
                m.image_towers.pop(flavour, None)
            else:
                m.image_towers[flavour] = name
        if not m.image_towers:
            raise bf.BundleError(f"{self.target}: a bundle needs at least one image tower")
        if self._rows is not None:
            labels, matrix = self._rows
            bf.write_labels(self.path(m.labels), labels)
            with open(self.path(m.text_embeddings), "wb") as f:
                np.save(f, matrix, allow_pickle=False)
        elif base is None:
            raise bf.BundleError(f"{self.target}: a new bundle needs its rows (staged.set_rows)")
        m.num_classes = len(self.labels)
        _step("written")

        if self._classifiers is not None:
            wanted = self._classifiers
        else:  # the base's, less those whose tower was dropped
            wanted = tuple(f for f in m.classifiers if f in m.image_towers)
        missing = [f for f in wanted if f not in m.image_towers]
        if missing:
            raise bf.BundleError(f"{self.target}: no image tower for the classifier graph(s) {missing}")
        model_changed = base is None or (m.model.logit_scale, m.model.logit_bias) != (
            base.manifest.model.logit_scale,
            base.manifest.model.logit_bias,
        )
        refold = [
            f
            for f in wanted
            if self._rows is not None
            or model_changed
            or m.image_towers[f] in self._written
            or base is None
            or f not in base.manifest.classifiers
        ]
        m.classifiers = {f: classifier_file(f) for f in wanted}
        declared = {m.labels, m.text_embeddings, *m.image_towers.values(), *m.classifiers.values()}
        refolded = {m.classifiers[f] for f in refold}
        extra = set()
        if base is not None:
            base_declared = {
                base.manifest.labels,
                base.manifest.text_embeddings,
                *base.manifest.image_towers.values(),
                *base.manifest.classifiers.values(),
            }
            extra = set(base.manifest.files) - base_declared  # files another tool added: kept
            link = base.root.resolve() == self.target.resolve()
            for name in sorted((declared | extra) - self._written - refolded):
                src = base.root / name
                if src.is_file():
                    _carry(src, self.root / name, link)
            if link and base.engines_dir.is_dir():
                for src in base.engines_dir.iterdir():
                    if src.is_file():
                        (self.root / "engines").mkdir(exist_ok=True)
                        _carry(src, self.root / "engines" / src.name, link=True)
        _step("carried")

        if refold:
            from lit_edge.export.head import add_scores_head

            matrix = self.matrix
            for f in refold:
                add_scores_head(
                    self.root / m.image_towers[f],
                    self.path(m.classifiers[f]),
                    matrix,
                    m.model.logit_scale,
                    m.model.logit_bias,
                )
        _step("folded")

        absent = sorted(n for n in declared if not (self.root / n).is_file())
        if absent:
            raise bf.BundleError(f"{self.target}: the new bundle lacks {absent}")
        others = (extra | self._written) - declared  # files beyond the format's own: checksummed too
        bf.write_manifest(self.root, m, extra_files=sorted(n for n in others if (self.root / n).is_file()))
        _step("manifest")
        new = bf.load(self.root, verify=True)
        _ = new.text_embeddings  # the matrix against labels.csv
        _fsync_tree(self.root)
        _step("verified")


def _carry(src: Path, dst: Path, link: bool) -> None:
    """Put an unchanged file into the staged bundle: a hard link to the target's own file (it is
    never written again: every change goes to a new file), else a copy."""
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


@contextlib.contextmanager
def edit(target: Path | str, base: Path | str | None = _SAME) -> Iterator[StagedBundle]:
    """Stage a new bundle for ``target`` and swap it in when the ``with`` block ends without error.

    ``base``: the bundle the new one starts from; by default the target itself (which must exist),
    ``None`` for an empty start (a new export), or another bundle folder (``learn -o NEW``). An
    exception in the block, or a failed verification, leaves the target untouched.
    """
    target = Path(os.path.realpath(Path(target).expanduser()))
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    with _lock(parent):
        recover(target, locked=True)
        _clean(target)
        _check_replaceable(target)
        if base is _SAME:
            start = bf.load(target)
        elif base is None:
            start = None
        else:
            start = bf.load(Path(base).expanduser())
        root = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=parent))
        staged = StagedBundle(root, target, start)
        try:
            _step("staging")
            yield staged
            staged._commit()
            _swap(root, target)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
    staged.bundle = bf.load(target, verify=False)  # verified in staging; the same files now


def _check_replaceable(target: Path) -> None:
    """Refuse to replace a folder that is not a bundle (a mistyped ``-o`` must not delete a home)."""
    if target.is_file():
        raise bf.BundleError(
            f"{target} is a file; bundles are edited as folders (edit the folder, then pack it again)"
        )
    if target.is_dir() and not (target / bf.MANIFEST).is_file() and any(target.iterdir()):
        raise bf.BundleError(
            f"{target} exists and is not a lit-edge bundle; choose another output folder or empty it"
        )


def _swap(staging: Path, target: Path) -> None:
    """Put the verified ``staging`` folder at ``target``, atomically where the system allows."""
    parent = target.parent
    if not target.exists():
        os.rename(staging, target)
        _fsync_dir(parent)
        _step("swapped")
        return
    if _exchange(staging, target):
        _fsync_dir(parent)
        _step("swapped")
        shutil.rmtree(staging)  # the old bundle, now under the staging name
        _step("cleaned")
        return
    token = staging.name.rsplit("-", 1)[-1]
    ready = parent / f".{target.name}.ready-{token}"
    old = parent / f".{target.name}.old-{token}"
    os.rename(staging, ready)
    _step("ready")
    os.rename(target, old)
    _step("old-aside")  # the window: no folder at the target; recover() finishes the swap
    os.rename(ready, target)
    _fsync_dir(parent)
    _step("swapped")
    shutil.rmtree(old)
    _step("cleaned")


def recover(target: Path | str, locked: bool = False) -> bool:
    """Finish a swap that a crash interrupted between its two renames; True if it moved a folder.

    Only acts when nothing is at ``target``: a ``.NAME.ready-*`` sibling (verified and complete)
    is moved into place; without one, a ``.NAME.old-*`` sibling (the previous bundle) is moved back.
    """
    target = Path(target)
    parent = target.parent
    if target.exists() or not parent.is_dir():
        return False
    if not _siblings(target, "ready") and not _siblings(target, "old"):
        return False
    with contextlib.nullcontext() if locked else _lock(parent):
        if target.exists():
            return False
        for kind in ("ready", "old"):
            for p in _siblings(target, kind):
                if not (p / bf.MANIFEST).is_file():
                    continue
                try:
                    os.rename(p, target)
                except OSError as exc:
                    raise bf.BundleError(
                        f"{target}: an interrupted bundle edit left the bundle at {p}; "
                        f"move it to {target} ({exc.strerror})"
                    ) from exc
                log.warning("%s: finished an interrupted bundle edit (%s bundle put in place)", target, kind)
                _fsync_dir(parent)
                return True
    return False


def _clean(target: Path) -> None:
    """Remove what killed edits left beside the target (under the lock, after :func:`recover`)."""
    for kind in ("staging", "ready", "old"):
        for p in _siblings(target, kind):
            shutil.rmtree(p, ignore_errors=True)


def _siblings(target: Path, kind: str) -> list[Path]:
    prefix = f".{target.name}.{kind}-"
    try:
        return sorted(p for p in target.parent.iterdir() if p.name.startswith(prefix) and p.is_dir())
    except OSError:
        return []


@contextlib.contextmanager
def _lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` (flock on the folder itself: no lock file left behind)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2():
    """libc's ``renameat2`` (Linux, glibc >= 2.28), or None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False where the system or filesystem cannot (then nothing moved)."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_tree(root: Path) -> None:
    """Flush every file of the staged bundle to disk before it is swapped in (a power cut on a
    field device must not leave a swapped-in folder of empty files)."""
    for p in sorted(root.rglob("*")):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        _fsync_dir(d)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
