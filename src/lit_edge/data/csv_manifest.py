"""A CSV manifest: one row per image, a ``path`` column plus taxon columns.

``path`` is relative to the manifest's folder (or absolute); ``scientific_name`` is required (or
``genus`` + ``species``); ``common_name``, ``kingdom`` ... ``family`` are optional. Classes are the
distinct scientific names in sorted order; the first row of a class gives its other columns.
"""

from __future__ import annotations

import csv
from pathlib import Path

from lit_edge.data.records import TAXON_FIELDS, LabelledImages, taxon_record
from lit_edge.errors import UserError


def load_csv(path: str | Path) -> LabelledImages:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"CSV manifest: {path} not found; set data.root to the manifest file")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or ())
        if "path" not in cols or not ({"scientific_name"} <= cols or {"genus", "species"} <= cols):
            raise UserError(
                f"CSV manifest {path}: needs columns 'path' and 'scientific_name' (or 'genus','species'); "
                f"found {sorted(cols)}"
            )
        rows = list(reader)
    records, items, skipped = {}, [], []
    for lineno, row in enumerate(rows, 2):
        rec = taxon_record(**{k: row.get(k) for k in TAXON_FIELDS})
        if not rec["scientific_name"] or not (row.get("path") or "").strip():
            skipped.append((f"{path}:{lineno}", "empty path or scientific name"))
            continue
        records.setdefault(rec["scientific_name"], rec)
        items.append((path.parent / row["path"].strip(), rec["scientific_name"]))
    names = sorted(records)
    index = {n: i for i, n in enumerate(names)}
    return LabelledImages(
        [p for p, _ in items],
        [index[n] for _, n in items],
        [records[n] for n in names],
        source=str(path),
        skipped=skipped,
    )
