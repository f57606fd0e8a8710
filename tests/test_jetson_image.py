"""What Dockerfile.jetson installs covers every import of the device runtime.

No Jetson here, so the image is checked on paper, from the real files: the Dockerfile's apt
packages, the distributions it leaves to apt (``FROM_APT``) and the pip requirements it generates
from pyproject.toml (``device/runtime_requirements.py``, run as the Dockerfile runs it) against
every third-party import, at module level or inside a function, of the runtime's modules
(``lit_edge.device``, ``lit_edge.db``, ``lit_edge.fielddata``, and the ``tag``, ``detect``, ``db``
and ``report`` commands) and of the ``lit_edge`` modules they reach. Import names map to the
distributions that provide them through this environment's installed metadata, and a pip
requirement covers its own dependencies too (pip installs them).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
RUNTIME = (
    "lit_edge.device",
    "lit_edge.db",
    "lit_edge.fielddata",
    "lit_edge.bundle",
    "lit_edge.paths",
    "lit_edge.outcomes",
    "lit_edge.errors",
)
COMMANDS = ("lit_edge.cli.app", "lit_edge.cli.tag_cmd", "lit_edge.cli.detect_cmd", "lit_edge.cli.db_cmd",
            "lit_edge.cli.report_cmd", "lit_edge.cli.device_opts")  # fmt: skip
#: what JetPack's apt packages (and the l4t-jetpack base) put on sys.path, by import name
APT_IMPORTS = {"python3-opencv": {"cv2", "numpy"}, "python3-numpy": {"numpy"}}
BASE_IMAGE_IMPORTS = {"tensorrt"}  # l4t-jetpack ships TensorRT's Python bindings
#: imports behind ``lit_edge.errors.require`` (a one-line error naming the extra when missing)
OPTIONAL = {"requests": "db validate (the dev extra's frictionless)"}


def _load_requirements_tool():
    spec = importlib.util.spec_from_file_location(
        "runtime_requirements", REPO / "device" / "runtime_requirements.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def parse_dockerfile(text: str) -> dict:
    """The apt packages, FROM_APT, the generator's use of it and the extra pip packages."""
    text = re.sub(r"\\\n", " ", text)
    runs = [ln[4:] for ln in text.splitlines() if ln.startswith("RUN ")]
    apt = {
        pkg for run in runs for cmd in run.split("&&") if "apt-get install" in cmd
        for pkg in cmd.split() if pkg.startswith("python3-")
    }  # fmt: skip
    from_apt = re.search(r'^ARG FROM_APT="([^"]*)"', text, re.M)
    pip_extra: set[str] = set()
    generated = False
    for run in runs:
        for cmd in run.split("&&"):
            words = cmd.split()
            if "device/runtime_requirements.py" in cmd:
                generated = "--exclude" in words and "$FROM_APT" in words
            if words[:2] == ["pip3", "install"] and "-r" in words:
                pip_extra |= {w for w in words[2:] if not w.startswith(("-", "/")) and w != "."}
    return {"apt": apt, "from_apt": from_apt.group(1).split() if from_apt else [], "generated": generated,
            "pip_extra": pip_extra}  # fmt: skip


