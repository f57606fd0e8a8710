"""Taxa and the captions made from them, for training (LiT) and for zero-shot classifiers.

A :class:`Taxon` carries the seven Linnaean ranks and a common name, as in iNaturalist-2021's category
records. Captions follow the field's practice (BioCLIP's text types): scientific, common, the full
taxonomic string, scientific + common, taxonomic + common, and the seed method's
``a photo of <concatenated metadata>``. This module is pure Python: the device runtime uses it and
must never import torch.
"""

from __future__ import annotations

import csv
import enum
import unicodedata
from dataclasses import dataclass, fields
from pathlib import Path

from lit_edge.errors import UserError

RANKS = ("kingdom", "phylum", "class_", "order", "family", "genus", "species")

#: Zero-shot templates: a handful that suit field photos (camera traps, close-ups, specimens).
TEMPLATES: tuple[str, ...] = (
    "a photo of {}.",
    "a camera trap photo of {}.",
    "a close-up photo of {}.",
    "a blurry photo of {}.",
    "a photo of {} in the wild.",
    "a field photo of {}.",
    "a photo of the small {}.",
    "a photo of the large {}.",
)

DEFAULT_TEMPLATE = "a photo of {}."


class TextType(str, enum.Enum):
    """Which name of a taxon goes into a caption."""

    SCIENTIFIC = "scientific"  # Danaus plexippus
    COMMON = "common"  # Monarch (scientific when there is no common name)
    TAXONOMIC = "taxonomic"  # Animalia Arthropoda Insecta Lepidoptera Nymphalidae Danaus plexippus
    SCIENTIFIC_COMMON = "scientific_common"  # Danaus plexippus with common name Monarch
    TAXONOMIC_COMMON = "taxonomic_common"  # <taxonomic> with common name Monarch
    METADATA = "metadata"  # every field, concatenated (the seed method)


def _clean(value: object) -> str:
    """NFC-normalise and collapse whitespace, so 'Pyrrhula  pyrrhula' == 'Pyrrhula pyrrhula'."""
    if value is None:
        return ""
    return " ".join(unicodedata.normalize("NFC", str(value)).split())


@dataclass(frozen=True)
class Taxon:
    """One class: ranks from kingdom to genus, ``species`` is the specific epithet ('plexippus')."""

    kingdom: str = ""
    phylum: str = ""
    class_: str = ""
    order: str = ""
    family: str = ""
    genus: str = ""
    species: str = ""
    common_name: str = ""
    synonyms: str = ""  # other scientific names of this taxon, ';'-separated (labels.csv ``synonyms``)

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _clean(getattr(self, f.name)))

    @property
    def scientific_name(self) -> str:
        """'Genus epithet' (or the lowest rank known, for a taxon above species)."""
        if self.genus:
            return f"{self.genus} {self.species}".strip()
        for rank in reversed(RANKS[:-2]):
            if getattr(self, rank):
                return getattr(self, rank)
        return self.species

    @property
    def display_common_name(self) -> str:
        """The common name, or the scientific name where none is known."""
        return self.common_name or self.scientific_name

    @property
    def taxonomic_name(self) -> str:
        """'Animalia Arthropoda Insecta Lepidoptera Nymphalidae Danaus plexippus' (known ranks only)."""
        return " ".join(v for v in (getattr(self, r) for r in RANKS) if v)

    def ranks(self) -> dict[str, str]:
        """Rank name -> value, with ``class`` spelt as in iNat and labels.csv."""
        return {r.rstrip("_"): getattr(self, r) for r in RANKS}

    @classmethod
    def from_name(cls, scientific_name: str, common_name: str = "", **ranks: str) -> Taxon:
        """'Danaus plexippus' -> genus 'Danaus', species 'plexippus' (a single word is a genus)."""
        genus, _, epithet = _clean(scientific_name).partition(" ")
        return cls(genus=genus, species=epithet, common_name=common_name, **ranks)

    @classmethod
    def from_dict(cls, row: dict) -> Taxon:
        """Parse an iNat-2021 category record or a CSV row (``class``, ``specific_epithet``, ``name``...).

        Accepted spellings: ``class``/``class_``; ``specific_epithet``/``species`` (a full binomial in
        ``species`` is split); ``name``/``scientific_name`` fill genus and epithet when those are absent.
        """
        get = {str(k).strip().lower(): _clean(v) for k, v in row.items() if k is not None}
        genus = get.get("genus", "")
        epithet = get.get("specific_epithet") or get.get("species", "")
        if genus and epithet.startswith(genus + " "):
            epithet = epithet[len(genus) + 1 :]
        name = get.get("scientific_name") or get.get("name", "")
        if not genus and " " in epithet:  # a binomial in the species column, no genus column
            name, epithet = epithet, ""
        if name and not genus:
            genus, _, rest = name.partition(" ")
            epithet = epithet or rest
        return cls(
            kingdom=get.get("kingdom", ""),
            phylum=get.get("phylum", ""),
            class_=get.get("class") or get.get("class_", ""),
            order=get.get("order", ""),
            family=get.get("family", ""),
            genus=genus,
            species=epithet,
            common_name=get.get("common_name", ""),
            synonyms=get.get("synonyms", ""),
        )

    def to_dict(self) -> dict[str, str]:
        """iNat-style keys (the inverse of :meth:`from_dict`)."""
        d = self.ranks()
        d["specific_epithet"] = d.pop("species")
        return {**d, "common_name": self.common_name, "name": self.scientific_name}


