"""Where an export's minutes go: named laps of a wall clock, summed per name.

``export bundle`` records them in the manifest (``extra["export_seconds"]``) and logs them, so a
user waiting for an export (and ``export/README.md``'s table) can see which step is slow.
"""

from __future__ import annotations

import time


class Laps:
    """``lap(name)`` adds the seconds since the previous lap to ``seconds[name]``."""

    def __init__(self, seconds: dict[str, float] | None = None):
        self.seconds: dict[str, float] = {} if seconds is None else seconds
        self._last = time.perf_counter()

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        took = now - self._last
        self.seconds[name] = self.seconds.get(name, 0.0) + took
        self._last = now
        return took

    def summary(self) -> str:
        return ", ".join(f"{name} {s:.1f} s" for name, s in self.seconds.items())
