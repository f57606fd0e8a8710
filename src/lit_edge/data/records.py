"""What every dataset adapter returns: image paths, a class index per image, and the classes' taxa.

A taxon here is a plain mapping with the columns of ``labels.csv`` / ``taxa.csv``
(``scientific_name``, ``common_name``, ``kingdom`` ... ``genus``, ``species``), so that the adapters,
the feature cache and the bundle all speak the same table. :func:`lit_edge.data.captions.to_taxon`
turns one into the taxonomy module's ``Taxon`` when captions are made.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lit_edge.bundle import RANKS

log = logging.getLogger(__name__)

#: The columns of a taxon record, in labels.csv order (without the class index).
TAXON_FIELDS = ("scientific_name", "common_name", *RANKS)


def taxon_record(**values: str | None) -> dict[str, str]:
    """A taxon record with every field present (missing ones empty), whitespace stripped."""
    rec = {k: (values.get(k) or "").strip() for k in TAXON_FIELDS}
    if not rec["scientific_name"]:
        rec["scientific_name"] = " ".join(x for x in (rec["genus"], rec["species"]) if x)
    return rec


@dataclass
class LabelledImages:
    """Images with their class index; ``taxa[i]`` describes class ``i``. Paths are absolute."""

    paths: list[Path]
    labels: np.ndarray  # int64 [N]
    taxa: list[dict[str, str]]
    source: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, why) found while listing

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.paths) != len(self.labels):
            raise ValueError("paths and labels differ in length")

    def __len__(self) -> int:
        return len(self.paths)

    def cap_per_class(self, k: int) -> LabelledImages:
        """At most the first ``k`` images of each class (0 = keep all): small laptop/smoke runs."""
        if k <= 0:
            return self
        seen: dict[int, int] = defaultdict(int)
        keep = []
        for i, y in enumerate(self.labels.tolist()):
            if seen[y] < k:
                keep.append(i)
                seen[y] += 1
        return LabelledImages(
            [self.paths[i] for i in keep], self.labels[keep], self.taxa, self.source, self.skipped
        )

    def relative_items(self, root: Path) -> list[tuple[str, int]]:
        """(path relative to ``root`` where possible, class) pairs: the dataset's fingerprint input."""
        out = []
        for p, y in zip(self.paths, self.labels.tolist(), strict=True):
            try:
                rel = p.relative_to(root).as_posix()
            except ValueError:
                rel = p.as_posix()
            out.append((rel, y))
        return out
