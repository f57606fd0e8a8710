"""A rich progress bar for the writers' per-photo loops, on stderr and only on a terminal.

Sidecars for a season of photos, or thumbnails for a long species list, take long enough to
deserve a bar; piped output and tests get none, so stdout stays parseable.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def track(items: Iterable[T], total: int, description: str) -> Iterator[T]:
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)
