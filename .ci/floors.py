"""Print pip constraints that pin the runtime's dependencies to their oldest supported series.

``make test-oldest`` installs the device runtime with these into a Python 3.10 venv (JetPack 6's
Python) and runs the runtime tests there, so that ``requires-python`` and every floor in
``pyproject.toml`` are tested rather than hoped. ``numpy>=1.24`` becomes ``numpy==1.24.*``: the
newest release of the floor's series, as precise as the floor itself (a floor names a series,
and its bug-fix releases are what anyone installing that series gets).

Read from ``pyproject.toml`` itself (never a copied list); runs on Python >= 3.11 or with tomli.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

_FLOOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([0-9][0-9.]*)\s*(?:,.*)?$")


def floors(pyproject: Path) -> list[str]:
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    out = []
    for dep in deps:
        m = _FLOOR.match(dep.split(";")[0])
        if m is None:
            raise SystemExit(f"{pyproject}: dependency {dep!r} has no '>=' floor; give it one")
        out.append(f"{m.group(1)}=={m.group(2)}.*")
    return out


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    print("\n".join(floors(root / "pyproject.toml")))
