"""`wmhseg segment`: one case from flags, or every case in a folder (batch, torchrun-aware)."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.bundle import ModelBundle, find_bundle
from ..engine.cases import find_cases
from ..engine.device import DEVICE_CHOICES
from ..engine.errors import InputError
from ..engine.labels import BRATS2018, BRATS2023, convert_convention
from ..engine.overlay import overlay_png
from ..engine.postprocess import NOTED_REMOVED_ML
from ..engine.predictor import Predictor, Progress
from ..engine.quantify import (
    bundle_label_names,
    bundle_statistics,
    islands,
    write_case_islands_csv,
    write_case_statistics_csv,
    write_islands_csv,
    write_statistics_csv,
)
from ..engine.volume import (
    WRITABLE_EXTENSIONS,
    Volume,
    check_output_folder,
    check_output_path,
    make_output_folder,
    same_file,
    write_volume,
)
from .common import (
    MODALITIES,
    add_activation_options,
    gradcam_classes,
    parse_layers_and_views,
    write_activation_maps,
)
from .progress import ProgressReporter


@dataclass
class CaseOutputs:
    mask: Path
    probabilities: Path | None = None
    statistics: Path | None = None
    overlay: Path | None = None
    activations: Path | None = None  # a folder
    removed: Path | None = None
    lesions: Path | None = None

    def paths(self) -> list[Path]:
        """The files to check before work starts (the activations folder is made by ``check_outputs``)."""
        files = (self.mask, self.probabilities, self.statistics, self.overlay, self.removed, self.lesions)
        return [p for p in files if p is not None]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("segment", help="segment one case, or every case in a folder")
    parser.add_argument("--model", required=True, help="model id (see `wmhseg models`) or bundle folder")
    for name in MODALITIES:
        parser.add_argument(
            f"--{name}", type=Path, metavar="FILE", help=f"{name} image (file or DICOM folder)"
        )
    parser.add_argument("-o", "--output", type=Path, help="label map to write (.nii.gz, .nii, .nrrd, .mha)")
    parser.add_argument("--probabilities", type=Path, help="also write the probability map(s)")
    parser.add_argument(
        "--stats",
        type=Path,
        help="also write volumes (ml) and lesion counts as CSV, per label and per tumor region",
    )
    parser.add_argument(
        "--lesions",
        type=Path,
        help="also write one CSV row per lesion (a tumor's focus), largest first: its labels, volume (ml) "
        "and centre (RAS mm, as Slicer shows positions)",
    )
    parser.add_argument(
        "--overlay",
        type=Path,
        help="also write a PNG of the axial plane with the most foreground (image | overlay)",
    )
    parser.add_argument(
        "--removed",
        type=Path,
        help=f"also write, as a label map, the regions of {NOTED_REMOVED_ML:g} ml or more the island "
        "cleaning removed (empty when it removed none): a removed region can be true lesion",
    )
    parser.add_argument("--activations", type=Path, metavar="DIR", help="also keep activation maps here")
    add_activation_options(parser)
    parser.add_argument("--labels", choices=(BRATS2018, BRATS2023), help="BraTS label convention (ET 4 or 3)")
    parser.add_argument(
        "--input-dir",
        type=Path,
        help="batch: find cases here by file-name patterns (--stats, --lesions: one table each)",
    )
    parser.add_argument("--output-dir", type=Path, help="batch: write <case>_seg.nii.gz here")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    parser.add_argument("--mirror", action="store_true", help="average over mirrored inputs (slower)")
    parser.add_argument(
        "--mixed-precision",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="float16 (CUDA) or bfloat16 (CPUs with AMX or AVX512-BF16) network arithmetic where the "
        "device has it, twice as fast there (default); --no-mixed-precision: float32 everywhere, "
        "the same labels on every machine",
    )
    parser.add_argument(
        "--overlap",
        type=float,
        help="tile overlap in [0, 1): more overlap, more tiles (default: the model's)",
    )
    parser.add_argument("--tile-batch", type=int, help="tiles per network call (default: the model's)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--json-progress", action="store_true", help="progress as JSON lines on stdout")
    parser.add_argument("--quiet", action="store_true", help="print errors and warnings only")
    parser.set_defaults(func=run)


def options(*argv: str) -> argparse.Namespace:
    """`wmhseg segment`'s options as its own parser reads ``argv``, every other one at its default: for
    commands that segment on a user's behalf (the demo), so they cannot miss an option segment added."""
    parser = argparse.ArgumentParser(prog="wmhseg")
    add_parser(parser.add_subparsers())
    return parser.parse_args(["segment", *argv])


