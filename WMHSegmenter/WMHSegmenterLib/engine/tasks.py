"""What each task's model takes and gives: input patterns, output channels, label names and colours.

Training export and tests start their model.json from these, so every bundle of a task agrees with
the CLI's flags, batch-mode file matching and the Slicer segment names.
Terminology codes are SNOMED CT (scheme "SCT"), as DICOM segmentations and Slicer's terminologies use.
"""

from __future__ import annotations

import copy
from typing import Any

_ALTERED = ["SCT", "49755003", "Morphologically Altered Structure"]

_TASKS: dict[str, dict[str, Any]] = {
    "wmh": {
        "inputs": [
            {"name": "flair", "description": "FLAIR", "patterns": ["*_flair", "*flair"]},
        ],
        "outputs": {
            "activation": "softmax",
            "channels": [{"name": "background", "label": 0}, {"name": "WMH", "label": 1}],
            "labels": [
                {
                    "value": 1,
                    "name": "White matter hyperintensity",
                    "color": [1.0, 0.85, 0.1],
                    "terminology": {"category": _ALTERED, "type": ["SCT", "52988006", "Lesion"]},
                }
            ],
        },
    },
    "brats": {
        "inputs": [
            # BraTS 2017-21 and 2023 names after a case id, then the bare names of a folder per case
            {
                "name": "flair",
                "description": "FLAIR",
                "patterns": ["*_flair", "*-t2f", "*_t2f", "flair", "t2f"],
            },
            {"name": "t1", "description": "T1", "patterns": ["*_t1", "*-t1n", "*_t1n", "t1", "t1n"]},
            {
                "name": "t1ce",
                "description": "T1 with contrast",
                "patterns": ["*_t1ce", "*-t1c", "*_t1c", "t1ce", "t1c"],
            },
            {"name": "t2", "description": "T2", "patterns": ["*_t2", "*-t2w", "*_t2w", "t2", "t2w"]},
        ],
        "outputs": {
            "activation": "sigmoid",
            "channels": [
                {"name": "whole tumor", "label": 2},
                {"name": "tumor core", "label": 1},
                {"name": "enhancing tumor", "label": 4},
            ],
            "labels": [
                {
                    "value": 1,
                    "name": "Necrotic and non-enhancing tumor core",
                    "color": [0.9, 0.2, 0.2],
                    "terminology": {"category": _ALTERED, "type": ["SCT", "6574001", "Necrosis"]},
                },
                {
                    "value": 2,
                    "name": "Peritumoral edema",
                    "color": [0.3, 0.8, 0.3],
                    "terminology": {"category": _ALTERED, "type": ["SCT", "79654002", "Edema"]},
                },
                {
                    "value": 4,
                    "name": "Enhancing tumor",
                    "color": [1.0, 0.9, 0.2],
                    "terminology": {"category": _ALTERED, "type": ["SCT", "108369006", "Tumor"]},
                },
            ],
        },
    },
}


#: Tasks whose data are skull-stripped (BraTS is distributed so): their models never saw a skull, and a
#: scan with one is warned of (engine.input_checks.skull_warning).
SKULL_STRIPPED_TASKS = frozenset({"brats"})


def task_metadata(task: str) -> dict[str, Any]:
    """A fresh copy of the task's inputs and outputs sections for a model.json."""
    if task not in _TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(_TASKS)}")
    return {"task": task, **copy.deepcopy(_TASKS[task])}
