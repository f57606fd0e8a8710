"""Shared test set-up: offline, single-threaded, and every run isolated in its own lit-edge home.

Tests never reach a network (the hub variables below make Hugging Face fail fast instead of trying),
and each test session gets a fresh ``LIT_EDGE_HOME`` so nothing leaks from a developer's cache.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TESTS = Path(__file__).parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory):
    """Point lit-edge's home at a per-session folder unless the caller chose one on purpose."""
    if "LIT_EDGE_HOME" in os.environ and os.environ.get("LIT_EDGE_TEST_KEEP_HOME") == "1":
        yield Path(os.environ["LIT_EDGE_HOME"])
        return
    home = tmp_path_factory.mktemp("lit-edge-home")
    old = os.environ.get("LIT_EDGE_HOME")
    os.environ["LIT_EDGE_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("LIT_EDGE_HOME", None)
    else:
        os.environ["LIT_EDGE_HOME"] = old


def fieldset_dir() -> Path | None:
    """The shared real field media (``../shared/fieldset`` beside the repository, or
    ``$LIT_EDGE_FIELDSET``); None where this machine has none."""
    env = os.environ.get("LIT_EDGE_FIELDSET")
    where = Path(env) if env else TESTS.parent.parent / "shared" / "fieldset"
    return where if (where / "labels.csv").is_file() else None


@pytest.fixture(scope="session")
def fieldset() -> Path:
    """The real field media; tests that need it are skipped, visibly, where it is absent."""
    where = fieldset_dir()
    if where is None:
        pytest.skip("no ../shared/fieldset (or $LIT_EDGE_FIELDSET) on this machine: real field media absent")
    return where