def run(args) -> int:
    reporter = ProgressReporter(json_lines=args.json_progress, quiet=args.quiet)
    bundle = find_bundle(args.model)
    if args.labels and bundle.task != "brats":
        raise InputError(f"--labels applies to brain-tumor models, not {bundle.id}")
    if args.input_dir is not None:
        return run_batch(args, bundle, reporter)
    if args.output is None:
        raise InputError("give -o/--output (or --input-dir and --output-dir for a batch)")
    inputs = {name: getattr(args, name) for name in MODALITIES if getattr(args, name) is not None}
    outputs = CaseOutputs(
        args.output,
        args.probabilities,
        args.stats,
        args.overlay,
        args.activations,
        args.removed,
        args.lesions,
    )
    if args.activations is not None:
        parse_layers_and_views(args)
    check_outputs(outputs, args.overwrite, inputs)
    predictor = make_predictor(args, bundle)
    predictor.check_input_names(inputs)
    reporter.start_case(_case_name(inputs[bundle.input_names[0]]))
    seconds, _, _ = segment_case(predictor, inputs, outputs, args, reporter)
    reporter.event("case", status="done", seconds=round(seconds, 2), output=str(outputs.mask))
    reporter.message(f"wrote {', '.join(map(str, outputs.paths()))} ({seconds:.1f} s)")
    return 0


def check_outputs(outputs: CaseOutputs, overwrite: bool, inputs: dict[str, Path]) -> None:
    """Refuse, before any work, outputs that exist (unless ``overwrite``), could not be written, or
    name an input or another output: --overwrite replaces earlier results, never the scan itself."""
    check_output_files(outputs.paths(), overwrite, inputs, lambda path: _extensions_for(path, outputs))
    if outputs.activations is not None:
        check_output_folder(outputs.activations)  # created when the maps are written


def check_output_files(
    paths: list[Path], overwrite: bool, inputs: dict[str, Path], extensions_for: Callable[[Path], tuple]
) -> None:
    """Each of ``paths`` a new, writable file with one of its extensions, none an input, no two the same."""
    checked: list[Path] = []
    for path in paths:
        for name, source in inputs.items():
            if same_file(path, source):
                raise InputError(f"output is the {name} input; choose another output path", path)
        if any(same_file(path, earlier) for earlier in checked):
            raise InputError("given as two outputs; choose a path for each", path)
        check_output_path(path, overwrite, extensions=extensions_for(path))
        checked.append(path)


def segment_case(
    predictor, inputs: dict, outputs: CaseOutputs, args, reporter
) -> tuple[float, Volume, tuple[str, ...]]:
    """Predict one case and write every requested output atomically; returns the wall time, the
    label map as written (in the --labels convention) and the warnings already reported."""
    start = time.perf_counter()
    progress = Progress(reporter)
    volumes = predictor.read_inputs(inputs, progress)
    bundle = predictor.bundle
    recorder, views = None, []
    if outputs.activations is not None:
        layers, views = parse_layers_and_views(args)
        recorder = predictor.activation_recorder(layers, gradcam_classes(views), args.region)
    try:
        prediction = predictor.predict(volumes, progress, sources=inputs, recorder=recorder)
        reporter.remarks(prediction)
        labels = write_outputs(prediction, volumes[bundle.input_names[0]], bundle, outputs, args, views)
    finally:
        if recorder is not None:
            recorder.close()
    return time.perf_counter() - start, labels, prediction.warnings


def write_outputs(
    prediction, reference, bundle: ModelBundle, outputs: CaseOutputs, args, activation_views: list[str]
) -> Volume:
    convention = args.labels or BRATS2018
    labels = in_convention(prediction.labels, convention)
    write_volume(labels, outputs.mask, args.overwrite)
    if outputs.probabilities is not None:
        write_volume(prediction.probabilities, outputs.probabilities, args.overwrite)
    if outputs.removed is not None:
        removed = prediction.removed
        if removed is None:
            removed = prediction.labels.with_array(np.zeros_like(prediction.labels.array))
        write_volume(in_convention(removed, convention), outputs.removed, args.overwrite)
    if outputs.statistics is not None:
        write_statistics_csv(
            bundle_statistics(labels, bundle, convention), outputs.statistics, args.overwrite
        )
    if outputs.lesions is not None:
        names = bundle_label_names(bundle, convention)
        write_islands_csv(islands(labels), names, outputs.lesions, args.overwrite)
    if outputs.overlay is not None:
        colors = {info.value: info.color for info in bundle.labels}
        overlay_png(reference, prediction.labels, colors, outputs.overlay, args.overwrite)
    if outputs.activations is not None:
        write_activation_maps(
            prediction.activations,
            reference,
            activation_views,
            outputs.activations,
            args.grid,
            args.overwrite,
        )
    return labels


def in_convention(labels: Volume, convention: str) -> Volume:
    """Engine labels (BraTS 2018 numbering) as the user asked for them with --labels."""
    if convention == BRATS2018:
        return labels
    return labels.with_array(convert_convention(labels.array, convention, BRATS2018).astype("uint8"))


