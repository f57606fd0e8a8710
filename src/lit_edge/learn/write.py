"""Write a learned bundle: the parent's image towers, the new rows, refolded classifier graphs.

The one place ``learn`` writes a bundle. It builds the new bundle in a sibling ``.learning`` folder,
verifies it like any other, and only then moves it to ``out`` (replacing an older learned bundle
there), so a kill at any moment leaves ``out`` as it was or complete. (When the staged edit of
:mod:`lit_edge.bundle` lands, this function becomes a call to it.)

The image towers are copied unchanged: a learned bundle embeds photos exactly as its parent, which
is what lets a database tagged with either be relearned or retagged from its stored embeddings.
The classifier graphs are refolded with the new rows and scale by :mod:`lit_edge.export.head`
(torch- and onnx-free).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from lit_edge import __version__
from lit_edge import bundle as bf
from lit_edge.errors import UserError
from lit_edge.export import head
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
    """Refuse an ``out`` that would overwrite the parent, or a folder that is not a bundle."""
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
    stage = out.with_name(out.name + ".learning")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        for name in sorted(set(m.image_towers.values())):
            shutil.copy2(parent.root / name, stage / name)
        if parent.engines_dir.is_dir():  # TensorRT engines depend on the image tower only: still valid
            shutil.copytree(parent.engines_dir, stage / parent.engines_dir.name)
        np.save(
            stage / m.text_embeddings, np.ascontiguousarray(learned.matrix, np.float32), allow_pickle=False
        )
        bf.write_labels(stage / m.labels, learned.labels)
        for flavour, name in m.classifiers.items():
            head.add_scores_head(
                stage / m.image_towers[flavour],
                stage / name,
                learned.matrix,
                learned.logit_scale,
                m.model.logit_bias,
            )
        extra = {k: v for k, v in m.extra.items() if k not in _BUILD_ONLY}
        if "background" in extra:
            extra["background"] = {**extra["background"], "rows": sum(lab.is_blank for lab in learned.labels)}
        extra["learn"] = {
            "parent": {
                "path": str(parent.root),
                "manifest_sha256": _manifest_sha(parent),
                "image_tower_sha256": tower_id(parent),
                "learned": "learn" in m.extra,
            },
            **learned.provenance,
        }
        manifest = replace(
            m,
            model=replace(m.model, logit_scale=float(learned.logit_scale)),
            num_classes=len(learned.labels),
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            lit_edge_version=__version__,
            extra=json.loads(json.dumps(extra)),
            files={},
        )
        bf.write_manifest(stage, manifest)
        bf.load(stage)  # verify before it replaces anything
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = out.with_name(out.name + ".replaced")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.replace(old)
    stage.replace(out)
    shutil.rmtree(old, ignore_errors=True)
    return bf.load(out)
