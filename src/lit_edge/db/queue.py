"""What a reviewer sees of a database: paginated views of the media rows people can verify.

Why keyset pagination: ``lit-edge review`` must open in two seconds on a 100,000-photo database
and show the next photo in a tenth of one, so no view ever reads the whole database. Each page is
one indexed range scan that starts after the last row of the previous page (a :class:`Cursor`),
never an ``OFFSET`` that re-reads everything before it. The indexes are ``media(top_score)``,
``media(top_name, top_score)`` and ``annotations(media_id)``/``annotations(replaces)``.

Which rows can be verified: classified photos and clips (a clip's own row, which carries its
aggregated decision; its sampled frames are evidence, not things to label), and live frames that
were saved to disk. Failed rows have nothing to show.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from lit_edge.db.annotations import Annotation, current
from lit_edge.db.reader import Prediction

REVIEWABLE = (
    "m.status = 'done' AND (m.kind IN ('photo', 'clip') OR (m.kind = 'live' AND m.saved_frame IS NOT NULL))"
)
_IN_EFFECT = "a.media_id = m.id AND a.retracted = 0 AND NOT EXISTS (SELECT 1 FROM annotations r WHERE r.replaces = a.id)"
VERIFIED = f"EXISTS (SELECT 1 FROM annotations a WHERE {_IN_EFFECT})"
TODO = f"NOT {VERIFIED}"
TOP_K = 5

ORDERS = ("doubt", "time")
STATUSES = ("todo", "verified", "all")


@dataclass(frozen=True)
class Item:
    """One media row as the review page shows it: the machine's decision, its top-5, and the
    people's current word (None while unverified)."""

    id: int
    path: str
    frame_index: int
    kind: str
    captured_at: str | None
    top_name: str | None
    top_rank: str | None
    top_score: float | None
    saved_frame: str | None = None
    predictions: tuple[Prediction, ...] = ()
    annotation: Annotation | None = None


@dataclass(frozen=True)
class View:
    """Which rows, in which order. ``order``: ``doubt`` (lowest score first) or ``time``.
    ``species``: the machine's decided name; ``folder``: the photos directly in that folder."""

    order: str = "doubt"
    status: str = "todo"
    species: str | None = None
    folder: str | None = None
    limit: int = 60

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"order {self.order!r}: use one of {', '.join(ORDERS)}")
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r}: use one of {', '.join(STATUSES)}")
        if not 1 <= self.limit <= 1000:
            raise ValueError(f"limit {self.limit}: use 1 to 1000")


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the sort key of its last row (None sorts first) and that row's id."""

    key: float | str | None
    id: int

    def encode(self) -> str:
        kind = "n" if self.key is None else "f" if isinstance(self.key, float) else "s"
        return f"{kind}:{self.id}:{'' if self.key is None else self.key}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            kind, ident, key = text.split(":", 2)
            value = None if kind == "n" else float(key) if kind == "f" else key
            if kind not in "nfs":
                raise ValueError(kind)
            return cls(value, int(ident))
        except ValueError as exc:
            raise ValueError(f"not a page cursor: {text!r}") from exc


@dataclass(frozen=True)
class Page:
    items: tuple[Item, ...]
    next: Cursor | None = None  # None: this was the last page
    total: int | None = field(default=None)


_ITEM_COLS = (
    "m.id, m.path, m.frame_index, m.kind, m.captured_at, m.top_name, m.top_rank, m.top_score, m.saved_frame"
)


def folder_of(path: str) -> str:
    """The folder part of a stored path, as SQL's ``rtrim(path, replace(path, '/', ''))`` gives it
    (with its trailing slash): the per-folder deployment a photo belongs to."""
    return path[: path.rfind("/") + 1]


