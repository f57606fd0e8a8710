"""The names a reviewer can give a photo, and the search behind the ``/`` key.

A reviewer types a few letters of any name they know: a scientific name, a common name, or a
synonym (an older name the bundle lists for a species). The candidates are the bundle's species,
the outcomes (blank, human, vehicle, unknown), and every name people already used in this
database (so a species a reviewer added by hand is found the next time). A name that is none of
these is accepted as new, written ``Scientific name, common name`` like ``export species --add``.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from lit_edge.bundle import BundleError, Label, load, sha256_file
from lit_edge.db.annotations import OUTCOME_LABELS, AnnotationError, Verdict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Name:
    """A candidate: the label written to ``annotations``, and what it was found by."""

    label: str
    common_name: str = ""
    kind: str = "species"  # species | outcome | used (by a reviewer) | new
    synonyms: tuple[str, ...] = ()
    matched: str = ""  # the synonym the query matched, when it was one

    def verdict(self) -> Verdict:
        return Verdict.of(self.label, self.common_name)


_OUTCOME_HELP = {
    "blank": "no animal, person or vehicle",
    "human": "a person",
    "vehicle": "a vehicle",
    "unknown": "cannot tell",
}


def bundle_labels(path: Path) -> list[Label]:
    """The species of a bundle, its ``labels.csv`` checked against the manifest's checksum.

    Only the labels are read: the towers are not needed to name photos, and hashing them would
    cost ``review`` most of its start-up time.
    """
    bundle = load(path, verify=False)
    name = bundle.manifest.labels
    expected = bundle.manifest.files.get(name, {}).get("sha256")
    if expected != sha256_file(bundle.root / name):
        raise BundleError(
            f"{bundle.root / name}: checksum does not match the manifest (corrupted or tampered); "
            "copy the bundle again"
        )
    return [lab for lab in bundle.labels if not lab.outcome]  # species only: no blank, human, vehicle rows


def parse_new(text: str) -> Name:
    """``Lynx pardinus, Iberian lynx`` -> a new name; raises :class:`AnnotationError` on nonsense."""
    sci, _, common = text.partition(",")
    sci = " ".join(sci.split())
    if not sci or not sci[0].isalpha() or any(c.isdigit() for c in sci):
        raise AnnotationError(f"{text!r} is not a name; write 'Scientific name, common name'")
    if sci.casefold() not in OUTCOME_LABELS:
        sci = sci[0].upper() + sci[1:]  # genus capitalised, the rest as typed
    return Name(sci, " ".join(common.split()), kind="new")


class NameIndex:
    """Every name a reviewer may pick, searchable by any part of any of its names."""

    def __init__(self, labels: list[Label], synonyms: dict[str, tuple[str, ...]] | None = None):
        synonyms = synonyms or {}
        self.names: list[Name] = [Name(k, _OUTCOME_HELP.get(k, ""), kind="outcome") for k in OUTCOME_LABELS]
        seen = {n.label.casefold() for n in self.names}
        for lab in labels:
            key = lab.scientific_name.casefold()
            if key in seen:
                continue
            seen.add(key)
            # the bundle's own synonyms column (``Label.synonyms``, where the bundle format has it)
            syn = synonyms.get(lab.scientific_name) or tuple(getattr(lab, "synonyms", ()) or ())
            self.names.append(Name(lab.scientific_name, lab.common_name, synonyms=syn))
        self._seen = seen

    def add_used(self, conn: sqlite3.Connection) -> None:
        """Add the names people already gave in this database that the bundle does not hold."""
        for label, common in conn.execute(
            "SELECT label, max(common_name) FROM annotations WHERE retracted = 0 GROUP BY label"
        ):
            if label and label.casefold() not in self._seen:
                self._seen.add(label.casefold())
                self.names.append(Name(label, common or "", kind="used"))

    def add_predicted(self, conn: sqlite3.Connection) -> None:
        """Add the names the machine predicted: the fallback when no bundle can be read."""
        rows = conn.execute(
            "SELECT scientific_name, max(common_name) FROM predictions GROUP BY scientific_name"
        ).fetchall()
        new = []
        for label, common in rows:
            if label and label.casefold() not in self._seen:
                self._seen.add(label.casefold())
                new.append(Name(label, common or ""))
        self.names = [*self.names, *new]  # swapped in whole: a search never sees it half-built

    def add(self, name: Name) -> None:
        if name.label.casefold() not in self._seen:
            self._seen.add(name.label.casefold())
            self.names = [*self.names, Name(name.label, name.common_name, kind="used")]

    def common_name(self, label: str) -> str:
        key = label.casefold()
        return next((n.common_name for n in self.names if n.label.casefold() == key), "")

    def search(self, query: str, limit: int = 12) -> list[Name]:
        """Best matches first: exact, then prefix of a name, then prefix of a word, then anywhere."""
        q = " ".join(query.split()).casefold()
        if not q:
            return self.names[:limit]
        scored = []
        for i, n in enumerate(self.names):
            best, matched = None, ""
            for text, syn in ((n.label, ""), (n.common_name, ""), *((s, s) for s in n.synonyms)):
                t = text.casefold()
                if not t:
                    continue
                if t == q:
                    score = 0
                elif t.startswith(q):
                    score = 1
                elif any(w.startswith(q) for w in t.replace("-", " ").split()):
                    score = 2
                elif q in t:
                    score = 3
                else:
                    continue
                if best is None or score < best:
                    best, matched = score, syn
            if best is not None:
                scored.append((best, n.kind != "outcome", i, n if not matched else _with(n, matched)))
        scored.sort(key=lambda s: s[:3])
        return [s[3] for s in scored[:limit]]


def _with(n: Name, matched: str) -> Name:
    return Name(n.label, n.common_name, n.kind, n.synonyms, matched)
