"""Events (bursts) for the review page: one folder's photos grouped the way the exports group them.

The grouping is :func:`lit_edge.fielddata.events.group_events` itself (photos of one deployment at
most ``gap`` seconds apart), applied to the per-folder deployment the page is showing, so an event
a reviewer verifies at once is the same event Camtrap DP writes. Only that folder's rows are read,
never the whole database; the result is kept until the folder gains or loses rows.

An event's suggestions are its photos' top-5 scores summed per name over the photos, divided by
the number of photos: a burst whose photos agree keeps its confidence, a split one loses it (the
rule :func:`~lit_edge.fielddata.events.classify_event` applies to decisions).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path

from lit_edge.db.queue import Item, folder_rows, items
from lit_edge.db.reader import Prediction, parse_time
from lit_edge.fielddata.deployments import Deployment, Placed, localise
from lit_edge.fielddata.events import group_events


@dataclass(frozen=True)
class Burst:
    """An event of one folder: its id (as the exports write it), its photos in time order."""

    id: str
    media_ids: tuple[int, ...]
    start: str | None
    end: str | None


def suggestions(members: list[Item], k: int = 5) -> list[Prediction]:
    """The event's top-``k``: each name's summed score over the photos / the number of photos."""
    total: dict[str, list] = {}
    for m in members:
        for p in m.predictions:
            entry = total.setdefault(p.scientific_name, [0.0, p])
            entry[0] += p.score
    ranked = sorted(total.items(), key=lambda kv: (-kv[1][0], kv[0]))[:k]
    n = max(1, len(members))
    return [
        Prediction(i, p.label_id, name, p.common_name, s / n)
        for i, (name, (s, p)) in enumerate(ranked, start=1)
    ]


class Bursts:
    """Events per folder, cached by the folder's row count and newest id."""

    def __init__(self, gap_s: float = 60.0):
        self.gap_s = gap_s
        self._cache: dict[str, tuple[tuple, list[Burst]]] = {}
        self._lock = threading.Lock()

    def of_folder(self, conn: sqlite3.Connection, folder: str) -> list[Burst]:
        stamp = conn.execute(
            "SELECT count(*), max(id) FROM media WHERE path >= ? AND path < ?",
            (folder, folder.rstrip("/") + "0"),
        ).fetchone()
        with self._lock:
            hit = self._cache.get(folder)
            if hit is not None and hit[0] == tuple(stamp):
                return hit[1]
        rows = folder_rows(conn, folder)
        dep = Deployment(id=Path(folder.rstrip("/")).name or "folder", latitude=0.0, longitude=0.0)
        placed = [Placed(r, dep, localise(parse_time(r.captured_at), timezone.utc)) for r in rows]  # type: ignore[arg-type]
        bursts = []
        for e in group_events(placed, self.gap_s):
            times = [p.media.captured_at for p in e.members if p.media.captured_at]
            bursts.append(
                Burst(
                    e.id,
                    tuple(p.media.id for p in e.members),
                    min(times, default=None),
                    max(times, default=None),
                )
            )
        bursts.sort(key=lambda b: (b.start is None, b.start or "", b.media_ids[0]))
        with self._lock:
            self._cache[folder] = (tuple(stamp), bursts)
        return bursts

    def members(self, conn: sqlite3.Connection, burst: Burst) -> list[Item]:
        return items(conn, list(burst.media_ids))
