"""`wmhseg demo`: the README's first command — segment the bundled samples with the bundled models."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.bundle import list_bundles, model_search_paths
from ..engine.samples import sample_inputs
from .models import NO_MODEL_MESSAGE
from .progress import ProgressReporter
from .segment import CaseOutputs, make_predictor, segment_case


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="segment the bundled sample cases with the bundled models")
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="folder for the results")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--overwrite", action="store_true")
    parser.set_defaults(func=run)


def run(args) -> int:
    trained = [bundle for bundle in list_bundles() if bundle.trained]
    if not trained:
        print(NO_MODEL_MESSAGE.format(paths=", ".join(map(str, model_search_paths()))))
        print("The demo needs a trained model, so it has nothing to segment yet.")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    reporter = ProgressReporter()
    for bundle in trained:
        case, inputs = sample_inputs(bundle.task)
        stem = args.out / f"{bundle.id}_{case}"
        outputs = CaseOutputs(
            Path(f"{stem}_mask.nii.gz"), None, Path(f"{stem}_stats.csv"), Path(f"{stem}_overlay.png")
        )
        options = argparse.Namespace(
            device=args.device,
            mirror=False,
            overlap=None,
            tile_batch=None,
            labels=None,
            overwrite=args.overwrite,
        )
        reporter.start_case(f"{bundle.id} on {case}")
        seconds = segment_case(make_predictor(options, bundle), inputs, outputs, options, reporter)
        print(f"{bundle.id} on {case}: {seconds:.1f} s -> {', '.join(map(str, outputs.paths()))}")
        print(Path(outputs.statistics).read_text())
    return 0