def _module_file(name: str) -> Path | None:
    base = SRC / Path(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _modules_under(package: str) -> list[str]:
    root = SRC / Path(*package.split("."))
    if not root.is_dir():
        return [package] if _module_file(package) else []
    return [
        ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        for p in root.rglob("*.py")
    ]


def _imports(path: Path, everywhere: bool) -> set[str]:
    """Absolute import names in ``path``: all of them, or only those run at import time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = ast.walk(tree) if everywhere else _module_level(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _module_level(tree: ast.Module):
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            stack.extend(ast.iter_child_nodes(node))
        elif isinstance(node, ast.ClassDef):
            stack.extend(n for n in node.body if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))


def runtime_third_party_imports() -> set[str]:
    """Top-level third-party names the runtime imports (whole runtime modules; the rest of
    lit_edge as far as importing it runs)."""
    runtime = {m for p in RUNTIME for m in _modules_under(p)} | set(COMMANDS)
    todo, seen, found = list(runtime), set(), set()
    while todo:
        mod = todo.pop()
        if mod in seen or (path := _module_file(mod)) is None:
            continue
        seen.add(mod)
        for name in _imports(path, everywhere=mod in runtime or mod.startswith(RUNTIME)):
            top = name.split(".")[0]
            if top == "lit_edge":
                todo.append(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.add(top)
    return found


def _closure(dists: set[str]) -> set[str]:
    """``dists`` and everything pip installs with them (from this environment's metadata)."""
    canon = lambda n: re.sub(r"[-_.]+", "-", n).lower()  # noqa: E731
    todo, out = [canon(d) for d in dists], set()
    while todo:
        d = todo.pop()
        if d in out:
            continue
        out.add(d)
        try:
            reqs = requires(d) or []
        except PackageNotFoundError:
            continue
        for r in reqs:
            if "extra ==" not in r.replace('"', "").replace("'", ""):
                todo.append(canon(re.match(r"[A-Za-z0-9._-]+", r).group()))
    return out


def uncovered(dockerfile: str, dependencies: list[str]) -> dict[str, str]:
    """Runtime imports the image would lack: ``{import name: why}``."""
    image = parse_dockerfile(dockerfile)
    tool = _load_requirements_tool()
    pip_reqs = tool.runtime_requirements(dependencies, image["from_apt"])
    pip_names = {re.match(r"[A-Za-z0-9._-]+", r).group() for r in pip_reqs} | image["pip_extra"]
    installed = _closure(pip_names)
    apt_imports = set().union(*(APT_IMPORTS.get(p, set()) for p in image["apt"])) | BASE_IMAGE_IMPORTS
    providers = packages_distributions()
    missing = {}
    for name in sorted(runtime_third_party_imports()):
        # not installed here (pycuda, on a machine without CUDA): its import name is its distribution's
        dists = {re.sub(r"[-_.]+", "-", d).lower() for d in providers.get(name, [name])}
        if name in apt_imports or name in OPTIONAL or dists & installed:
            continue
        missing[name] = (
            f"provided by {sorted(dists) or 'nothing installed here'}, which the image does not install"
        )
    return missing


def _project_dependencies() -> list[str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]


def test_the_jetson_image_installs_every_runtime_import():
    dockerfile = (REPO / "Dockerfile.jetson").read_text()
    image = parse_dockerfile(dockerfile)
    assert image["generated"], "the pip list must be generated from pyproject (runtime_requirements.py)"
    found = runtime_third_party_imports()
    assert {"numpy", "cv2", "onnxruntime", "typer", "threadpoolctl"} <= found  # the scan sees them
    assert "torch" not in found
    assert uncovered(dockerfile, _project_dependencies()) == {}


def test_what_the_image_leaves_to_apt_is_replaced_by_apt():
    image = parse_dockerfile((REPO / "Dockerfile.jetson").read_text())
    providers = packages_distributions()
    for dist in image["from_apt"]:
        imports = {name for name, ds in providers.items() if dist in {d.lower() for d in ds}}
        assert imports, f"{dist} is not installed here to check"
        apt = set().union(*(APT_IMPORTS.get(p, set()) for p in image["apt"]))
        assert imports <= apt, f"FROM_APT drops {dist} ({imports}) but apt installs only {apt}"


def test_the_check_catches_a_dependency_the_image_would_miss():
    # negative controls: a pyproject without threadpoolctl (the bug this replaced), and a
    # Dockerfile that leaves OpenCV to an apt package it does not install
    dockerfile = (REPO / "Dockerfile.jetson").read_text()
    deps = [d for d in _project_dependencies() if not d.startswith("threadpoolctl")]
    assert set(uncovered(dockerfile, deps)) == {"threadpoolctl"}
    assert "cv2" in uncovered(dockerfile.replace("python3-opencv", "python3-yaml"), _project_dependencies())


def test_runtime_requirements_reads_the_metadata_and_leaves_out_what_apt_provides():
    tool = _load_requirements_tool()
    reqs = ["numpy>=1.24", "opencv-python-headless>=4.8", 'torch==2.1; extra == "train"', "typer>=0.13"]
    assert tool.runtime_requirements(reqs, ["OpenCV_Python.Headless"]) == ["numpy>=1.24", "typer>=0.13"]
