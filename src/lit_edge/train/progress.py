"""A rich progress bar on rank 0 (a no-op elsewhere), with free-form fields such as loss and samples/s."""

from __future__ import annotations

import contextlib

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class _Bar:
    def __init__(self, progress: Progress | None, task):
        self._p, self._t = progress, task

    def advance(self, n: int = 1, **fields) -> None:
        if self._p is not None:
            self._p.update(self._t, advance=n, **fields)


@contextlib.contextmanager
def progress_bar(
    enabled: bool, description: str, total: int, completed: int = 0, unit: str = "step", **fields
):
    if not enabled:
        yield _Bar(None, None)
        return
    extra = [TextColumn(f"{k} {{task.fields[{k}]}}") for k in fields]
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        *extra,
        TimeRemainingColumn(),
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total, completed=completed, **fields)
        yield _Bar(progress, task)
