"""``lit-edge review``: a local web page where people verify the machine's decisions.

Why Bottle and waitress. The page is served to one or two browsers on the same laptop, from a
Jetson or a field laptop with no network, and every request ends in SQLite, which takes one writer
at a time whatever the server does. So what matters is a small, dependable, threaded server, not
raw concurrency:

- **Bottle** (one pure-Python file, no dependencies, 100 kB) routes the JSON API and serves the
  page's static files; **waitress** (pure Python, no dependencies, 60 kB, the Pylons project's
  production WSGI server) runs it on a pool of threads. Both install from two wheels on a Jetson's
  Python 3.10 or on Windows, with no compiler, which is why they are in the base install rather
  than an extra: ``lit-edge review`` works wherever ``lit-edge tag`` does.
- Threads suit SQLite: each request thread has its own connection in WAL mode (readers never wait
  for the writer), and the writes (``BEGIN IMMEDIATE``, a few rows each) are serialised by SQLite
  itself, so two browsers, or two servers on one file, lose nothing. A slow thumbnail decode on
  one thread does not hold up a key press on another.
- An async framework (Starlette + uvicorn) would run every SQLite call in a thread pool anyway,
  for more dependencies; Flask brings six packages for what Bottle does in one file.

Nothing is imported from here by ``tag`` or ``detect``: the runtime's import budget is unchanged.
Layout: :mod:`~lit_edge.review.app` (routes), :mod:`~lit_edge.review.server` (start-up),
:mod:`~lit_edge.review.names` (the ``/`` search), :mod:`~lit_edge.review.thumbs` (thumbnail cache),
:mod:`~lit_edge.review.bursts` (events), ``static/`` (the page: HTML, CSS, JavaScript, no CDN).
The SQL lives in :mod:`lit_edge.db.queue` and :mod:`lit_edge.db.annotations`.
"""
