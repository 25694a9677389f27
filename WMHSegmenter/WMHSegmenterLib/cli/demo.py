"""`wmhseg demo`: the README's first command — segment the bundled samples with the bundled models."""

from __future__ import annotations

from pathlib import Path

from ..engine.bundle import list_bundles, model_search_paths
from ..engine.device import DEVICE_CHOICES
from ..engine.samples import sample_inputs
from ..engine.volume import make_output_folder
from . import segment
from .models import NO_MODEL_MESSAGE
from .progress import ProgressReporter
from .segment import CaseOutputs


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="segment the bundled sample cases with the bundled models")
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="folder for the results")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    parser.add_argument("--overwrite", action="store_true")
    parser.set_defaults(func=run)


def run(args) -> int:
    trained = [bundle for bundle in list_bundles() if bundle.trained]
    if not trained:
        print(NO_MODEL_MESSAGE.format(paths=", ".join(map(str, model_search_paths()))))
        print("The demo needs a trained model, so it has nothing to segment yet.")
        return 0
    make_output_folder(args.out)
    planned = [(bundle, *sample_inputs(bundle.task)) for bundle in trained]
    outputs = {bundle.id: _outputs(args.out / f"{bundle.id}_{case}") for bundle, case, _ in planned}
    for bundle, _, inputs in planned:
        segment.check_outputs(outputs[bundle.id], args.overwrite, inputs)  # every case's, before any work
    reporter = ProgressReporter()
    for bundle, case, inputs in planned:
        options = segment.options(
            "--model", bundle.id, "--device", args.device, *(["--overwrite"] if args.overwrite else [])
        )
        reporter.start_case(f"{bundle.id} on {case}")
        case_outputs = outputs[bundle.id]
        seconds, _, _ = segment.segment_case(
            segment.make_predictor(options, bundle), inputs, case_outputs, options, reporter
        )
        print(f"{bundle.id} on {case}: {seconds:.1f} s -> {', '.join(map(str, case_outputs.paths()))}")
        print(case_outputs.statistics.read_text())
    return 0


def _outputs(stem: Path) -> CaseOutputs:
    return CaseOutputs(
        Path(f"{stem}_mask.nii.gz"), None, Path(f"{stem}_stats.csv"), Path(f"{stem}_overlay.png")
    )
