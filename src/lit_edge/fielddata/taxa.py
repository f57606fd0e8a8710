"""Taxonomic lineage of a decision, from the bundle's ``labels.csv``.

The database stores only the decided name and its rank; the XMP keywords
(``Animalia|Chordata|…|Species``) and Camtrap DP's taxonomic coverage need the ranks above it,
which live in the bundle that made the run. A missing bundle is not fatal: the name alone is still
a correct (flat) keyword, so the writers log a warning and carry on.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lit_edge.bundle import RANKS, BundleError, Label, load, read_labels
from lit_edge.db.reader import Detections

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Taxon:
    """A decided name with its rank and the names of the ranks above it (kingdom first)."""

    name: str
    rank: str
    lineage: tuple[tuple[str, str], ...] = ()  # (rank, name) above ``rank``, kingdom first
    common_name: str = ""

    @property
    def path(self) -> tuple[str, ...]:
        """Kingdom … leaf, the leaf being ``name``."""
        return (*[n for _, n in self.lineage], self.name)


class Taxonomy:
    """Looks up a decided (name, rank) in the species list to recover its lineage."""

    def __init__(self, labels: list[Label]):
        self.labels = labels
        self._by_name = {lab.scientific_name.lower(): lab for lab in labels}

    def taxon(self, name: str, rank: str | None) -> Taxon:
        rank = (rank or "species").lower()
        if rank not in RANKS:
            rank = "species"
        label = self._by_name.get(name.lower()) if rank == "species" else None
        if label is None:
            label = next((lab for lab in self.labels if lab.rank(rank).lower() == name.lower()), None)
        if label is None:
            return Taxon(name=name, rank=rank)
        above = RANKS[: RANKS.index(rank)]
        lineage = tuple((r, label.rank(r)) for r in above if label.rank(r))
        common = label.common_name if rank == "species" else ""
        return Taxon(name=name, rank=rank, lineage=lineage, common_name=common)


def load_taxonomy(det: Detections, bundle: Path | None = None) -> Taxonomy:
    """The species list of ``bundle``, else of the latest run's bundle; empty when unavailable."""
    candidates = [bundle] if bundle else [Path(r.bundle) for r in reversed(det.runs) if r.bundle]
    for path in candidates:
        try:
            if path.is_dir() and (path / "labels.csv").is_file():
                return Taxonomy(read_labels(path / "labels.csv"))
            with tempfile.TemporaryDirectory(prefix="lit-edge-labels-") as tmp:  # a .tar bundle
                return Taxonomy(list(load(path, verify=False, unpack_dir=Path(tmp)).labels))
        except (BundleError, OSError, ValueError) as exc:
            log.warning("no taxonomy from bundle %s (%s); keywords will be the names alone", path, exc)
    return Taxonomy([])
