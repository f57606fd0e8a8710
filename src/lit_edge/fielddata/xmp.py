"""Write XMP sidecars with hierarchical species keywords for digiKam, Lightroom and darktable.

The photo itself is never opened for writing: tags go to a sidecar next to it, ``photo.jpg.xmp``
(digiKam and darktable's naming, the default) or ``photo.xmp`` (Lightroom's). Keywords are written
three ways, since each tool reads its own: ``dc:subject`` (flat: the name, and the common name),
``lr:hierarchicalSubject`` (``Animalia|Chordata|Mammalia|…|Vulpes vulpes``, Lightroom and digiKam)
and ``digiKam:TagsList`` (the same path with ``/``). An existing sidecar is merged: its other
properties and keywords stay, ours are added once (re-exporting adds no duplicates).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from lit_edge.db.reader import Detections
from lit_edge.errors import UserError
from lit_edge.fielddata.config import FieldDataConfig
from lit_edge.fielddata.events import ANIMAL, BLANK, HUMAN, VEHICLE
from lit_edge.fielddata.progress import track
from lit_edge.fielddata.taxa import Taxon, load_taxonomy
from lit_edge.outcomes import classify_media

log = logging.getLogger(__name__)

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "stEvt": "http://ns.adobe.com/xap/1.0/sType/ResourceEvent#",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "crs": "http://ns.adobe.com/camera-raw-settings/1.0/",
    "darktable": "http://darktable.sf.net/",
    "Iptc4xmpCore": "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/",
}
for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)

STYLES = ("digikam", "lightroom")


def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


def sidecar_path(photo: Path, style: str) -> Path:
    """``photo.jpg.xmp`` (digikam) or ``photo.xmp`` (lightroom)."""
    if style not in STYLES:
        raise UserError(f"XMP style {style!r} is not one of {', '.join(STYLES)}; pick one with --xmp-style")
    return photo.with_name(photo.name + ".xmp") if style == "digikam" else photo.with_suffix(".xmp")


@dataclass(frozen=True)
class Keywords:
    """What one photo is tagged with."""

    flat: tuple[str, ...]  # dc:subject
    paths: tuple[tuple[str, ...], ...]  # hierarchical, root first

    @classmethod
    def for_taxon(cls, t: Taxon) -> Keywords:
        flat = (t.name, t.common_name) if t.common_name else (t.name,)
        return cls(flat=flat, paths=(t.path,))

    @classmethod
    def blank(cls) -> Keywords:
        """A top-level ``blank`` tag: empty frames are what a photo manager is asked to filter out."""
        return cls(flat=(BLANK,), paths=((BLANK,),))


def _empty_packet() -> ET.ElementTree:
    root = ET.Element(_q("x", "xmpmeta"))
    rdf = ET.SubElement(root, _q("rdf", "RDF"))
    desc = ET.SubElement(rdf, _q("rdf", "Description"))
    desc.set(_q("rdf", "about"), "")
    return ET.ElementTree(root)


def _read_packet(path: Path) -> ET.ElementTree:
    try:
        tree = ET.parse(path)
    except ET.ParseError as exc:
        raise UserError(
            f"{path}: existing XMP sidecar is not valid XML ({exc}); fix or move it, then rerun"
        ) from exc
    return tree


def _rdf(tree: ET.ElementTree) -> ET.Element:
    root = tree.getroot()
    if root.tag == _q("rdf", "RDF"):
        return root
    rdf = root.find(_q("rdf", "RDF"))
    return rdf if rdf is not None else ET.SubElement(root, _q("rdf", "RDF"))


def _holder(rdf: ET.Element, prop: str) -> ET.Element:
    """The ``rdf:Description`` that already has ``prop`` (ExifTool writes one per namespace), else
    the first one (created if the packet has none), so a property is never written twice."""
    descs = rdf.findall(_q("rdf", "Description"))
    for d in descs:
        if d.find(prop) is not None:
            return d
    if descs:
        return descs[0]
    d = ET.SubElement(rdf, _q("rdf", "Description"))
    d.set(_q("rdf", "about"), "")
    return d


def _add_to_container(rdf: ET.Element, prop: str, container: str, values: list[str]) -> None:
    """Add ``values`` to ``prop/rdf:<container>`` unless already there."""
    desc = _holder(rdf, prop)
    el = desc.find(prop)
    if el is None:
        el = ET.SubElement(desc, prop)
    box = next((c for c in el if c.tag in (_q("rdf", "Bag"), _q("rdf", "Seq"))), None)
    if box is None:
        box = ET.SubElement(el, _q("rdf", container))
    have = {(li.text or "").strip() for li in box.findall(_q("rdf", "li"))}
    for v in values:
        if v not in have:
            ET.SubElement(box, _q("rdf", "li")).text = v
            have.add(v)


def merge_keywords(tree: ET.ElementTree, kw: Keywords) -> ET.ElementTree:
    """Add ``kw`` to the packet, keeping every property and keyword already there."""
    rdf = _rdf(tree)
    _add_to_container(rdf, _q("dc", "subject"), "Bag", list(kw.flat))
    _add_to_container(rdf, _q("lr", "hierarchicalSubject"), "Bag", ["|".join(p) for p in kw.paths])
    _add_to_container(rdf, _q("digiKam", "TagsList"), "Seq", ["/".join(p) for p in kw.paths])
    return tree


def write_sidecar(photo: Path, kw: Keywords, style: str = "digikam", target: Path | None = None) -> Path:
    """Merge ``kw`` into the photo's sidecar (created if missing); write atomically."""
    path = target or sidecar_path(photo, style)
    tree = _read_packet(path) if path.is_file() else _empty_packet()
    merge_keywords(tree, kw)
    ET.indent(tree, space=" ")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".lit-edge-", suffix=".xmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n')
            tree.write(f, encoding="utf-8", xml_declaration=False)
            f.write(b'\n<?xpacket end="w"?>\n')
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_xmp(det: Detections, out: Path | None, cfg: FieldDataConfig) -> list[Path]:
    """A sidecar for every photo decided animal/human/vehicle (its taxon) or blank (a ``blank`` tag);
    beside the photo, or under ``out``.

    With ``out``, sidecars mirror the photos' tree under that folder (for read-only cards);
    returns the sidecars written.
    """
    from lit_edge.fielddata.camtrapdp import common_root

    taxonomy = load_taxonomy(det, cfg.bundle)
    photos = list(det.photos)
    root = common_root([m.path for m in photos])
    written = []
    for m in track(photos, len(photos), "XMP sidecars"):
        c = classify_media(m, cfg.rule)
        named = c.observation_type in (ANIMAL, HUMAN, VEHICLE) and c.scientific_name
        if not named and c.observation_type != BLANK:
            continue
        photo = Path(m.path)
        target = None
        if out is not None:
            target = sidecar_path(Path(out) / photo.relative_to(root), cfg.xmp_style)
        elif not photo.parent.is_dir():
            log.warning("skipping %s: its folder is not here (pass -o to write sidecars elsewhere)", photo)
            continue
        if not named:
            written.append(write_sidecar(photo, Keywords.blank(), cfg.xmp_style, target))
            continue
        taxon = taxonomy.taxon(c.scientific_name, c.rank)
        if not taxon.common_name:  # no bundle at hand: the database's predictions carry it too
            common = next((p.common_name for p in m.predictions if p.scientific_name == taxon.name), "")
            taxon = dataclasses.replace(taxon, common_name=common or "")
        kw = Keywords.for_taxon(taxon)
        written.append(write_sidecar(photo, kw, cfg.xmp_style, target))
    log.info("wrote %d XMP sidecar(s)", len(written))
    return written
