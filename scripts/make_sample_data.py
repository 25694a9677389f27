"""Make WMHSegmenter/Resources/SampleData from the development data in ../shared/data (run once).

Crops each sample case to its brain's bounding box (plus 2 voxels) so the shipped files stay small;
the geometry (origin) is updated by SimpleITK's region extraction, so the crop stays in place.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SHARED = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
OUT = Path(__file__).resolve().parents[1] / "WMHSegmenter" / "Resources" / "SampleData"


def crop_to_brain(images: dict[str, sitk.Image], reference: str, margin: int = 2) -> dict[str, sitk.Image]:
    array = sitk.GetArrayFromImage(images[reference])
    present = np.argwhere(array > 0)
    low = np.maximum(present.min(axis=0) - margin, 0)[::-1]
    high = np.minimum(present.max(axis=0) + margin + 1, array.shape)[::-1]
    size = (high - low).tolist()
    return {name: sitk.RegionOfInterest(image, size, low.tolist()) for name, image in images.items()}


def main() -> None:
    wmh = SHARED / "open_ms" / "patient26"
    images = {n: sitk.ReadImage(str(wmh / f"{n}.nii.gz")) for n in ("flair", "lesions")}
    for name, image in crop_to_brain(images, "flair").items():
        (OUT / "wmh").mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(OUT / "wmh" / f"patient26_{name}.nii.gz"), useCompression=True)
    case = "Brats18_TCIA01_425_1"
    brats = SHARED / "brats2018" / case
    images = {
        n: sitk.ReadImage(str(brats / f"{case}_{n}.nii.gz")) for n in ("flair", "t1", "t1ce", "t2", "seg")
    }
    for name, image in crop_to_brain(images, "flair").items():
        (OUT / "brats").mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(OUT / "brats" / f"{case}_{name}.nii.gz"), useCompression=True)


if __name__ == "__main__":
    main()
