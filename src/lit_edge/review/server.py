"""Start the review server: open the database, bind 127.0.0.1 on a free port, open the browser.

The socket is bound before anything is printed or opened, so the address printed is one that
works, and a busy ``--port`` is one clear error line instead of a traceback. SIGINT and SIGTERM
stop the server; nothing is lost, because every action was committed before its response.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading
import webbrowser
from collections.abc import Callable
from pathlib import Path

from lit_edge.bundle import BundleError
from lit_edge.errors import UserError
from lit_edge.review.app import Review, ReviewConfig, make_app
from lit_edge.review.names import NameIndex, bundle_labels

log = logging.getLogger(__name__)


def _bundle_path(cfg: ReviewConfig, conn: sqlite3.Connection) -> Path | None:
    """``--bundle``, else the newest run's bundle that still exists here."""
    if cfg.bundle is not None:
        return cfg.bundle
    for (path,) in conn.execute("SELECT bundle FROM runs WHERE bundle IS NOT NULL ORDER BY id DESC"):
        if path and Path(path).exists():
            return Path(path)
    return None


def load_names(cfg: ReviewConfig, conn: sqlite3.Connection) -> NameIndex:
    """The search's names: the bundle's species (if a bundle is found) and the names people used."""
    path = _bundle_path(cfg, conn)
    labels = []
    if path is not None:
        try:
            labels = bundle_labels(path)
        except BundleError:
            if cfg.bundle is not None:
                raise
            log.warning("the runs' bundle %s cannot be read; the search offers the names predicted", path)
    else:
        log.warning("no bundle found (pass --bundle): the name search offers the names the machine predicted")
    names = NameIndex(labels)
    names.add_used(conn)
    if not labels:  # a scan of every prediction (most of a second on 100,000 photos): not on the way in
        threading.Thread(target=_add_predicted, args=(names, cfg.db), name="names", daemon=True).start()
    return names


def _add_predicted(names: NameIndex, db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        names.add_predicted(conn)
    finally:
        conn.close()


def open_review(cfg: ReviewConfig) -> Review:
    """Open (and migrate, if needed) the database and gather what the page needs."""
    from lit_edge.db import schema

    conn = schema.connect(cfg.db)
    try:
        names = load_names(cfg, conn)
    finally:
        conn.close()
    return Review(cfg, names)


def serve(cfg: ReviewConfig, ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted. ``ready(url)`` is called once the socket accepts connections."""
    from waitress import create_server

    review = open_review(cfg)
    # OpenCV takes a few hundred ms to import: do it while the browser loads the page, not when
    # the first thumbnail is asked for
    threading.Thread(target=_warm_imports, name="warm-imports", daemon=True).start()
    try:
        server = create_server(
            make_app(review), host=cfg.host, port=cfg.port, threads=cfg.threads, ident="lit-edge-review",
            clear_untrusted_proxy_headers=True,
        )  # fmt: skip
    except OSError as exc:
        raise UserError(
            f"cannot listen on {cfg.host}:{cfg.port} ({exc.strerror or exc}); choose another --port or leave it out"
        ) from exc
    port = server.effective_port
    review.allow_port(port)
    url = f"http://{cfg.host}:{port}/"
    if ready is not None:
        ready(url)
    if cfg.open_browser:
        threading.Timer(0.2, _open, (url,)).start()

    def _stop(signum, frame):  # SIGTERM: leave like Ctrl-C does
        raise KeyboardInterrupt

    previous = (
        signal.signal(signal.SIGTERM, _stop)
        if threading.current_thread() is threading.main_thread()
        else None
    )
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _warm_imports() -> None:
    import lit_edge.device.decode  # noqa: F401 (cv2 and numpy)


def _open(url: str) -> None:
    try:
        if not webbrowser.open(url):
            log.info("no browser found; open %s yourself", url)
    except webbrowser.Error:
        log.info("no browser found; open %s yourself", url)
