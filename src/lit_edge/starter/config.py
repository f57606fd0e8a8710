"""The starter recipe as a typed config: what is taught, how long, and how the result is scored.

``train/starter.py`` is the config file a person reads and edits (``get_config()``, plus a ``smoke``
variant the tests run); the defaults here are the shipped recipe, so the library can build the
starter from a wheel where ``train/`` does not exist.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace


@dataclass(frozen=True)
class StarterConfig:
    """How the starter checkpoint is built.

    ``mode``: ``head`` trains only the text head on frozen MiniLM features (computed once; the
    shipped route: it fits in the 5-minute budget with room to spare), ``full`` also tunes the
    whole MiniLM encoder for ``time_budget_s`` (measured against ``head`` in ``bench/bench_starter.py``).
    """

    model: str = "lit-effnetlite0-minilm-classdist"
    mode: str = "head"  # head | full
    # what is taught ------------------------------------------------------------------------------
    max_cover: int = 1000  # skip synsets that cover more ImageNet classes than this (1000 = keep all)
    class_templates: int = 4  # templated phrasings per name of an ImageNet class or species
    parent_templates: int = 2  # templated phrasings per name of a synset above the classes
    glosses: bool = True  # teach the WordNet definition of each class too
    heldout_lemma_fraction: float = 0.0  # hold whole names out (for measuring; 0 in the shipped model)
    classes: tuple[int, ...] = ()  # restrict to these ImageNet classes (smoke runs); () = all 1,000
    # how --------------------------------------------------------------------------------------------
    epochs: int = 12
    batch_size: int = 512
    lr: float = 3e-3
    encoder_lr: float = 3e-5  # mode=full only
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    time_budget_s: float = 0.0  # stop training after this many seconds (0 = no limit)
    feature_batch_size: int = 256
    seed: int = 0
    threads: int = 0  # torch threads (0 = leave torch's default)
    # scoring ------------------------------------------------------------------------------------
    logit_scale: float = 50.0  # exp(model.logit_scale): turns Bhattacharyya coefficients into logits
    pretrained: bool = True  # False: random towers (tests of the pipeline only)
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
