"""What a run shows and leaves behind: a progress bar, metrics.csv and learning_curves.png.

Both files are rewritten from the checkpoint's history after each epoch (atomically), so after a
resume they show exactly the epochs the model has, never rows of an epoch that was lost to a kill.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from WMHSegmenterLib.engine.volume import publish_file

METRICS_CSV = "metrics.csv"
CURVES_PNG = "learning_curves.png"
#: Validation metrics drawn on the curves (those a run has).
PLOTTED_VALIDATION = (
    "val_dice",
    "val_lesion_f1",
    "val_mean_dice",
    "val_wt_dice",
    "val_tc_dice",
    "val_et_dice",
)


def progress_bar(iterable: Iterable, total: int, description: str, enabled: bool):
    """tqdm on a terminal; plain iteration on other ranks (and with --quiet)."""
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=description, file=sys.stderr, leave=False, dynamic_ncols=True)


def write_metrics_csv(history: Sequence[Mapping[str, Any]], path: Path) -> None:
    columns = list(dict.fromkeys(key for row in history for key in row))

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(history)

    publish_file(write, path, overwrite=True)


def plot_learning_curves(history: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Training loss, validation metrics and learning rate against epochs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, metric_axes, rate_axes = figure.subplots(1, 3)
    epochs = [row["epoch"] for row in history]
    loss_axes.plot(epochs, [row["train_loss"] for row in history], marker=".", label="training loss")
    loss_axes.set(title="Loss", xlabel="epoch")
    for key in PLOTTED_VALIDATION:
        points = [(row["epoch"], row[key]) for row in history if _is_number(row.get(key))]
        if points:
            metric_axes.plot(*zip(*points), marker="o", label=key.removeprefix("val_"))
    metric_axes.set(title="Validation", xlabel="epoch", ylim=(0, 1))
    if metric_axes.lines:
        metric_axes.legend(loc="lower right", fontsize="small")
    rate_axes.plot(epochs, [row["learning_rate"] for row in history], marker=".")
    rate_axes.set(title="Learning rate (end of epoch)", xlabel="epoch")
    for axes in (loss_axes, metric_axes, rate_axes):
        axes.grid(alpha=0.3)
    publish_file(lambda temporary: figure.savefig(temporary, format="png"), path, overwrite=True)


def epoch_summary(row: Mapping[str, Any], total_epochs: int, selection_key: str, is_best: bool) -> str:
    parts = [f"epoch {row['epoch']}/{total_epochs}", f"loss {row['train_loss']:.4f}"]
    if _is_number(row.get(selection_key)):
        parts.append(
            f"{selection_key.removeprefix('val_')} {row[selection_key]:.4f}" + (" (best)" if is_best else "")
        )
    parts.append(f"{row['epoch_seconds']:.1f} s")
    return "  ".join(parts)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)
