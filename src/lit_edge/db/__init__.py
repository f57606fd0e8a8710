"""The detection database, with one owner: every command that touches one goes through this package.

``schema``   the DDL, version by version (``PRAGMA user_version``), migrations, opening a file
``writer``   ``Store`` (one writer thread, batched transactions, resume queries), ``MediaRecord``
             (what the pipeline hands it), ``RunInfo``, ``FrameSaver``, annotations
``reader``   typed read-only records (``MediaRow``, ``Prediction``, ``RunRow``, ``Annotation``),
             streaming iterators, current annotations, embeddings as numpy arrays
``summary``  the one summary that ``tag``, ``detect``, ``db summary`` and the report print

Nothing here imports torch: it is part of the device runtime.

Why plain ``sqlite3`` and no sqlite-utils. lit-edge 0.1 imported sqlite-utils (through a stubbed
``pandas``, which it would otherwise import) only to create three tables and insert a run row,
while the writer thread already wrote raw SQL. Its one feature that could serve here,
``table.transform()`` for migrations, rebuilds a table by copying it; the v1 -> v2 migration
needs only ``ALTER TABLE ... ADD COLUMN`` / ``RENAME COLUMN`` (SQLite 3.25+), which does not
touch the rows (26x faster than a rebuild on 20,000 photos) and keeps row ids, which annotations
point at. Importing it after numpy and typer (which the runtime loads anyway) took 0.2-1.6 s
across runs against 2-9 ms for ``sqlite3``, with 2 MB more RSS, out of a 1.5 s budget to the first
prediction (``bench/bench_db.py`` on a 2-core machine at load 14, so the ratio is what to read).
So the dependency is dropped, and the DDL is written out in ``schema.py`` where a reviewer can
read it.
"""
