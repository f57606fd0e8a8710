"""A class-folder tree: ``root/<species>/*.jpg``, with an optional ``root/taxonomy.csv``.

Folder names are scientific names (``Vulpes_vulpes`` or ``Vulpes vulpes``). ``taxonomy.csv``, when
present, has a ``folder`` column (or ``scientific_name`` matching the folder name) and any of the
taxon columns (``common_name``, ``kingdom`` ... ``genus``, ``species``). Classes are the folders in
sorted order.
"""

from __future__ import annotations

import csv
from pathlib import Path

from lit_edge.data.records import TAXON_FIELDS, LabelledImages, taxon_record
from lit_edge.errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def _read_taxonomy(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or ())
        key = "folder" if "folder" in cols else "scientific_name" if "scientific_name" in cols else None
        if key is None:
            raise UserError(f"{path}: needs a 'folder' or 'scientific_name' column to match the folders")
        return {row[key].strip().replace("_", " "): row for row in reader}


def load_folder(root: str | Path) -> LabelledImages:
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"class-folder dataset: {root} is not a folder; set data.root to the tree's root")
    extra = _read_taxonomy(root / "taxonomy.csv") if (root / "taxonomy.csv").is_file() else {}
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise UserError(f"class-folder dataset: {root} has no class folders; put one folder per species")
    taxa, paths, labels = [], [], []
    for cls, folder in enumerate(folders):
        name = folder.name.replace("_", " ")
        row = extra.get(name, {})
        values = {k: row.get(k) for k in TAXON_FIELDS}
        values["scientific_name"] = row.get("scientific_name") or name
        if not values.get("genus") and " " in name:
            values["genus"], values["species"] = name.split(" ", 1)
        taxa.append(taxon_record(**values))
        for p in sorted(folder.rglob("*")):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(p)
                labels.append(cls)
    return LabelledImages(paths, labels, taxa, source=str(root))
