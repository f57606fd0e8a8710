"""Write a learned bundle: the parent's image towers, the new rows, refolded classifier graphs.

The one place ``learn`` writes a bundle, through the one staged edit (``bundle.edit(out,
base=parent)``, :mod:`lit_edge.bundle_edit`): the new bundle is written aside, verified like any
other and swapped in, so a kill at any moment leaves ``out`` as it was or complete.

The image towers are carried over unchanged: a learned bundle embeds photos exactly as its parent,
which is what lets a database tagged with either be relearned or retagged from its stored
embeddings. The edit refolds the classifier graphs with the new rows and logit scale.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

from lit_edge import __version__, outcomes
from lit_edge import bundle as bf
from lit_edge.errors import UserError
from lit_edge.learn.core import Learned

#: manifest.extra entries that describe how the parent was *built*; they no longer describe the
#: learned bundle (``export starter`` would otherwise take it for an up-to-date starter).
_BUILD_ONLY = ("fingerprint",)


def tower_id(b: bf.Bundle) -> str:
    """What the embeddings of ``b`` depend on: its fp32 image tower's sha256 (the INT8 towers are
    quantized from it). Parent and learned bundles share it."""
    return b.manifest.files[b.manifest.image_towers["fp32"]]["sha256"]


def _manifest_sha(b: bf.Bundle) -> str:
    return hashlib.sha256((b.root / bf.MANIFEST).read_bytes()).hexdigest()


def check_out(parent: bf.Bundle, out: Path) -> None:
    """Refuse an ``out`` that would overwrite the parent, or a folder that is not a bundle (checked
    before any work, so that a wrong ``-o`` is a one-line error at once)."""
    if out.exists() and out.resolve() == parent.root.resolve():
        raise UserError(
            f"-o {out} is the bundle being learned from; write the learned bundle beside it "
            "(keep the original to learn from again with more verified photos)"
        )
    if out.exists() and not (out / bf.MANIFEST).is_file():
        raise UserError(f"-o {out} exists and is not a bundle; choose a new folder")


def write(parent: bf.Bundle, learned: Learned, out: Path) -> bf.Bundle:
    """Write ``learned`` as a complete, verified bundle at ``out``; returns it loaded."""
    out = Path(out)
    check_out(parent, out)
    m = parent.manifest
    extra = {k: v for k, v in m.extra.items() if k not in _BUILD_ONLY}
    if "background" in extra:
        extra["background"] = {
            **extra["background"],
            "rows": sum(lab.outcome == outcomes.BLANK for lab in learned.labels),
        }
    extra["learn"] = {
        "parent": {
            "path": str(parent.root),
            "manifest_sha256": _manifest_sha(parent),
            "image_tower_sha256": tower_id(parent),
            "learned": "learn" in m.extra,
        },
        **learned.provenance,
    }
    with bf.edit(out, base=parent.root) as staged:
        staged.set_rows(learned.labels, learned.matrix)
        staged.manifest = replace(
            staged.manifest,
            model=replace(staged.manifest.model, logit_scale=float(learned.logit_scale)),
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            lit_edge_version=__version__,
            extra=json.loads(json.dumps(extra)),
        )
    return staged.bundle
