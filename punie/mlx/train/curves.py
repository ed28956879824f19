"""Loss curves: train/valid loss as JSONL lines while training, and a PNG plot of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog

from punie.records.jsonl import append_line, iter_json_lines, write_rows

log = structlog.get_logger(__name__)

LOSS_FILE = "loss.jsonl"
CURVE_FILE = "loss.png"


@dataclass(frozen=True)
class LossPoint:
    """One reported loss: after `iteration` optimizer steps."""

    split: Literal["train", "valid"]
    iteration: int
    loss: float
    extra: dict[str, Any]


class LossLog:
    """Appends loss points to a JSONL file, flushed per line so a crash keeps what was logged."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, split: Literal["train", "valid"], iteration: int, loss: float, **extra: Any):
        """Append one point."""
        line = {"split": split, "iteration": int(iteration), "loss": float(loss), **extra}
        append_line(self.path, line, fsync=False)

    def truncate_after(self, iteration: int) -> None:
        """Drop points past ``iteration`` (a resumed run replays the steps after its checkpoint)."""
        kept = [p for p in read_points(self.path) if p.iteration <= iteration]
        write_rows(
            self.path,
            ({"split": p.split, "iteration": p.iteration, "loss": p.loss, **p.extra} for p in kept),
        )


def read_points(path: Path) -> list[LossPoint]:
    """The points of a loss JSONL file (missing file: none)."""
    if not Path(path).is_file():
        return []
    points = []
    for _, row in iter_json_lines(path, what="loss log", fix="delete it to start a new log"):
        points.append(
            LossPoint(row.pop("split"), int(row.pop("iteration")), float(row.pop("loss")), row)
        )
    return points


def plot_curves(jsonl: Path, png: Path, *, title: str = "loss") -> Path | None:
    """Plot train and valid loss against iterations; None when there is nothing to plot."""
    points = read_points(jsonl)
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        for split, style in (("train", "-o"), ("valid", "--s")):
            xs = [p.iteration for p in points if p.split == split]
            ys = [p.loss for p in points if p.split == split]
            if xs:
                ax.plot(xs, ys, style, label=split, markersize=3)
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(png)
    finally:
        plt.close(fig)
    log.info("curve_written", path=str(png), points=len(points))
    return Path(png)