def name_for(taxon: Taxon, text_type: TextType | str) -> str:
    """The text a caption puts into its template for ``text_type``."""
    t = TextType(text_type)
    if t is TextType.SCIENTIFIC:
        return taxon.scientific_name
    if t is TextType.COMMON:
        return taxon.display_common_name
    if t is TextType.TAXONOMIC:
        return taxon.taxonomic_name
    if t is TextType.SCIENTIFIC_COMMON:
        return _with_common(taxon.scientific_name, taxon)
    if t is TextType.TAXONOMIC_COMMON:
        return _with_common(taxon.taxonomic_name, taxon)
    # METADATA: every known field once, in rank order, then the common name.
    parts = [v for v in (getattr(taxon, r) for r in RANKS) if v]
    if taxon.common_name:
        parts.append(taxon.common_name)
    return " ".join(parts)


def _with_common(name: str, taxon: Taxon) -> str:
    return f"{name} with common name {taxon.common_name}" if taxon.common_name else name


def caption(
    taxon: Taxon, text_type: TextType | str = TextType.SCIENTIFIC, template: str = DEFAULT_TEMPLATE
) -> str:
    """'a photo of Danaus plexippus.' and its siblings; ``template`` holds one ``{}``."""
    return template.format(name_for(taxon, text_type))


def zero_shot_texts(
    taxon: Taxon,
    templates: tuple[str, ...] | list[str] = TEMPLATES,
    text_type: TextType | str = TextType.SCIENTIFIC,
) -> list[str]:
    """One caption per template, for averaging into a zero-shot class embedding."""
    name = name_for(taxon, text_type)
    return [t.format(name) for t in templates]


# species list files --------------------------------------------------------------------------------
_HEADER_HINTS = {"genus", "scientific_name", "name", "specific_epithet", "species", "kingdom", "family"}


def read_species_list(path: Path | str) -> list[Taxon]:
    """A species list: a CSV with taxonomy columns (a header row) or plain text, one name a line.

    Plain text lines are 'Genus epithet' or 'Genus epithet, Common name'; blank lines and lines
    starting with '#' are skipped. A duplicate species is refused (two classes could never be told apart).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"species list {path} not found; pass a CSV or a text file of names") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc}); save the species list as UTF-8") from None
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
    header = {c.strip().lower() for c in next(csv.reader([first]), [])} if first else set()
    taxa = _read_csv(path, lines) if header & _HEADER_HINTS else _read_plain(path, lines)
    if not taxa:
        raise UserError(f"{path}: the species list is empty; add one species per line")
    return taxa


def _read_csv(path: Path, lines: list[str]) -> list[Taxon]:
    rows = [ln for ln in lines if not ln.lstrip().startswith("#")]
    reader = csv.DictReader(rows)
    out: list[tuple[int, Taxon]] = []
    for lineno, row in enumerate(reader, start=2):
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        taxon = Taxon.from_dict(row)
        if not taxon.scientific_name:
            raise UserError(f"{path}: row {lineno} names no taxon; fill genus/specific_epithet or name")
        out.append((lineno, taxon))
    return _unique(path, out)


def _read_plain(path: Path, lines: list[str]) -> list[Taxon]:
    out: list[tuple[int, Taxon]] = []
    for lineno, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, common = line.partition(",")
        if not name.strip():
            raise UserError(
                f"{path}: line {lineno} has no scientific name; write 'Genus epithet[, Common name]'"
            )
        out.append((lineno, Taxon.from_name(name, common_name=common)))
    return _unique(path, out)


def _unique(path: Path, taxa: list[tuple[int, Taxon]]) -> list[Taxon]:
    seen: dict[str, int] = {}
    for lineno, taxon in taxa:
        key = taxon.scientific_name.casefold()
        if key in seen:
            raise UserError(
                f"{path}: line {lineno} repeats {taxon.scientific_name!r} (first on line {seen[key]}); "
                "remove the duplicate"
            )
        seen[key] = lineno
    return [t for _, t in taxa]
