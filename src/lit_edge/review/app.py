"""The review web app: a JSON API over :mod:`lit_edge.db.queue` and :mod:`lit_edge.db.annotations`,
the page's own static files, and thumbnails.

Each request thread has its own SQLite connection (WAL: readers never wait for the writer); every
write is one ``BEGIN IMMEDIATE`` transaction committed before the response is sent, so what the
page shows as saved is on disk. Only this page may write: POSTs need the token the page was
served with (another web site open in the same browser cannot read it, so it cannot forge a
write), and a request naming a host other than this server's is refused (DNS rebinding).
"""

from __future__ import annotations

import getpass
import json
import logging
import secrets
import sqlite3
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import bottle

from lit_edge import __version__
from lit_edge.db import annotations as ann
from lit_edge.db import queue, schema
from lit_edge.db.annotations import Annotation, AnnotationError, Verdict
from lit_edge.db.reader import Prediction
from lit_edge.paths import home
from lit_edge.review.bursts import Bursts, suggestions
from lit_edge.review.names import NameIndex, parse_new
from lit_edge.review.thumbs import Source, ThumbConfig, ThumbError, Thumbs, full_jpeg

log = logging.getLogger(__name__)

STATIC = Path(str(resources.files("lit_edge.review") / "static"))
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class ReviewConfig:
    """What ``lit-edge review`` serves, and how."""

    db: Path
    bundle: Path | None = None  # whose species the search offers (default: the runs' bundle)
    reviewer: str = ""  # the name written on annotations unless the page changes it
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    open_browser: bool = True
    event_gap_s: float = 60.0
    thumbs: Path = field(default_factory=lambda: home() / "thumbs")
    threads: int = 8

    @property
    def default_reviewer(self) -> str:
        if self.reviewer.strip():
            return " ".join(self.reviewer.split())
        try:
            return getpass.getuser()
        except (KeyError, OSError):  # no login name (a container): the page asks for one
            return ""


