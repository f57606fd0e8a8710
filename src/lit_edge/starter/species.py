"""The starter's species list: the species that the locked ImageNet head can see, with their ranks.

A row is a WordNet synset that has a binomial lemma (``Danaus plexippus``) and covers at least one
ImageNet-1k class: most are 1k classes themselves (``bald eagle``), a few are their parents
(``domestic cat`` = ``Felis catus`` above the five cat breeds, ``dog`` = ``Canis familiaris`` above
the 118 dog breeds). Ranks come from WordNet's member holonyms (``genus Felis`` -> ``family
Felidae`` -> ``order Carnivora`` -> ...). The list is generated from WordNet + timm and committed
as ``species.csv`` (a few hundred rows) so that bundling the starter needs no WordNet;
``python -m lit_edge.starter.species`` regenerates it and a test checks it is up to date.

WordNet's names are from the 1990s (``Euarctos americanus``, the giant panda in Procyonidae), so
the list that ships is WordNet's rows corrected by ``checklist.csv``: for each WordNet binomial,
the currently accepted name, common name, kingdom ... family, and the checklist they come from
(``source``: :data:`SOURCES`), with a ``status``: ``accepted`` (WordNet's name is current),
``renamed`` (WordNet's name is kept as a synonym), ``unverified`` (kept as it was: we could not
check it; the ``note`` says what) or ``excluded`` (the row is dropped, the note says why). The
starter's text tower keeps learning WordNet's own names (:func:`species_rows`); the bundle's rows
are found by either name through the ``synonyms`` column.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from lit_edge.bundle import LABEL_COLUMNS
from lit_edge.starter.hierarchy import TAXON_GROUP, imagenet_synsets, is_taxon_group, leaf_cover
from lit_edge.starter.wordnet import WordNet, load_wordnet

SPECIES_CSV = Path(__file__).with_name("species.csv")
CHECKLIST_CSV = Path(__file__).with_name("checklist.csv")
#: The checklists ``checklist.csv`` cites, by the short name in its ``source`` column.
SOURCES = {
    "MDD": "Mammal Diversity Database (mammaldiversity.org), American Society of Mammalogists",
    "IOC": "IOC World Bird List (worldbirdnames.org), Gill, Donsker & Rasmussen (eds.)",
    "Reptile Database": "The Reptile Database (reptile-database.org), Uetz et al. (eds.)",
    "ASW": "Amphibian Species of the World (amphibiansoftheworld.amnh.org), Frost",
    "Eschmeyer's Catalog of Fishes": "Eschmeyer's Catalog of Fishes, California Academy of Sciences",
    "WSC": "World Spider Catalog (wsc.nmbe.ch), Natural History Museum Bern",
    "WoRMS": "World Register of Marine Species (marinespecies.org)",
    "Catalogue of Life": "Catalogue of Life (catalogueoflife.org)",
    "Index Fungorum": "Index Fungorum / Species Fungorum (indexfungorum.org)",
    "POWO": "Plants of the World Online (powo.science.kew.org), Royal Botanic Gardens, Kew",
}
CHECKLIST_RANKS = ("kingdom", "phylum", "class", "order", "family")
STATUSES = ("accepted", "renamed", "unverified", "excluded")
#: WordNet rank words -> labels.csv columns (sub-/super-ranks are skipped; a plant division is a phylum).
RANK_WORDS = {
    "kingdom": "kingdom",
    "phylum": "phylum",
    "division": "phylum",
    "class": "class",
    "order": "order",
    "family": "family",
    "genus": "genus",
}
_BINOMIAL = re.compile(r"^([A-Z][a-z]+) ([a-z][a-z-]+)$")


@dataclass(frozen=True)
class SpeciesRow:
    """One species of the starter: its synset, the classes it covers and its labels.csv row."""

    synset: str
    classes: tuple[int, ...]
    row: dict[str, str]


def genus_names(wn: WordNet) -> frozenset[str]:
    """Every genus WordNet names (``genus Felis`` -> ``Felis``), to tell binomials from ``Welsh terrier``."""
    out = set()
    for s in wn.synsets.values():
        for lemma in s.lemmas:
            if lemma.startswith("genus "):
                out.add(lemma[len("genus ") :])
    return frozenset(out)


def taxon_chain(wn: WordNet, synset_id: str) -> dict[str, str]:
    """Ranks above a species, following member holonyms (``domestic cat`` -> ``genus Felis`` -> ...).

    A synset without a genus of its own (a breed, a subspecies) borrows the chain of its nearest
    hypernym that has one.
    """
    ranks: dict[str, str] = {}
    current, seen = synset_id, set()
    climbing = True  # still looking for the first group above the species
    while current and current not in seen:
        seen.add(current)
        groups = [h for h in wn[current].member_holonyms if is_taxon_group(wn, h)]
        if not groups:
            hypernyms = wn[current].hypernyms
            current = hypernyms[0] if climbing and hypernyms else None
            continue
        climbing = False
        current = groups[0]
        for lemma in wn[current].lemmas:
            m = TAXON_GROUP.match(lemma)
            if m and m.group(1) in RANK_WORDS:
                ranks.setdefault(RANK_WORDS[m.group(1)], lemma.split(" ", 1)[1])
    return ranks


def binomial(wn: WordNet, synset_id: str, genera: frozenset[str], genus: str = "") -> str:
    """The synset's scientific name: its last binomial lemma, preferring the genus of its chain."""
    names = [
        lemma for lemma in wn[synset_id].lemmas if (m := _BINOMIAL.match(lemma)) and m.group(1) in genera
    ]
    preferred = [n for n in names if n.split(" ")[0] == genus]
    names = preferred or names
    return names[-1] if names else ""


