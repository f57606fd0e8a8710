"""Write a Camtrap DP 1.0 package (what GBIF ingests and camtrapR / camtraptor read).

``datapackage.json`` + ``deployments.csv`` + ``media.csv`` + ``observations.csv``. Observations are
written at both levels: one ``media`` observation per photo (its own decision) and one ``event``
observation per burst (the photos' decisions aggregated, see ``events.classify_event``). All are
``classificationMethod`` ``machine``, ``classifiedBy`` the model's name and version.

``media.filePath`` is relative to the photos' common folder (Camtrap DP forbids ``..`` and absolute
paths), so the package is meant to sit in, or be published beside, that folder.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from lit_edge.db.reader import Detections, MediaRow, RunRow, parse_time
from lit_edge.errors import UserError
from lit_edge.fielddata.config import FieldDataConfig
from lit_edge.fielddata.deployments import Deployment
from lit_edge.fielddata.events import Sequenced, classify_event, sequence
from lit_edge.fielddata.taxa import Taxonomy, load_taxonomy
from lit_edge.fielddata.validate import CAMTRAP_DP_VERSION, PROFILE_URL, TABLE_SCHEMA_URLS, shipped_schema
from lit_edge.outcomes import Classification, classify_media

log = logging.getLogger(__name__)

_MEDIATYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".tif": "image/tiff"}
_MEDIATYPES |= {".tiff": "image/tiff", ".webp": "image/webp", ".bmp": "image/bmp", ".heic": "image/heic"}


def _fields(table: str) -> list[str]:
    """Column order of a table, straight from the shipped table schema."""
    schema = json.loads(shipped_schema(f"{table}-table-schema.json"))
    return [f["name"] for f in schema["fields"]]


def _iso(when: datetime | None) -> str:
    """``%Y-%m-%dT%H:%M:%S%z`` with a colon in the offset, as the table schemas want."""
    if when is None:
        return ""
    return when.replace(microsecond=0).isoformat()


def common_root(paths: list[str]) -> Path:
    """The folder holding every photo (``filePath`` and MegaDetector ``file`` are relative to it)."""
    if not paths:
        return Path(".")
    if len(paths) == 1:
        return Path(paths[0]).parent
    return Path(os.path.commonpath([str(Path(p).parent) for p in paths]))


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="raise")
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if v is None else v) for k, v in row.items()})


def _fmt_prob(p: float | None) -> str:
    return "" if p is None else f"{max(0.0, min(1.0, p)):.4f}"


@dataclass(frozen=True)
class _Machine:
    """Who classified (model name and version) and when: the same on every observation row."""

    by: str
    at: str


def _observation(
    *,
    obs_id: str,
    dep_id: str,
    media_id: str,
    event_id: str,
    start: datetime | None,
    end: datetime | None,
    level: str,
    c: Classification,
    machine: _Machine,
) -> dict:
    named = c.observation_type in ("animal", "human", "vehicle")
    classified = c.observation_type != "unclassified"
    return {
        "observationID": obs_id,
        "deploymentID": dep_id,
        "mediaID": media_id,
        "eventID": event_id,
        "eventStart": _iso(start),
        "eventEnd": _iso(end),
        "observationLevel": level,
        "observationType": c.observation_type,
        "scientificName": c.scientific_name if named else "",
        "classificationMethod": "machine" if classified else "",
        "classifiedBy": machine.by if classified else "",
        "classificationTimestamp": machine.at if classified else "",
        "classificationProbability": _fmt_prob(c.probability),
    }


def _classified_at(run: RunRow | None) -> str:
    when = parse_time(run.finished_at or run.started_at) if run else None
    if when is None:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return _iso(when)


def _spatial(deps: list[Deployment]) -> dict:
    lats = [d.latitude for d in deps]
    lons = [d.longitude for d in deps]
    if min(lats) == max(lats) and min(lons) == max(lons):
        return {"type": "Point", "coordinates": [lons[0], lats[0]]}
    w, e, s, n = min(lons), max(lons), min(lats), max(lats)
    if w == e or s == n:  # a line: pad so the polygon is not degenerate
        w, e, s, n = w - 1e-4, e + 1e-4, s - 1e-4, n + 1e-4
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _taxonomic(names: set[tuple[str, str]], taxonomy: Taxonomy) -> list[dict]:
    out = []
    for name, rank in sorted(names):
        t = taxonomy.taxon(name, rank)
        entry: dict = {"scientificName": name, "taxonRank": t.rank}
        entry.update(
            {r: n for r, n in t.lineage if r in ("kingdom", "phylum", "class", "order", "family", "genus")}
        )
        if t.common_name:
            entry["vernacularNames"] = {"eng": t.common_name}
        out.append(entry)
    return out


def _deployment_rows(seq: Sequenced) -> tuple[list[Deployment], list[dict], list[datetime]]:
    """The deployments to write, their rows, and every time they span (for ``temporal``)."""
    dep_times: dict[str, list[datetime]] = {}
    for e in seq.events:
        dep_times.setdefault(e.deployment_id, []).extend(p.when for p in e.members if p.when is not None)
    # A deployment with no photos still counts (camera effort for occupancy models) if the file
    # gives its start and end; without photos or dates its required fields cannot be filled.
    deps = [d for d in seq.deployments if d.id in dep_times or (d.start and d.end)]
    for d in seq.deployments:
        if d not in deps:
            log.warning("deployment %s has no photos and no start/end; left out", d.id)
    dep_rows = []
    for d in deps:
        times = dep_times.get(d.id, [])
        start = d.start or min(times)
        end = d.end or max(times)
        dep_rows.append(
            {
                "deploymentID": d.id,
                "locationName": d.location_name,
                "latitude": f"{d.latitude:.6f}",
                "longitude": f"{d.longitude:.6f}",
                "deploymentStart": _iso(start),
                "deploymentEnd": _iso(end),
                "cameraID": d.camera_id,
                "cameraModel": d.camera_model,
            }
        )

    spans = [t for ts in dep_times.values() for t in ts] + [
        t for d in deps for t in (d.start, d.end) if t is not None
    ]
    return deps, dep_rows, spans


def _media_and_observations(
    seq: Sequenced, root: Path, cfg: FieldDataConfig, machine: _Machine
) -> tuple[list[dict], list[dict], set[tuple[str, str]]]:
    """media.csv and observations.csv rows (media- and event-level), and the taxa named."""
    media_rows, obs_rows = [], []
    taxa: set[tuple[str, str]] = set()
    for e in seq.events:
        dep = e.members[0].deployment
        per_media = []
        for p in e.members:
            m: MediaRow = p.media
            media_id = f"m{m.id}"
            suffix = Path(m.path).suffix.lower()
            media_rows.append(
                {
                    "mediaID": media_id,
                    "deploymentID": dep.id,
                    "captureMethod": "activityDetection",
                    "timestamp": _iso(p.when),
                    "filePath": Path(m.path).relative_to(root).as_posix(),
                    "filePublic": "false",
                    "fileName": Path(m.path).name,
                    "fileMediatype": _MEDIATYPES.get(suffix, "image/jpeg"),
                    "mediaComments": f"failed: {m.error}" if not m.ok and m.error else "",
                }
            )
            c = classify_media(m, cfg.rule)
            per_media.append(c)
            if c.scientific_name:
                taxa.add((c.scientific_name, c.rank or "species"))
            obs_rows.append(
                _observation(
                    obs_id=f"{media_id}-o1",
                    dep_id=dep.id,
                    media_id=media_id,
                    event_id=e.id,
                    start=p.when,
                    end=p.when,
                    level="media",
                    c=c,
                    machine=machine,
                )
            )
        obs_rows.append(
            _observation(
                obs_id=f"{e.id}-o1",
                dep_id=dep.id,
                media_id="",
                event_id=e.id,
                start=e.start,
                end=e.end,
                level="event",
                c=classify_event(per_media),
                machine=machine,
            )
        )

    return media_rows, obs_rows, taxa


def _descriptor(
    det: Detections,
    cfg: FieldDataConfig,
    deps: list[Deployment],
    spans: list[datetime],
    taxa: set[tuple[str, str]],
    machine: _Machine,
) -> dict:
    """``datapackage.json``: the profile's required metadata, resources named by schema URL."""
    run = det.latest_run
    return {
        "resources": [
            {
                "name": name,
                "path": f"{name}.csv",
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": url,
            }
            for name, url in TABLE_SCHEMA_URLS.items()
        ],
        "profile": PROFILE_URL,
        "name": "lit-edge-" + (re.sub(r"[^a-z0-9._-]+", "-", det.db.stem.lower()).strip("-") or "db"),
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, det.db.resolve().as_uri())),
        "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "title": cfg.title,
        "description": (
            f"Photos classified offline by lit-edge ({machine.by}). media.filePath is relative to "
            f"the photo folder; events are photos of one deployment at most {cfg.event_gap_s:g} s apart."
        ),
        "version": "1.0",
        "contributors": [{"title": cfg.contributor, "role": "contributor"}],
        "sources": [{"title": "lit-edge", "version": run.lit_edge_version if run else ""}],
        "project": {
            "title": cfg.title,
            "samplingDesign": "opportunistic",
            "captureMethod": ["activityDetection"],
            "individualAnimals": False,
            "observationLevel": ["media", "event"],
        },
        "spatial": _spatial(deps),
        "temporal": {
            "start": min(spans).date().isoformat(),
            "end": max(spans).date().isoformat(),
        },
        "taxonomic": _taxonomic(taxa, load_taxonomy(det, cfg.bundle)),
    }


