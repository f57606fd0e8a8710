"""One folder split across the tasks of a job array: ``lit-edge tag --shard I/N``.

A photo's shard is a hash of its path *relative to the folder given to tag*, modulo N:

- every task computes the same split from its own listing, with no coordination and no list file;
- adding photos (a new card copied into the folder) never moves an existing photo to another shard,
  so every shard database stays valid and a re-run does only the new photos (a split of the sorted
  list into N runs would shift every photo after the first new one);
- the split does not depend on where the folder is mounted (``/mnt/a/photos`` or ``/data/photos``).

Under a Slurm job array (``sbatch --array=0-15``) the shard comes from the environment:
``SLURM_ARRAY_TASK_ID`` minus ``SLURM_ARRAY_TASK_MIN`` (so ``--array=1-16`` works as well), divided
by the step, out of ``SLURM_ARRAY_TASK_COUNT``. An array that is not a plain range (``--array=3,7``,
as when only failed shards are resubmitted) cannot say N: then ``--shard I/N`` must be given.

Each shard writes its own database (SQLite has one writer at a time, and WAL mode is unsafe for
writers on several hosts of a network filesystem); ``lit-edge db merge`` joins them.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lit_edge.errors import UserError


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise UserError(
                f"shard {self.index}/{self.count}: the index must be 0 to {self.count - 1}; "
                "shards are numbered from 0 (--shard 0/4 ... 3/4)"
            )

    def __str__(self) -> str:
        """``I/N``, as ``--shard`` takes it and ``runs.shard`` records it."""
        return f"{self.index}/{self.count}"

    @property
    def label(self) -> str:
        """``shard-03-of-16``: zero-padded so that a folder of shard databases lists in order."""
        width = len(str(self.count - 1))
        return f"shard-{self.index:0{width}d}-of-{self.count}"

    def db_name(self, stem: str = "lit-edge") -> str:
        """The default database file name of this shard: ``lit-edge.shard-03-of-16.db``."""
        return f"{stem}.{self.label}.db"


def parse_shard(text: str) -> Shard:
    """``"3/16"`` -> ``Shard(3, 16)``; anything else is one-line :class:`UserError`."""
    index, sep, count = text.strip().partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit() or int(count) < 1:
        raise UserError(f"--shard {text!r}: give I/N, shard I (0 to N-1) of N, e.g. --shard 0/4")
    return Shard(int(index), int(count))


def from_slurm(env: Mapping[str, str]) -> Shard | None:
    """The shard of this Slurm array task, or None outside an array."""
    if "SLURM_ARRAY_TASK_ID" not in env:
        return None
    try:
        task = int(env["SLURM_ARRAY_TASK_ID"])
        count = int(env["SLURM_ARRAY_TASK_COUNT"])
        first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        last = int(env.get("SLURM_ARRAY_TASK_MAX", str(first + count - 1)))
        step = int(env.get("SLURM_ARRAY_TASK_STEP", "1")) or 1
    except (KeyError, ValueError) as exc:
        raise UserError(f"Slurm array variables unreadable ({exc}); pass --shard I/N explicitly") from None
    offset, rest = divmod(task - first, step)
    if rest or first + (count - 1) * step != last or not 0 <= offset < count:
        raise UserError(
            f"Slurm array task {task} (tasks {first}-{last}, {count} of them, step {step}) is not one "
            "of an evenly spaced range, so the number of shards is unknown; pass --shard "
            f"{task}/N explicitly (e.g. when resubmitting failed shards: SHARDS=N sbatch --array=...)"
        )
    return Shard(offset, count)


def resolve(option: str | None, env: Mapping[str, str] | None = None) -> Shard | None:
    """``--shard`` when given, else the Slurm array task's shard, else None (no split)."""
    if option:
        return parse_shard(option)
    return from_slurm(os.environ if env is None else env)


def shard_of(relative: str, count: int) -> int:
    """The shard (0 to ``count``-1) of a path relative to the tagged folder, in POSIX form.

    BLAKE2b rather than ``hash()``: Python salts ``hash()`` per process, and every task must agree.
    """
    key = os.fsencode(relative) if isinstance(relative, str) else relative
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") % count


def base_of(kind: str, target: str) -> Path:
    """The folder that shard paths are relative to: the folder itself, a glob's fixed prefix
    (``/data/cam*/**/*.jpg`` -> ``/data``), or a single image's folder."""
    if kind == "folder":
        return Path(target)
    if kind == "glob":
        parts = Path(target).parts
        fixed = []
        for part in parts:
            if glob.has_magic(part):
                break
            fixed.append(part)
        return Path(*fixed) if fixed else Path(".")
    return Path(target).parent


def select(files: Iterable[Path], base: Path, shard: Shard | None) -> list[Path]:
    """The files of ``shard`` (all of them when None), in their listed order."""
    files = list(files)
    if shard is None or shard.count == 1:
        return files
    prefix = os.path.join(os.path.abspath(base), "")
    out = []
    for f in files:
        path = os.path.abspath(f)
        rel = path[len(prefix) :] if path.startswith(prefix) else os.path.relpath(path, prefix)
        if shard_of(Path(rel).as_posix(), shard.count) == shard.index:
            out.append(f)
    return out


def db_path(given: Path | None, default: Path, shard: Shard | None) -> Path:
    """Where a run writes: ``--db`` as given, or inside it when it is an existing folder, else
    ``default``; a shard's default file name says the shard (``lit-edge.shard-03-of-16.db``).

    A file name given with ``--db`` is used as is: each task of an array should then get its own.
    """
    name = shard.db_name() if shard else Path(default).name
    if given is None:
        return Path(default).with_name(name)
    given = Path(given)
    return given / name if given.is_dir() else given