def common_name(wn: WordNet, synset_id: str) -> str:
    """The first lemma that is not a binomial, capitalised like a label (``bald eagle`` -> ``Bald eagle``)."""
    for lemma in wn[synset_id].lemmas:
        if not _BINOMIAL.match(lemma):
            return lemma[:1].upper() + lemma[1:]
    return ""


def species_rows(wn: WordNet | None = None, classes: tuple[str, ...] | None = None) -> list[SpeciesRow]:
    """Every synset with a binomial that covers at least one class, as labels.csv rows, sorted by name."""
    wn = wn or load_wordnet()
    classes = classes or imagenet_synsets()
    cover = leaf_cover(wn, classes)
    genera = genus_names(wn)
    found: dict[str, SpeciesRow] = {}
    for sid, covered in sorted(cover.items()):
        ranks = taxon_chain(wn, sid)
        name = binomial(wn, sid, genera, ranks.get("genus", ""))
        if not name:
            continue
        if name in found and (len(found[name].classes), found[name].synset) >= (len(covered), sid):
            continue  # the same binomial on two synsets (hog and wild boar): keep the broader one
        genus, epithet = name.split(" ")
        row = {c: "" for c in LABEL_COLUMNS}
        row.update(ranks)
        row.update(genus=genus, species=epithet, scientific_name=name, common_name=common_name(wn, sid))
        found[name] = SpeciesRow(sid, tuple(sorted(covered)), row)
    rows = sorted(found.values(), key=lambda r: r.row["scientific_name"])
    for i, r in enumerate(rows):
        r.row["id"] = str(i)
    return rows


def read_checklist(path: Path = CHECKLIST_CSV) -> dict[str, dict[str, str]]:
    """``checklist.csv`` by WordNet binomial; checks every row names a known source and status."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        if r["source"] not in SOURCES or r["status"] not in STATUSES:
            raise ValueError(f"{path}: {r['wordnet_name']}: unknown source or status")
    return {r["wordnet_name"]: r for r in rows}


def current_names(
    rows: list[SpeciesRow], checklist: dict[str, dict[str, str]] | None = None
) -> list[SpeciesRow]:
    """WordNet's rows with the checklist's accepted names and ranks; WordNet's name becomes a
    synonym where it differs; excluded rows are dropped; ids are renumbered in the new name order.
    A row the checklist does not cover stays as WordNet has it, marked ``unverified``."""
    checklist = read_checklist() if checklist is None else checklist
    out = []
    for r in rows:
        old = r.row["scientific_name"]
        entry = checklist.get(old)
        row = {**r.row, "synonyms": "", "source": "WordNet 3.0", "status": "unverified"}
        if entry is not None:
            if entry["status"] == "excluded":
                continue
            name = entry["scientific_name"]
            genus, _, epithet = name.partition(" ")
            row.update({k: entry[k] for k in CHECKLIST_RANKS})
            row.update(
                scientific_name=name,
                common_name=entry["common_name"] or row["common_name"],
                genus=genus,
                species=epithet,
                synonyms=old if name != old else "",
                source=entry["source"],
                status=entry["status"],
            )
        out.append(SpeciesRow(r.synset, r.classes, row))
    out.sort(key=lambda r: r.row["scientific_name"])
    for i, r in enumerate(out):
        r.row["id"] = str(i)
    return out


def to_csv(rows: list[SpeciesRow]) -> str:
    """The species list as labels.csv text (bundle ``LABEL_COLUMNS``), plus the synset id it came
    from and, once :func:`current_names` has run, the checklist it was checked against."""
    extra = ["wordnet_synset"] + (["source", "status"] if rows and "source" in rows[0].row else [])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*LABEL_COLUMNS, *extra], lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({"synonyms": "", **r.row, "wordnet_synset": r.synset})
    return buf.getvalue()


def read_species_csv(path: Path = SPECIES_CSV) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def class_targets(labels: list, matrix, species_csv: Path = SPECIES_CSV, wn: WordNet | None = None):
    """``matrix`` (the species rows of a starter bundle, in ``labels`` order) with every row whose
    name (or synonym) ``species_csv`` lists with a ``wordnet_synset`` replaced by the distribution
    the starter's text tower was taught for that name: ``sqrt`` of the uniform distribution over
    the ImageNet classes the synset covers. The text tower only approximates it (the ``Canis
    familiaris`` it writes puts 0.1x to 4x the fair share on single breeds and 4 % off the dog
    classes); the exact row makes a row's score exactly the head's probability of its classes.
    Rows the CSV does not know (added by name) keep the text tower's encoding.
    """
    import numpy as np

    from lit_edge.bundle import NameIndex, read_labels
    from lit_edge.starter.hierarchy import imagenet_synsets, leaf_cover

    wn = wn or load_wordnet()
    synsets = {r["scientific_name"]: r.get("wordnet_synset", "") for r in read_species_csv(species_csv)}
    known = read_labels(species_csv)
    index = NameIndex(known)
    cover = leaf_cover(wn, imagenet_synsets())
    out = np.array(matrix, dtype=np.float32, copy=True)
    for i, lab in enumerate(labels):
        hit = index.get(lab.scientific_name)
        classes = (
            sorted(cover.get(synsets.get(known[hit].scientific_name, ""), ())) if hit is not None else []
        )
        if classes and out.shape[1] == len(imagenet_synsets()):
            out[i] = 0.0
            out[i, classes] = 1.0 / np.sqrt(len(classes))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m lit_edge.starter.species [OUT.csv]``: regenerate the committed species list."""
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else SPECIES_CSV
    rows = current_names(species_rows())
    out.write_text(to_csv(rows), encoding="utf-8")
    print(f"wrote {len(rows)} species to {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
