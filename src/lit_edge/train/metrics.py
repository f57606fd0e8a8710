"""Metrics out: ``metrics.jsonl`` (one object per log), ``metrics.csv`` (step,name,value) and TensorBoard.

The CSV is long-format so that evaluators with different metric names share one file without a
header that changes mid-run. TensorBoard is used only when it is installed. Only rank 0 writes.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


class MetricsWriter:
    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.enabled = enabled
        self.dir = Path(run_dir)
        self._tb = None
        if not enabled:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.dir / "tensorboard"))
        except ImportError:
            log.debug("tensorboard not installed: metrics go to JSONL and CSV only")

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled or not metrics:
            return
        with open(self.dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "time": time.time(), **metrics}) + "\n")
        new = not (self.dir / "metrics.csv").exists()
        with open(self.dir / "metrics.csv", "a", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", "name", "value"])
            for k, v in metrics.items():
                w.writerow([step, k, v])
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(k, v, step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