def _filters(view: View) -> tuple[list[str], list]:
    where, params = [REVIEWABLE], []
    if view.status == "todo":
        where.append(TODO)
    elif view.status == "verified":
        where.append(VERIFIED)
    if view.species is not None:
        where.append("m.top_name = ?")
        params.append(view.species)
    if view.folder is not None:
        folder = view.folder if view.folder.endswith("/") else view.folder + "/"
        # a range on the (path, frame_index) index, then only the folder's own files
        where += ["m.path >= ?", "m.path < ?", "rtrim(m.path, replace(m.path, '/', '')) = ?"]
        params += [folder, folder[:-1] + "0", folder]  # '0' is the character after '/'
    return where, params


def page(conn: sqlite3.Connection, view: View, after: Cursor | None = None) -> Page:
    """One page of ``view`` after ``after`` (from the start when None).

    Rows whose sort key is NULL (no score, no timestamp) come first, ordered by id; then the rest
    by key and id. Each part is its own indexed keyset scan.
    """
    key = "m.top_score" if view.order == "doubt" else "m.captured_at"
    where, params = _filters(view)
    base = f"SELECT {_ITEM_COLS}, {key} FROM media m WHERE {' AND '.join(where)}"
    rows: list[tuple] = []
    if after is None or after.key is None:
        rows += conn.execute(
            f"{base} AND {key} IS NULL AND m.id > ? ORDER BY m.id LIMIT ?",
            (*params, after.id if after else -1, view.limit + 1),
        ).fetchall()
    if len(rows) <= view.limit:
        if after is None or after.key is None:
            tail = conn.execute(
                f"{base} AND {key} IS NOT NULL ORDER BY {key}, m.id LIMIT ?",
                (*params, view.limit + 1 - len(rows)),
            )
        else:
            tail = conn.execute(
                f"{base} AND ({key}, m.id) > (?, ?) ORDER BY {key}, m.id LIMIT ?",
                (*params, after.key, after.id, view.limit + 1 - len(rows)),
            )
        rows += tail.fetchall()
    more = len(rows) > view.limit
    rows = rows[: view.limit]
    items = hydrate(conn, [_item(r) for r in rows])
    nxt = None
    if more and rows:
        last = rows[-1]
        nxt = Cursor(last[-1] if last[-1] is None or view.order == "time" else float(last[-1]), int(last[0]))
    return Page(items=tuple(items), next=nxt)


def _item(row: tuple) -> Item:
    mid, path, frame, kind, captured_at, name, rank, score, saved = row[:9]
    return Item(
        id=int(mid),
        path=path or "",
        frame_index=int(frame) if frame is not None else -1,
        kind=kind or "photo",
        captured_at=captured_at,
        top_name=name,
        top_rank=rank,
        top_score=float(score) if score is not None else None,
        saved_frame=saved,
    )


def hydrate(conn: sqlite3.Connection, items: list[Item]) -> list[Item]:
    """Attach each item's top-5 predictions and current annotation (two indexed queries a page)."""
    if not items:
        return []
    ids = [i.id for i in items]
    preds: dict[int, list[Prediction]] = {}
    marks = ",".join("?" * len(ids))
    for media_id, pos, label_id, sci, common, score in conn.execute(
        "SELECT media_id, position, label_id, scientific_name, common_name, score FROM predictions "
        f"WHERE media_id IN ({marks}) AND position <= {TOP_K} ORDER BY media_id, position",
        ids,
    ):
        preds.setdefault(media_id, []).append(
            Prediction(int(pos), int(label_id) if label_id is not None else -1, sci or "", common or "",
                       float(score or 0.0))
        )  # fmt: skip
    now = current(conn, ids)
    return [
        Item(**{**i.__dict__, "predictions": tuple(preds.get(i.id, ())), "annotation": now.get(i.id)})
        for i in items
    ]


def items(conn: sqlite3.Connection, media_ids: list[int]) -> list[Item]:
    """The reviewable rows among ``media_ids``, in the order given."""
    if not media_ids:
        return []
    marks = ",".join("?" * len(media_ids))
    rows = conn.execute(
        f"SELECT {_ITEM_COLS} FROM media m WHERE m.id IN ({marks}) AND {REVIEWABLE}", media_ids
    )
    by_id = {r[0]: _item(r) for r in rows}
    return hydrate(conn, [by_id[i] for i in media_ids if i in by_id])


