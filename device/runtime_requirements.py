"""Print the device runtime's pip requirements, from lit-edge's own metadata, minus some packages.

Used where the system provides a dependency that pip must not replace: on a Jetson, JetPack's
OpenCV (built with GStreamer, which CSI cameras need) instead of ``opencv-python-headless``::

    pip3 install --no-deps .        # or: pip3 install --no-deps lit-edge
    python3 device/runtime_requirements.py --exclude opencv-python-headless > runtime.txt
    pip3 install -r runtime.txt

The list comes from the installed package's metadata, which pyproject.toml wrote: never a copy
that drifts (the old hand-written list in Dockerfile.jetson lacked threadpoolctl). Standard
library only, for JetPack 6's Python 3.10.
"""

from __future__ import annotations

import argparse
import re
from importlib.metadata import requires

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    """PEP 503 name: ``OpenCV_Python.headless`` -> ``opencv-python-headless``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements(requirements: list[str], exclude: list[str] = ()) -> list[str]:
    """The base (no extra) requirements whose names are not in ``exclude``."""
    skip = {canonical(x) for x in exclude}
    out = []
    for req in requirements:
        if "extra ==" in req.replace('"', "").replace("'", ""):
            continue
        m = _NAME.match(req)
        if m and canonical(m.group(1)) not in skip:
            out.append(req)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exclude", nargs="*", default=[], help="distribution names the system provides")
    p.add_argument("--dist", default="lit-edge", help="installed distribution to read")
    args = p.parse_args()
    print("\n".join(runtime_requirements(requires(args.dist) or [], args.exclude)))


if __name__ == "__main__":
    main()
