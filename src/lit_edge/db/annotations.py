"""People's word on the decisions: writes to, and reads of, the append-only ``annotations`` table.

Why append-only: a reviewer's label is evidence, and so is the history of how it changed (who
corrected whom, what was undone). Nothing here ever UPDATEs or DELETEs a row, and nothing touches
``predictions``: the machine's decision stays beside the people's, which is what lets the exports
keep both and the summary measure how often people agreed with the machine.

The rules (docs/design.md, "annotations"):

- a new annotation ``replaces`` the media row's current one (NULL for the first);
- an undo writes a *retraction*: a row with ``retracted`` = 1 that replaces the undone one; when
  the undone annotation had itself replaced an earlier one, the undo also writes a copy of that
  earlier annotation (its label, common name, type and reviewer) replacing the retraction, so an
  undone correction restores what it corrected;
- the *current* annotation of a media row is its newest row that no row replaces and that is not
  retracted.

Every write is one ``BEGIN IMMEDIATE`` transaction that reads the current annotation and appends
after it, committed before the call returns: two reviewers writing at once are serialised by
SQLite (nothing is lost, both stay in the history) and a kill of the process after the call
returns cannot lose the write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from lit_edge import outcomes
from lit_edge.db.reader import Annotation

#: Labels that are not a scientific name, and the Camtrap DP observation type each one means.
OUTCOME_LABELS = {
    outcomes.BLANK: outcomes.OBS_BLANK,
    outcomes.HUMAN: outcomes.OBS_HUMAN,
    outcomes.VEHICLE: outcomes.OBS_VEHICLE,
    "unknown": outcomes.OBS_UNKNOWN,
}
#: The scientific name a person's "an animal, but I cannot say which" (and the machine's
#: ``animal`` outcome, when accepted) is recorded under: the kingdom.
ANIMALIA = "Animalia"


_COLS = "id, media_id, label, common_name, observation_type, reviewer, created_at, replaces, retracted"
#: A row that is in effect: not a retraction, and replaced by nothing.
_IN_EFFECT = "a.retracted = 0 AND NOT EXISTS (SELECT 1 FROM annotations r WHERE r.replaces = a.id)"


class AnnotationError(ValueError):
    """A write that cannot be done as asked (an unknown media row, an undo of a superseded row)."""


@dataclass(frozen=True)
class Verdict:
    """What a person says a media row shows: a label and its Camtrap DP observation type."""

    label: str
    common_name: str = ""
    observation_type: str = outcomes.OBS_ANIMAL

    @classmethod
    def of(cls, label: str, common_name: str = "") -> Verdict:
        """The verdict for ``label``: an outcome (``blank``, ``human``, ``vehicle``, ``unknown``)
        or a scientific name (an ``animal``)."""
        label = " ".join(label.split())
        if not label:
            raise AnnotationError("an annotation needs a label")
        kind = OUTCOME_LABELS.get(label.casefold())
        if kind is not None:
            return cls(label=label.casefold(), common_name="", observation_type=kind)
        return cls(
            label=label, common_name=" ".join(common_name.split()), observation_type=outcomes.OBS_ANIMAL
        )


def _row(row: Sequence) -> Annotation:
    i, media_id, label, common, kind, reviewer, created_at, replaces, retracted = row
    return Annotation(
        id=int(i),
        media_id=int(media_id),
        label=label,
        common_name=common or "",
        observation_type=kind or "",
        reviewer=reviewer or "",
        created_at=created_at or "",
        replaces=replaces,
        retracted=bool(retracted),
    )


@dataclass(frozen=True)
class Written:
    """The outcome of one write for one media row: the row now current (None after an undo that
    left the media unverified), and the annotation it replaced when that was someone else's."""

    media_id: int
    current: Annotation | None
    written: tuple[int, ...]  # ids of the rows this write appended
    superseded: Annotation | None = None  # the current annotation this write replaced
    restores: int | None = None  # after an undo: the annotation that ``current`` is a copy of


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _chunks(ids: Sequence[int], size: int = 500) -> Iterable[Sequence[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def current(conn: sqlite3.Connection, media_ids: Iterable[int]) -> dict[int, Annotation]:
    """The current annotation of each of ``media_ids`` that has one (media id -> annotation)."""
    ids = sorted(set(int(i) for i in media_ids))
    out: dict[int, Annotation] = {}
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT {_COLS} FROM annotations a WHERE a.media_id IN ({marks}) AND {_IN_EFFECT} ORDER BY a.id",
            chunk,
        )
        for row in rows:
            a = _row(row)
            out[a.media_id] = a  # ordered by id: the newest wins
    return out


def history(conn: sqlite3.Connection, media_id: int) -> list[Annotation]:
    """Every annotation of one media row, oldest first (retractions and restorations included)."""
    rows = conn.execute(f"SELECT {_COLS} FROM annotations WHERE media_id = ? ORDER BY id", (int(media_id),))
    return [_row(r) for r in rows]


def since(conn: sqlite3.Connection, after_id: int, limit: int = 1000) -> list[Annotation]:
    """Annotations appended after ``after_id`` (oldest first): how a reviewer's page learns what
    another reviewer did meanwhile."""
    rows = conn.execute(
        f"SELECT {_COLS} FROM annotations WHERE id > ? ORDER BY id LIMIT ?", (int(after_id), int(limit))
    )
    return [_row(r) for r in rows]


def last_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM annotations").fetchone()[0])


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK``) on a connection in autocommit mode.

    IMMEDIATE takes SQLite's write lock before reading the current annotation, so a concurrent
    writer waits (``busy_timeout``) instead of both appending after the same row.
    """

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        if self.conn.in_transaction:
            raise RuntimeError("annotation writes need a connection with no open transaction")
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _insert(
    conn: sqlite3.Connection,
    media_id: int,
    v: Verdict,
    reviewer: str,
    when: str,
    replaces: int | None,
    retracted: bool = False,
) -> Annotation:
    cur = conn.execute(
        "INSERT INTO annotations (media_id, label, common_name, observation_type, reviewer, created_at, "
        "replaces, retracted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            media_id,
            v.label,
            v.common_name or None,
            v.observation_type,
            reviewer,
            when,
            replaces,
            int(retracted),
        ),
    )
    return Annotation(
        id=int(cur.lastrowid),
        media_id=media_id,
        label=v.label,
        common_name=v.common_name,
        observation_type=v.observation_type,
        reviewer=reviewer,
        created_at=when,
        replaces=replaces,
        retracted=retracted,
    )


def _check_media(conn: sqlite3.Connection, media_ids: Sequence[int]) -> None:
    for chunk in _chunks(sorted(set(media_ids))):
        marks = ",".join("?" * len(chunk))
        found = {r[0] for r in conn.execute(f"SELECT id FROM media WHERE id IN ({marks})", chunk)}
        missing = sorted(set(chunk) - found)
        if missing:
            raise AnnotationError(f"no media row with id {missing[0]}")


def _reviewer(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise AnnotationError("an annotation needs a reviewer's name")
    return name


def annotate(
    conn: sqlite3.Connection, verdicts: Sequence[tuple[int, Verdict]], reviewer: str
) -> list[Written]:
    """Record ``verdicts`` (media id, verdict) by ``reviewer`` in one transaction.

    A verdict equal to the current annotation by the same reviewer writes nothing (a repeated
    key press or a retried request is not history).
    """
    reviewer = _reviewer(reviewer)
    out: list[Written] = []
    with _Tx(conn):
        _check_media(conn, [m for m, _ in verdicts])
        now = current(conn, [m for m, _ in verdicts])
        when = utcnow()
        for media_id, v in verdicts:
            head = now.get(media_id)
            if head is not None and head.reviewer == reviewer and _same(head, v):
                out.append(Written(media_id, head, ()))
                continue
            a = _insert(conn, media_id, v, reviewer, when, head.id if head else None)
            now[media_id] = a
            out.append(Written(media_id, a, (a.id,), superseded=head))
    return out


def _same(a: Annotation, v: Verdict) -> bool:
    return (a.label, a.common_name, a.observation_type) == (v.label, v.common_name, v.observation_type)


def _get(conn: sqlite3.Connection, annotation_id: int) -> Annotation:
    return _row(conn.execute(f"SELECT {_COLS} FROM annotations WHERE id = ?", (annotation_id,)).fetchone())


def _before(conn: sqlite3.Connection, a: Annotation) -> Annotation | None:
    """What undoing ``a`` brings back: the annotation current before ``a`` (None: unverified).

    A plain row names it in ``replaces``. A restoration (the copy an undo writes) replaces a
    retraction instead; it stands for the row it copies, so what came before it is what came
    before that row.
    """
    if a.replaces is None:
        return None
    prev = _get(conn, a.replaces)
    if not prev.retracted:
        return prev
    copied = _before(conn, _get(conn, prev.replaces))  # the retraction names the row it undid
    return _before(conn, copied) if copied is not None else None


def undo(conn: sqlite3.Connection, annotation_ids: Sequence[int], reviewer: str) -> list[Written]:
    """Retract ``annotation_ids`` (each must still be current) in one transaction.

    Raises :class:`AnnotationError` naming who changed a row since, rather than undoing someone
    else's later word.
    """
    reviewer = _reviewer(reviewer)
    ids = [int(i) for i in annotation_ids]
    out: list[Written] = []
    with _Tx(conn):
        rows = {}
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(f"SELECT {_COLS} FROM annotations WHERE id IN ({marks})", chunk):
                rows[row[0]] = _row(row)
        now = current(conn, [a.media_id for a in rows.values()])
        when = utcnow()
        for i in ids:
            a = rows.get(i)
            if a is None:
                raise AnnotationError(f"no annotation with id {i}")
            head = now.get(a.media_id)
            if head is None or head.id != a.id:
                by = f"{head.reviewer} set it to {head.label}" if head else "it was undone"
                raise AnnotationError(
                    f"annotation {i} of media {a.media_id} changed since ({by}); not undone"
                )
            gone = _insert(conn, a.media_id, Verdict(a.label, a.common_name, a.observation_type), reviewer,
                           when, a.id, retracted=True)  # fmt: skip
            written, restored, prev = [gone.id], None, _before(conn, a)
            if prev is not None:
                v = Verdict(prev.label, prev.common_name, prev.observation_type)
                restored = _insert(conn, a.media_id, v, prev.reviewer, when, gone.id)
                written.append(restored.id)
            now[a.media_id] = restored
            out.append(
                Written(
                    a.media_id, restored, tuple(written), superseded=a, restores=prev.id if prev else None
                )
            )
    return out


def machine_verdict(top_name: str | None, top_rank: str | None, common_name: str = "") -> Verdict | None:
    """The machine's decision as a verdict a reviewer can accept, or None when it decided nothing.

    ``uncertain`` (and a failed row) has nothing to accept; ``animal`` ("an animal the list does
    not explain") is accepted as the kingdom, :data:`ANIMALIA`.
    """
    rank = (top_rank or "").casefold()
    name = (top_name or "").strip()
    if rank == outcomes.UNCERTAIN or not name or name.casefold() == outcomes.UNCERTAIN:
        return None
    if rank in (outcomes.BLANK, outcomes.HUMAN, outcomes.VEHICLE):
        return Verdict.of(rank)
    if rank == outcomes.ANIMAL:
        return Verdict(ANIMALIA, "", outcomes.OBS_ANIMAL)
    return Verdict.of(name, common_name)


def accept(conn: sqlite3.Connection, media_ids: Sequence[int], reviewer: str) -> list[Written]:
    """Record that ``reviewer`` agrees with the machine's decision of each of ``media_ids``.

    Rows the machine did not decide (``uncertain``, failed) are skipped: there is nothing to agree
    with, and guessing a label for them would be putting words in the reviewer's mouth.
    """
    verdicts = []
    for chunk in _chunks(sorted(set(int(i) for i in media_ids))):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT m.id, m.top_name, m.top_rank, m.status, (SELECT p.common_name FROM predictions p "
            f"WHERE p.media_id = m.id AND p.scientific_name = m.top_name LIMIT 1) "
            f"FROM media m WHERE m.id IN ({marks})",
            chunk,
        )
        for media_id, name, rank, status, common in rows:
            v = machine_verdict(name, rank, common or "") if status == "done" else None
            if v is not None:
                verdicts.append((int(media_id), v))
    return annotate(conn, verdicts, reviewer) if verdicts else []