class Connections:
    """One SQLite connection per request thread (``schema.connect``: autocommit, WAL; writes open
    their own ``BEGIN IMMEDIATE``), waiting up to 15 s for a busy writer, and synced at every
    commit: a reviewer's key press survives a power cut, not only a killed server."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = schema.connect(self.path)
            conn.execute("PRAGMA busy_timeout = 15000")
            conn.execute("PRAGMA synchronous = FULL")
            self._local.conn = conn
        return conn


class Review:
    """The state the requests share: config, connections, names, thumbnails, events."""

    def __init__(self, cfg: ReviewConfig, names: NameIndex):
        self.cfg = cfg
        self.names = names
        self.db = Connections(cfg.db)
        self.thumbs = Thumbs(ThumbConfig(root=cfg.thumbs))
        self.bursts = Bursts(cfg.event_gap_s)
        self.token = secrets.token_urlsafe(24)
        self.hosts: set[str] = set()  # filled in once the port is known
        self._groups: dict[str, tuple[tuple, list[queue.Group]]] = {}
        self._lock = threading.Lock()

    def groups(self, kind: str) -> list[queue.Group]:
        """Species or folders with their counts (cached until the media change) and verified counts."""
        conn = self.db.get()
        stamp = queue.stamp(conn)
        with self._lock:
            hit = self._groups.get(kind)
        if hit is None or hit[0] != stamp:
            hit = (stamp, queue.species(conn) if kind == "species" else queue.folders(conn))
            with self._lock:
                self._groups[kind] = hit
        done = queue.verified_by(conn, kind)
        return [queue.Group(g.key, g.rank, g.count, done.get(g.key, 0)) for g in hit[1]]

    def allow_port(self, port: int) -> None:
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}


def _ann(a: Annotation | None) -> dict | None:
    if a is None:
        return None
    return {
        "id": a.id,
        "label": a.label,
        "common": a.common_name,
        "type": a.observation_type,
        "reviewer": a.reviewer,
        "at": a.created_at,
        "replaces": a.replaces,
        "retracted": a.retracted,
    }


def _pred(p: Prediction) -> dict:
    return {"pos": p.position, "name": p.scientific_name, "common": p.common_name, "score": round(p.score, 4)}


def item_json(i: queue.Item, names: NameIndex) -> dict:
    name = Path(i.path).name if i.frame_index < 0 else f"{Path(i.path).name} #{i.frame_index}"
    common = next((p.common_name for p in i.predictions if p.scientific_name == i.top_name), "")
    return {
        "id": i.id,
        "file": name,
        "folder": queue.folder_of(i.path),
        "kind": i.kind,
        "captured_at": i.captured_at,
        "top": {
            "name": i.top_name,
            "rank": i.top_rank,
            "score": None if i.top_score is None else round(i.top_score, 4),
            "common": common or (names.common_name(i.top_name) if i.top_name else ""),
        },
        "preds": [_pred(p) for p in i.predictions],
        "annotation": _ann(i.annotation),
    }


def _written(ws: list[ann.Written]) -> dict:
    return {
        "written": [
            {
                "media_id": w.media_id,
                "annotation": _ann(w.current),
                "ids": list(w.written),
                "superseded": _ann(w.superseded),
                "restores": w.restores,
            }
            for w in ws
        ]
    }


def _error(status: int, message: str) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(
        status=status, body=json.dumps({"error": message}), headers={"Content-Type": "application/json"}
    )


def _int(name: str, default: int | None = None, lo: int = 0, hi: int = 1 << 62) -> int:
    text = bottle.request.query.get(name)
    if text in (None, ""):
        if default is None:
            raise _error(400, f"missing query parameter {name!r}")
        return default
    try:
        value = int(text)
    except ValueError:
        raise _error(400, f"{name}={text!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise _error(400, f"{name}={value} is out of range {lo}..{hi}")
    return value


def _svg(message: str) -> bottle.HTTPResponse:
    """A placeholder image that says why the photo cannot be shown (the grid keeps its shape)."""
    text = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")[:80]
    body = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240" viewBox="0 0 320 240">'
        '<rect width="320" height="240" fill="#444"/><text x="160" y="125" font-family="sans-serif" '
        f'font-size="13" fill="#ddd" text-anchor="middle">{text}</text></svg>'
    )
    return bottle.HTTPResponse(
        status=404, body=body, headers={"Content-Type": "image/svg+xml", "Cache-Control": "no-store"}
    )


def make_app(review: Review) -> bottle.Bottle:
    """The Bottle application: routes only; everything they do lives in the db and review modules."""
    app = bottle.Bottle()
    names = review.names

    @app.hook("before_request")
    def _guard() -> None:
        host = bottle.request.get_header("Host", "")
        if review.hosts and host not in review.hosts:
            raise _error(403, f"host {host!r} is not this review server")
        if bottle.request.method == "POST" and bottle.request.get_header("X-Review-Token") != review.token:
            raise _error(403, "missing or wrong review token; reload the page")

    def _json_error(err: bottle.HTTPError) -> str:
        bottle.response.content_type = "application/json"
        return json.dumps({"error": str(err.body or err.status_line)})

    app.default_error_handler = _json_error

    @app.hook("after_request")
    def _headers() -> None:
        bottle.response.set_header("Content-Security-Policy", CSP)
        bottle.response.set_header("X-Content-Type-Options", "nosniff")
        bottle.response.set_header("Referrer-Policy", "no-referrer")

    @app.get("/")
    def index():
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        bottle.response.set_header("Cache-Control", "no-store")
        return html.replace("{{token}}", review.token).replace("{{version}}", __version__)

    @app.get("/static/<name:path>")
    def static(name: str):
        resp = bottle.static_file(name, root=str(STATIC))
        resp.set_header("Cache-Control", "no-cache")
        return resp

    @app.get("/api/info")
    def info():
        conn = review.db.get()
        c = queue.counts(conn)
        return {
            "db": str(review.cfg.db),
            "db_name": review.cfg.db.name,
            "reviewer": review.cfg.default_reviewer,
            "reviewable": c.reviewable,
            "verified": c.verified,
            "last_annotation": ann.last_id(conn),
            "event_gap_s": review.cfg.event_gap_s,
            "version": __version__,
        }

    @app.get("/api/page")
    def page():
        q = bottle.request.query
        try:
            view = queue.View(
                order=q.get("order") or "doubt",
                status=q.get("status") or "todo",
                species=q.get("species") or None,
                folder=q.get("folder") or None,
                limit=_int("limit", 60, 1, 1000),
            )
            after = queue.Cursor.decode(q.get("after")) if q.get("after") else None
        except ValueError as exc:
            raise _error(400, str(exc)) from None
        p = queue.page(review.db.get(), view, after)
        return {"items": [item_json(i, names) for i in p.items], "next": p.next.encode() if p.next else None}

    @app.get("/api/species")
    def species():
        groups = review.groups("species")
        return {
            "groups": [
                {
                    "key": g.key,
                    "rank": g.rank,
                    "common": names.common_name(g.key),
                    "count": g.count,
                    "verified": g.verified,
                }
                for g in groups
            ]  # fmt: skip
        }

    @app.get("/api/folders")
    def folders():
        groups = review.groups("folders")
        return {
            "groups": [
                {
                    "key": g.key,
                    "name": Path(g.key.rstrip("/")).name or g.key,
                    "count": g.count,
                    "verified": g.verified,
                }
                for g in groups
            ]  # fmt: skip
        }

    @app.get("/api/events")
    def events():
        q = bottle.request.query
        folder = q.get("folder")
        if not folder:
            raise _error(400, "missing query parameter 'folder'")
        status = q.get("status") or "todo"
        if status not in queue.STATUSES:
            raise _error(400, f"status {status!r}: use one of {', '.join(queue.STATUSES)}")
        offset, limit = _int("offset", 0), _int("limit", 20, 1, 200)
        conn = review.db.get()
        bursts = review.bursts.of_folder(conn, folder if folder.endswith("/") else folder + "/")
        out, i = [], offset
        while i < len(bursts) and len(out) < limit:
            b = bursts[i]
            i += 1
            members = review.bursts.members(conn, b)
            done = sum(m.annotation is not None for m in members)
            if (status == "todo" and done == len(members)) or (status == "verified" and done < len(members)):
                continue
            out.append(
                {
                    "id": b.id,
                    "start": b.start,
                    "end": b.end,
                    "members": [item_json(m, names) for m in members],
                    "preds": [_pred(p) for p in suggestions(members)],
                }
            )
        return {"events": out, "next": i if i < len(bursts) else None, "total": len(bursts)}

    @app.get("/api/media/<media_id:int>")
    def media(media_id: int):
        conn = review.db.get()
        found = queue.items(conn, [media_id])
        if not found:
            raise _error(404, f"no reviewable media row {media_id}")
        out = item_json(found[0], names)
        out["path"] = found[0].path
        out["history"] = [_ann(a) for a in ann.history(conn, media_id)]
        return out

    @app.get("/api/names")
    def search_names():
        q = bottle.request.query.get("q") or ""
        limit = _int("limit", 12, 1, 100)
        found = names.search(q, limit)
        return {
            "names": [
                {"label": n.label, "common": n.common_name, "kind": n.kind, "matched": n.matched}
                for n in found
            ]
        }

    @app.get("/api/changes")
    def changes():
        conn = review.db.get()
        after = _int("after", 0)
        rows = ann.since(conn, after)
        if not rows:
            return {"last": after, "changes": []}
        now = ann.current(conn, [a.media_id for a in rows])
        c = queue.counts(conn)
        return {
            "last": rows[-1].id,
            "changes": [
                {"media_id": m, "annotation": _ann(now.get(m))} for m in sorted({a.media_id for a in rows})
            ],
            "reviewable": c.reviewable,
            "verified": c.verified,
        }

    def _body() -> dict:
        try:
            body = json.loads(bottle.request.body.read() or b"null")
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            raise _error(400, "expected a JSON object")
        return body

    def _ids(body: dict, key: str) -> list[int]:
        ids = body.get(key)
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
            raise _error(400, f"{key!r} must be a non-empty list of ids")
        return ids

    def _reviewer(body: dict) -> str:
        name = body.get("reviewer") or review.cfg.default_reviewer
        if not isinstance(name, str) or not name.strip():
            raise _error(400, "say who you are: type your name in the reviewer box")
        return name

    @app.post("/api/annotate")
    def annotate():
        body = _body()
        ids = _ids(body, "media_ids")
        label = body.get("label")
        if not isinstance(label, str) or not label.strip():
            raise _error(400, "'label' must be a name")
        common = body.get("common") if isinstance(body.get("common"), str) else ""
        try:
            if body.get("new"):
                name = parse_new(f"{label}, {common}" if common else label)
                verdict = name.verdict()
                names.add(name)
            else:
                verdict = Verdict.of(label, common or names.common_name(label))
            out = ann.annotate(review.db.get(), [(i, verdict) for i in ids], _reviewer(body))
        except AnnotationError as exc:
            raise _error(409, str(exc)) from None
        return _written(out)

    @app.post("/api/accept")
    def accept():
        body = _body()
        try:
            out = ann.accept(review.db.get(), _ids(body, "media_ids"), _reviewer(body))
        except AnnotationError as exc:
            raise _error(409, str(exc)) from None
        return _written(out)

    @app.post("/api/undo")
    def undo():
        body = _body()
        try:
            out = ann.undo(review.db.get(), _ids(body, "annotation_ids"), _reviewer(body))
        except AnnotationError as exc:
            raise _error(409, str(exc)) from None
        return _written(out)

    def _source(media_id: int) -> Source:
        conn = review.db.get()
        found = queue.items(conn, [media_id])
        if not found:
            raise _svg("not a reviewable photo")
        item = found[0]
        try:
            return Source.of(item, queue.best_frame(conn, item.path) if item.kind == "clip" else None)
        except ThumbError as exc:
            raise _svg(str(exc)) from None

    @app.get("/thumb/<media_id:int>")
    def thumb(media_id: int):
        size = bottle.request.query.get("size") or "grid"
        try:
            review.thumbs.cfg.px(size)
        except ValueError as exc:
            raise _error(400, str(exc)) from None
        try:
            path = review.thumbs.get(_source(media_id), size)
        except ThumbError as exc:
            return _svg(str(exc))
        resp = bottle.static_file(path.name, root=str(path.parent), mimetype="image/jpeg")
        resp.set_header("Cache-Control", "private, max-age=600")
        return resp

    @app.get("/photo/<media_id:int>")
    def photo(media_id: int):
        src = _source(media_id)
        try:
            if src.browser_type and src.path.is_file():
                resp = bottle.static_file(src.path.name, root=str(src.path.parent), mimetype=src.browser_type)
            else:
                resp = bottle.HTTPResponse(body=full_jpeg(src), headers={"Content-Type": "image/jpeg"})
        except ThumbError as exc:
            return _svg(str(exc))
        resp.set_header("Cache-Control", "private, max-age=600")
        return resp

    return app