def run_batch(args, bundle: ModelBundle, reporter: ProgressReporter) -> int:
    if args.output_dir is None:
        raise InputError("batch mode needs --output-dir")
    refuse_single_case_options(args)
    if not args.input_dir.is_dir():
        raise InputError("input folder not found", args.input_dir)
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    statistics = batch_table_path(args.stats, rank, world_size)
    lesions = batch_table_path(args.lesions, rank, world_size)
    tables = [path for path in (statistics, lesions) if path is not None]
    check_output_files(tables, args.overwrite, {}, lambda path: (".csv",))
    check_output_folder(args.output_dir)
    cases = find_cases(args.input_dir, bundle)
    if not cases:
        patterns = ", ".join(bundle.inputs[0].patterns)
        raise InputError(f"no cases found (looked for {patterns} with an image extension)", args.input_dir)
    cases = cases[rank::world_size]
    predictor = make_predictor(args, bundle)
    make_output_folder(args.output_dir)
    results, table, lesion_table = [], {}, {}
    for case in cases:
        reporter.start_case(case.id)
        outputs = CaseOutputs(args.output_dir / f"{case.id}_seg.nii.gz")
        try:
            if case.problem:
                raise InputError(case.problem, args.input_dir / case.id)
            check_outputs(outputs, args.overwrite, case.paths)
            seconds, labels, warnings = segment_case(predictor, case.paths, outputs, args, reporter)
            if statistics is not None:
                table[case.id] = bundle_statistics(labels, bundle, args.labels or BRATS2018)
            if lesions is not None:
                lesion_table[case.id] = islands(labels)
            results.append((case.id, "ok", "; warning: ".join([f"{seconds:.1f} s", *warnings])))
            reporter.event("case", status="done", seconds=round(seconds, 2), output=str(outputs.mask))
        except InputError as error:
            results.append((case.id, "failed", str(error)))
            reporter.event("case", status="failed", error=str(error))
            reporter.failure(str(error))
    failed = sum(status == "failed" for _, status, _ in results)
    width = max(len(case_id) for case_id, _, _ in results)
    summary = [f"{case_id:<{width}}  {status:<6}  {detail}" for case_id, status, detail in results]
    summary.append(
        f"{len(results) - failed} segmented, {failed} failed"
        + (f" (rank {rank} of {world_size})" if world_size > 1 else "")
    )
    if statistics is not None:
        write_case_statistics_csv(table, statistics, args.overwrite)
        summary.append(f"statistics of the {len(table)} segmented: {statistics}")
    if lesions is not None:
        names = bundle_label_names(bundle, args.labels or BRATS2018)
        write_case_islands_csv(lesion_table, names, lesions, args.overwrite)
        summary.append(f"lesions of the {len(lesion_table)} segmented: {lesions}")
    reporter.message("\n".join(summary))
    return 2 if failed else 0


#: Options naming one case's files, which a batch cannot take: flag -> argument name.
SINGLE_CASE_OPTIONS = {
    "-o/--output": "output",
    **{f"--{name}": name for name in MODALITIES},
    "--probabilities": "probabilities",
    "--overlay": "overlay",
    "--activations": "activations",
    "--removed": "removed",
}


def refuse_single_case_options(args) -> None:
    """A batch given a one-case option would silently not write it; say so before any work."""
    given = [flag for flag, name in SINGLE_CASE_OPTIONS.items() if getattr(args, name) is not None]
    if given:
        raise InputError(
            f"{given[0]} is for one case; a batch (--input-dir) finds each case's inputs and writes "
            "<case>_seg.nii.gz, and --stats and --lesions as one table of all cases"
        )


def batch_table_path(path: Path | None, rank: int, world_size: int) -> Path | None:
    """Under torchrun each process writes the tables of its own share: ``s.csv`` -> ``s.rank1-of-2.csv``."""
    if path is None or world_size == 1:
        return path
    return path.with_name(f"{path.stem}.rank{rank}-of-{world_size}{path.suffix}")


def make_predictor(args, bundle: ModelBundle):
    device = args.device
    if device in ("auto", "cuda") and "LOCAL_RANK" in os.environ:
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    return Predictor(
        bundle,
        device=device,
        mirror=args.mirror or None,
        overlap=args.overlap,
        tile_batch=args.tile_batch,
        mixed_precision=args.mixed_precision,
    )


def _extensions_for(path: Path, outputs: CaseOutputs):
    if path in (outputs.statistics, outputs.lesions):
        return (".csv",)
    if path == outputs.overlay:
        return (".png",)
    return WRITABLE_EXTENSIONS


def _case_name(path: Path) -> str:
    return Path(path).name.split(".")[0]