def write_camtrap_dp(det: Detections, out: Path, cfg: FieldDataConfig) -> Path:
    """Write the package into folder ``out``; returns the path of ``datapackage.json``."""
    photos = list(det.photos)
    timed = [m for m in photos if m.timestamp is not None]
    if len(timed) < len(photos):
        log.warning(
            "%d photo(s) have no timestamp and are left out (Camtrap DP needs one)", len(photos) - len(timed)
        )
    if not timed:
        raise UserError(f"{det.db}: no photo with a timestamp to export; tag a folder of photos first")
    seq = sequence(timed, cfg)
    run = det.latest_run
    machine = _Machine(by=run.classifier if run else "lit-edge", at=_classified_at(run))
    deps, dep_rows, spans = _deployment_rows(seq)
    media_rows, obs_rows, taxa = _media_and_observations(
        seq, common_root([m.path for m in timed]), cfg, machine
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "deployments.csv", _fields("deployments"), dep_rows)
    _write_csv(out / "media.csv", _fields("media"), media_rows)
    _write_csv(out / "observations.csv", _fields("observations"), obs_rows)
    path = out / "datapackage.json"
    descriptor = _descriptor(det, cfg, deps, spans, taxa, machine)
    path.write_text(json.dumps(descriptor, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log.info(
        "wrote Camtrap DP %s: %d deployments, %d media, %d observations -> %s",
        CAMTRAP_DP_VERSION,
        len(dep_rows),
        len(media_rows),
        len(obs_rows),
        out,
    )
    return path
