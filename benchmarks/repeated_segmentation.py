"""What a Slicer or browser user waits for on each Segment click: one long-lived process segmenting a
shipped sample several times through the scene logic, on trame-slicer's MRML scene (the browser app's).

Per run: wall time of ``SegmenterLogic.segment`` (prepare, predict, write into the scene), minor page
faults, and the process's resident memory after the run (what it holds between clicks).

    .venv/bin/python benchmarks/repeated_segmentation.py --model brats-glioma --runs 4 [--out F.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")  # no display needed


def resident_gb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="brats-glioma", help="model id or bundle folder")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--out", type=Path, help="also write the report here (JSON)")
    args = parser.parse_args()

    from run_benchmark import machine  # this folder's
    from trame_slicer.core import SlicerApp

    from WMHSegmenterLib.engine.bundle import find_bundle
    from WMHSegmenterLib.engine.samples import sample_inputs
    from WMHSegmenterLib.engine.volume import read_volume
    from WMHSegmenterLib.scene.logic import SegmenterLogic, SegmentOptions
    from WMHSegmenterLib.scene.nodes import add_volume_node

    host = machine()  # the load average before this run's work
    bundle = find_bundle(args.model)
    case, paths = sample_inputs(bundle.task)
    scene = SlicerApp().scene
    nodes = {
        name: add_volume_node(scene, read_volume(path), f"{case}_{name}") for name, path in paths.items()
    }
    logic = SegmenterLogic(scene, list_models=lambda: [bundle])
    runs, segmentation = [], None
    for _ in range(args.runs):  # each click after the first overwrites the first result, as in Slicer
        faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        result = logic.segment(bundle, nodes, SegmentOptions(device="cpu"), segmentation)
        segmentation = result.segmentation_node
        runs.append(
            {
                "seconds": round(time.perf_counter() - start, 2),
                "minor_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults,
                "resident_gb_after": round(resident_gb(), 3),
                "segmentation": result.segmentation_node.GetName(),
            }
        )
        print(json.dumps(runs[-1]), flush=True)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": host,
        "model": f"{bundle.id} {bundle.version}",
        "case": case,
        "peak_resident_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3),
        "runs": runs,
    }
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}))


if __name__ == "__main__":
    main()
