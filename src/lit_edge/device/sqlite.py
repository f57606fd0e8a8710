"""The runtime's one ``import sqlite_utils``, made without pandas (see :func:`import_sqlite_utils`)."""

from __future__ import annotations

import sys


def import_sqlite_utils():
    """``import sqlite_utils`` without letting it import pandas.

    sqlite-utils imports pandas whenever it is installed, only to map ``pandas.Timestamp`` columns,
    which the runtime never writes. On a workstation that has pandas this cost ``tag`` 34 MB of
    its 250 MB budget and 0.5-1 s of its 1.5 s to the first prediction. A pandas imported earlier by
    the caller is left alone; one imported later works normally.
    """
    if "pandas" in sys.modules or "sqlite_utils" in sys.modules:
        import sqlite_utils

        return sqlite_utils
    sys.modules["pandas"] = None  # makes 'import pandas' raise ImportError inside sqlite-utils
    try:
        import sqlite_utils
    finally:
        del sys.modules["pandas"]
    return sqlite_utils


sqlite_utils = import_sqlite_utils()
