"""Per-case metrics summarised and written out: a readable table, CSV and JSON.

Summaries ignore NaN (an undefined metric, e.g. HD95 of an empty prediction) instead of turning the
whole mean into NaN; the per-case rows keep the NaN so nothing is hidden.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..labels import REGIONS
from ..volume import publish_file

STATISTICS = ("mean", "sd", "median")


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    decimals: int


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[Column, ...]


WMH_TABLES = (
    Table(
        "WMH (MICCAI 2017 challenge definitions)",
        (
            Column("dice", "Dice", 4),
            Column("hd95", "HD95 mm", 2),
            Column("avd", "AVD %", 2),
            Column("lesion_recall", "Lesion recall", 4),
            Column("lesion_precision", "Lesion precision", 4),
            Column("lesion_f1", "Lesion F1", 4),
        ),
    ),
)


def brats_tables(lesionwise: bool) -> tuple[Table, ...]:
    """The BraTS layout: one table per pair of related metrics, a column per region, to stay readable."""

    def per_region(metric: str, header: str, decimals: int) -> tuple[Column, ...]:
        return tuple(
            Column(f"{region}_{metric}", f"{region.upper()} {header}", decimals) for region in REGIONS
        )

    tables = [
        Table("BraTS Dice and HD95 (mm)", per_region("dice", "Dice", 4) + per_region("hd95", "HD95", 2)),
        Table(
            "BraTS sensitivity and specificity",
            per_region("sensitivity", "sens", 4) + per_region("specificity", "spec", 4),
        ),
        Table(
            "BraTS volumes (ml)",
            per_region("volume_ref_ml", "ref", 2) + per_region("volume_pred_ml", "pred", 2),
        ),
    ]
    if lesionwise:
        tables.append(
            Table(
                "BraTS 2023 lesion-wise Dice and HD95 (mm)",
                per_region("lesionwise_dice", "Dice", 4) + per_region("lesionwise_hd95", "HD95", 2),
            )
        )
    return tuple(tables)


@dataclass
class Evaluation:
    """The metrics of every matched case, the cases that had no partner and those that could not be scored."""

    task: str
    cases: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    unmatched: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        keys: dict[str, None] = {}
        for _, metrics in self.cases:
            keys.update(dict.fromkeys(metrics))
        return list(keys)

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean, sample standard deviation and median of each metric over cases, NaN ignored."""
        result: dict[str, dict[str, float]] = {statistic: {} for statistic in STATISTICS}
        for key in self.keys:
            values = np.array([metrics.get(key, math.nan) for _, metrics in self.cases], dtype=float)
            values = values[~np.isnan(values)]
            result["mean"][key] = float(values.mean()) if values.size else math.nan
            result["sd"][key] = float(values.std(ddof=1)) if values.size > 1 else math.nan
            result["median"][key] = float(np.median(values)) if values.size else math.nan
        return result


def format_tables(evaluation: Evaluation, tables: tuple[Table, ...]) -> str:
    """Each table: a row per case, then "mean ± sd" and "median" rows."""
    summary = evaluation.summary()
    blocks = []
    for table in tables:
        rows = [
            [case] + [_number(metrics.get(c.key, math.nan), c.decimals) for c in table.columns]
            for case, metrics in evaluation.cases
        ]
        mean_row = ["mean ± sd"] + [
            _mean_sd(summary["mean"][c.key], summary["sd"][c.key], c.decimals) for c in table.columns
        ]
        median_row = ["median"] + [_number(summary["median"][c.key], c.decimals) for c in table.columns]
        header = ["case"] + [c.header for c in table.columns]
        widths = [
            max(len(row[i]) for row in [header, *rows, mean_row, median_row]) for i in range(len(header))
        ]
        rule = "  ".join("-" * width for width in widths)
        lines = [table.title, _line(header, widths), rule, *(_line(row, widths) for row in rows), rule]
        lines += [_line(mean_row, widths), _line(median_row, widths)]
        blocks.append("\n".join(lines))
    if evaluation.unmatched:
        listed = "\n".join(
            f"  {item['case']}: no {item['missing']} (only {item['path']})" for item in evaluation.unmatched
        )
        blocks.append(f"Unmatched cases ({len(evaluation.unmatched)}), not evaluated:\n{listed}")
    if evaluation.failed:
        listed = "\n".join(f"  {item['case']}: {item['error']}" for item in evaluation.failed)
        blocks.append(
            f"Cases that could not be scored ({len(evaluation.failed)}), not in the summary:\n{listed}"
        )
    return "\n\n".join(blocks)


def write_csv(evaluation: Evaluation, path: str | Path, overwrite: bool = False) -> Path:
    """One row per case, a column per metric; an undefined (NaN) metric is an empty cell."""
    rows = [((case,), metrics) for case, metrics in evaluation.cases]
    return _write_rows(("case",), rows, evaluation.keys, path, overwrite)


def write_csv_by_setting(
    evaluations: Mapping[str, Evaluation], setting_column: str, path: str | Path, overwrite: bool = False
) -> Path:
    """The same cases evaluated under several settings in one table, a row per setting and case, so that
    a per-case condition ("no case falls by more than ...") can be read off it, not only the means."""
    keys = list(dict.fromkeys(key for evaluation in evaluations.values() for key in evaluation.keys))
    rows = [
        ((setting, case), metrics)
        for setting, evaluation in evaluations.items()
        for case, metrics in evaluation.cases
    ]
    return _write_rows((setting_column, "case"), rows, keys, path, overwrite)


def _write_rows(
    leading: tuple[str, ...],
    rows: list[tuple[tuple[str, ...], dict[str, float]]],
    keys: list[str],
    path: str | Path,
    overwrite: bool,
) -> Path:
    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([*leading, *keys])
            for labels, metrics in rows:
                writer.writerow([*labels, *(_csv_value(metrics.get(key, math.nan)) for key in keys)])

    return publish_file(write, path, overwrite)


def write_json(evaluation: Evaluation, path: str | Path, overwrite: bool = False) -> Path:
    """``{"task", "cases": [{"case": id, metric: value}], "mean", "sd", "median", "unmatched", "failed"}``.

    NaN is written as null: JSON has no NaN, and null is what every reader understands as missing.
    """
    document = {
        "task": evaluation.task,
        "cases": [{"case": case, **_json_values(metrics)} for case, metrics in evaluation.cases],
        **{statistic: _json_values(values) for statistic, values in evaluation.summary().items()},
        "unmatched": evaluation.unmatched,
        "failed": evaluation.failed,
    }

    def write(temporary: Path) -> None:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, allow_nan=False)
            handle.write("\n")

    return publish_file(write, path, overwrite)


def _json_values(metrics: dict[str, float]) -> dict[str, float | None]:
    return {key: None if math.isnan(value) else value for key, value in metrics.items()}


def _csv_value(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def _number(value: float, decimals: int) -> str:
    return "nan" if math.isnan(value) else f"{value:.{decimals}f}"


def _mean_sd(mean: float, sd: float, decimals: int) -> str:
    return _number(mean, decimals) if math.isnan(sd) else f"{mean:.{decimals}f} ± {sd:.{decimals}f}"


def _line(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        [cells[0].ljust(widths[0])]
        + [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
    )