@dataclass(frozen=True)
class Counts:
    reviewable: int
    verified: int


def counts(conn: sqlite3.Connection) -> Counts:
    """How many rows can be verified and how many are (one index scan and one pass over annotations)."""
    total = conn.execute(f"SELECT count(*) FROM media m WHERE {REVIEWABLE}").fetchone()[0]
    verified = conn.execute(
        f"SELECT count(DISTINCT a.media_id) FROM annotations a JOIN media m ON m.id = a.media_id "
        f"WHERE {REVIEWABLE} AND a.retracted = 0 "
        "AND NOT EXISTS (SELECT 1 FROM annotations r WHERE r.replaces = a.id)"
    ).fetchone()[0]
    return Counts(int(total), int(verified))


@dataclass(frozen=True)
class Group:
    """A species (the machine's decided name and level) or a folder, with its counts."""

    key: str
    rank: str
    count: int
    verified: int


def stamp(conn: sqlite3.Connection) -> tuple:
    """Changes when media rows are added or re-decided (a new run): what group lists are cached by.
    Two rowid lookups, so it can be asked on every request."""
    return tuple(conn.execute("SELECT (SELECT max(id) FROM media), (SELECT max(id) FROM runs)").fetchone())


_DIRNAME = "rtrim(m.path, replace(m.path, '/', ''))"


def species(conn: sqlite3.Connection) -> list[Group]:
    """The machine's decided names with their counts, most photos first (``verified`` left 0: see
    :func:`verified_by`). One pass over the media rows: cache it by :func:`stamp`."""
    rows = conn.execute(
        f"SELECT m.top_name, max(m.top_rank), count(*) FROM media m WHERE {REVIEWABLE} "
        "AND m.top_name IS NOT NULL GROUP BY m.top_name ORDER BY count(*) DESC, m.top_name"
    )
    return [Group(name, rank or "", int(n), 0) for name, rank, n in rows]


def folders(conn: sqlite3.Connection) -> list[Group]:
    """The folders holding reviewable rows (per-folder deployments), by path; cache by :func:`stamp`."""
    rows = conn.execute(
        f"SELECT {_DIRNAME} AS d, count(*) FROM media m WHERE {REVIEWABLE} GROUP BY d ORDER BY d"
    )
    return [Group(d, "folder", int(n), 0) for d, n in rows]


def verified_by(conn: sqlite3.Connection, kind: str) -> dict[str, int]:
    """Verified rows per species (``kind`` = ``species``) or per folder (``folders``): a pass over
    the annotations only, cheap enough to ask after every write."""
    key = "m.top_name" if kind == "species" else _DIRNAME
    return dict(
        conn.execute(
            f"SELECT {key}, count(DISTINCT m.id) FROM annotations a JOIN media m ON a.media_id = m.id "
            f"WHERE {_IN_EFFECT} AND {REVIEWABLE} GROUP BY 1"
        ).fetchall()
    )


def folder_rows(conn: sqlite3.Connection, folder: str) -> list[Item]:
    """Every reviewable row of one folder, by time (what its events are made from), unhydrated."""
    where, params = _filters(View(order="time", status="all", folder=folder))
    rows = conn.execute(
        f"SELECT {_ITEM_COLS} FROM media m WHERE {' AND '.join(where)} ORDER BY m.captured_at, m.id", params
    )
    return [_item(r) for r in rows]


def best_frame(conn: sqlite3.Connection, clip_path: str) -> int | None:
    """The frame index of a clip's highest-scoring sampled frame: the one that shows the animal."""
    row = conn.execute(
        "SELECT frame_index FROM media WHERE path = ? AND frame_index >= 0 AND status = 'done' "
        "ORDER BY top_score DESC LIMIT 1",
        (clip_path,),
    ).fetchone()
    return int(row[0]) if row else None
