"""Spreadsheet-bound cells that a spreadsheet will not run (CSV injection, as OWASP advises).

A photo named ``=HYPERLINK("http://x","y").jpg`` would otherwise land as is in the CSV export's
``file`` column, and Excel, LibreOffice and Google Sheets evaluate a cell that starts with ``=``,
``+``, ``-`` or ``@`` as a formula (a tab or carriage return first hides one from a casual look):
a link that leaks data, or worse with DDE. Every spreadsheet-bound writer (the CSV export and
Camtrap DP's CSVs) writes its rows through :class:`SafeDictWriter`, so a text cell that starts
with one of those characters gets a leading ``'``, which spreadsheets show as text and never run.

Numbers are data, not formulas: a float or int, and a text cell that is a plain number
(a longitude ``-3.7``), are written as they are. The cost, by design: a file literally named
``-x.jpg`` reads ``'-x.jpg`` in the export, and readers that are not spreadsheets (R, pandas)
see the apostrophe too.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping

#: First characters that make a spreadsheet read a cell as a formula (OWASP's list).
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: object) -> object:
    """``value``, with a ``'`` in front when it is text a spreadsheet would evaluate."""
    if isinstance(value, str) and value.startswith(TRIGGERS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


class SafeDictWriter(csv.DictWriter):
    """``csv.DictWriter`` whose every cell goes through :func:`safe_cell`."""

    def writerow(self, rowdict: Mapping[str, object]):
        return super().writerow({k: safe_cell(v) for k, v in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, object]]):
        for row in rowdicts:
            self.writerow(row)
