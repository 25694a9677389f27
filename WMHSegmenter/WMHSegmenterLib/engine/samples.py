"""The small real sample cases shipped with the extension (see Resources/SampleData/README.md)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "Resources" / "SampleData"

#: task -> (case id, modality -> file, reference label map)
SAMPLES = {
    "wmh": ("patient26", {"flair": "wmh/patient26_flair.nii.gz"}, "wmh/patient26_lesions.nii.gz"),
    "brats": (
        "Brats18_TCIA01_425_1",
        {m: f"brats/Brats18_TCIA01_425_1_{m}.nii.gz" for m in ("flair", "t1", "t1ce", "t2")},
        "brats/Brats18_TCIA01_425_1_seg.nii.gz",
    ),
}


def sample_inputs(task: str) -> tuple[str, dict[str, Path]]:
    case, files, _ = SAMPLES[task]
    return case, {name: SAMPLE_DATA / relative for name, relative in files.items()}


def sample_reference(task: str) -> Path:
    return SAMPLE_DATA / SAMPLES[task][2]
