"""`wmhseg-train`: train (or resume) a run from a YAML config, and export a run as a model bundle.

wmhseg-train --config Training/configs/smoke.yaml [--resume] [--device cpu]
wmhseg-train export RUN_DIR --id my-model --out Resources/Models/my-model [--member RUN2] [--card-notes N.md]
wmhseg-train cross-validate --config Training/configs/brats_glioma_cpu.yaml --out runs/cv [--folds 0,1]
wmhseg-train select-cleaning --task brats --reference-dir DATA --prediction-dir CV_PREDICTIONS
wmhseg-train reissue BUNDLE --out FOLDER --version 1.0.1 --inference brain_mask=true [--card-notes N.md]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from WMHSegmenterLib.engine.allocator import keep_freed_memory
from WMHSegmenterLib.engine.device import DEVICE_CHOICES
from WMHSegmenterLib.engine.errors import InputError

PROGRAM = "wmhseg-train"

#: Metrics shown beside the selection metric when comparing cleanings or cross-validation cases.
CLEANING_COLUMNS = {
    "wmh": ("hd95", "avd", "lesion_recall", "lesion_f1"),
    "brats": ("wt_dice", "tc_dice", "et_dice", "wt_hd95", "tc_hd95", "et_hd95"),
}


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Train WMHSegmenter's 3D U-Net on a data set. "
        f"To bundle a finished run: {PROGRAM} export RUN_DIR --id ID --out FOLDER; to train and score "
        f"every fold: {PROGRAM} cross-validate --config C --out DIR.",
    )
    _add_run_options(parser)
    parser.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    parser.add_argument("--fold", help="fold to validate on (0..folds-1) or 'all', overriding data.fold")
    parser.add_argument("--run-dir", type=Path, help="run folder (default: <output.runs_dir>/<name>-fold<k>)")
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """What training and cross-validation both take: the config, its overrides, the device."""
    parser.add_argument("--config", type=Path, required=True, help="YAML run configuration")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    parser.add_argument("--data", type=Path, help="data folder (or CSV file), overriding data.root")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any setting, e.g. --set training.epochs=2 (repeatable; values are YAML)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_inference_option(parser: argparse.ArgumentParser, purpose: str) -> None:
    parser.add_argument(
        "--inference",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"{purpose}, e.g. --inference overlap=0.25 (repeatable; values are YAML; a patch_size_zyx "
        "other than the training patch changes every tile's normalisation: score it before shipping)",
    )


def crossval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROGRAM} cross-validate",
        description="Train every fold of a config (or continue where a run stopped), segment each fold's "
        "held-out cases with its last epoch as its bundle would, and score every case in one table "
        "(OUT/cases.csv; predictions in OUT/predictions).",
    )
    _add_run_options(parser)
    parser.add_argument("--out", type=Path, required=True, help="folder for the folds' runs and the table")
    parser.add_argument("--folds", type=_fold_list, help="comma-separated folds to run (default: all)")
    _add_inference_option(parser, "score the folds with an inference setting of the bundle")
    return parser


def _fold_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated fold numbers, got {text!r}") from None


def export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{PROGRAM} export", description="Write a run as a model bundle.")
    parser.add_argument("run_dir", type=Path, help="the run folder (holds checkpoints/)")
    parser.add_argument("--id", required=True, help="model id, as `wmhseg segment --model` names it")
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to create")
    parser.add_argument("--checkpoint", choices=("auto", "best", "last"), default="auto")
    parser.add_argument("--version", default="1.0.0", help="model version written to model.json")
    parser.add_argument("--name", help="human-readable model name (default: the id)")
    parser.add_argument(
        "--member",
        dest="members",
        action="append",
        default=[],
        metavar="RUN_OR_BUNDLE",
        help="another network of the same recipe (run folder, or model id or folder) to ship with this "
        "run's as an ensemble whose probabilities are averaged (repeatable; weights stored as float16)",
    )
    _add_bundle_writing_options(parser)
    return parser


def _add_bundle_writing_options(parser: argparse.ArgumentParser) -> None:
    """What export and reissue both take: replacing, inference settings, card notes."""
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle folder")
    _add_inference_option(parser, "set an inference default of the bundle")
    parser.add_argument(
        "--card-notes",
        type=Path,
        help="Markdown appended to the generated MODEL_CARD.md: data citations, per-case results, "
        "failure modes seen (what a run cannot know about itself)",
    )


def reissue_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROGRAM} reissue",
        description="Write a bundle's weights again under a new version, with inference settings chosen "
        "after training (when the run folder is gone).",
    )
    parser.add_argument("bundle", type=Path, help="the bundle folder to start from")
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write (may be the same)")
    parser.add_argument("--version", required=True, help="the new model version")
    parser.add_argument(
        "--preprocessing",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set the bundle's preprocessing; only bias_correction (null, n4, n4_trimmed), which the "
        "network was not trained with: score it before shipping (repeatable; values are YAML)",
    )
    _add_bundle_writing_options(parser)
    return parser


def cleaning_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROGRAM} select-cleaning",
        description="Choose the bundle's island cleaning on the folds' held-out predictions: each "
        "candidate is applied as the predictor would, every case scored, the best mean selection metric "
        "(WMH Dice, BraTS mean of WT/TC/ET Dice) wins; the one removing least on ties.",
    )
    parser.add_argument("--task", required=True, choices=("wmh", "brats"))
    parser.add_argument("--reference-dir", type=Path, required=True, help="references, one per case")
    parser.add_argument(
        "--prediction-dir", type=Path, required=True, help="held-out predictions made without cleaning"
    )
    parser.add_argument(
        "--probability-dir",
        type=Path,
        help="their probability maps (<case>.nii.gz, from cross-validate or wmhseg segment --probabilities), "
        "for candidates measuring islands by confidence",
    )
    parser.add_argument(
        "--candidates",
        type=_cleanings,
        help="comma-separated island sizes in voxels under which islands go, 'largest' to keep only "
        "the largest island, or 'largest:F' to keep islands of at least F times the largest; "
        "'largest@confidence' or 'largest:F@confidence' measure islands by their mean probability "
        "instead of their size; '+neck:R' after any of them first cuts islands where narrower than a "
        "ball of R mm radius (default: 0,10,50,100,500,1000,2000,5000,largest:0.5,largest:0.8,largest, "
        "and largest@confidence and largest@confidence+neck:3 with --probability-dir)",
    )
    parser.add_argument(
        "--csv", type=Path, help="also write every case's metrics under every candidate to this CSV file"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing CSV file")
    return parser


def _cleanings(text: str) -> tuple:
    from .cleaning import Cleaning

    try:
        cleanings = tuple(Cleaning.parse(part.strip()) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected comma-separated whole numbers, 'largest' or 'largest:F' (optionally with "
            f"'@confidence'), each optionally with '+neck:R', got {text!r}"
        ) from None
    if any(c.min_component_voxels < 0 for c in cleanings):
        raise argparse.ArgumentTypeError(f"voxel counts must be 0 or more, got {text!r}")
    if any(not 0 <= c.min_island_fraction <= 1 for c in cleanings):
        raise argparse.ArgumentTypeError(f"fractions of the largest island must be in [0, 1], got {text!r}")
    if any(not 0 <= c.island_neck_mm < float("inf") for c in cleanings):
        raise argparse.ArgumentTypeError(f"neck radii must be 0 mm or more, got {text!r}")
    if any(c.island_neck_mm > 0 and not c.removes_islands for c in cleanings):
        raise argparse.ArgumentTypeError(
            "'+neck:R' cuts islands for a candidate that removes some: a size over 1 voxel or "
            f"'largest', got {text!r}"
        )
    return cleanings


def _run_config(args: argparse.Namespace, fold: str | None = None) -> dict:
    from .config import apply_override, load_config, resolve_paths

    config = load_config(args.config, args.overrides)
    if args.data is not None:
        config["data"]["root"] = str(args.data.resolve())
    if fold is not None:
        apply_override(config, f"data.fold={fold}")
    return resolve_paths(config)


def run_train(args: argparse.Namespace) -> int:
    from .loop import train

    config = _run_config(args, args.fold)
    run_dir = (
        args.run_dir
        or Path(config["output"]["runs_dir"]) / f"{config['output']['name']}-fold{config['data']['fold']}"
    )
    run_dir = run_dir.resolve()
    train(config, run_dir, resume=args.resume, device=args.device, show_progress=not args.quiet)
    print(f"run finished: {run_dir}  (bundle it: {PROGRAM} export {run_dir} --id <id> --out <folder>)")
    return 0


def run_cross_validate(args: argparse.Namespace) -> int:
    from .crossval import CASES_CSV, cross_validate, mean_row
    from .validation import SELECTION_METRIC

    config = _run_config(args)
    rows = cross_validate(
        config, args.out, args.folds, args.inference, args.device, show_progress=not args.quiet
    )
    columns = [SELECTION_METRIC[config["task"]], *CLEANING_COLUMNS[config["task"]], "seconds"]
    widths = [max(len(column), 10) for column in columns]  # an AVD can reach thousands of percent
    print("  ".join(["fold", f"{'case':<24}", *(f"{c:>{w}}" for c, w in zip(columns, widths))]))
    for row in [*rows, {"fold": "", "case": f"mean of {len(rows)}", **mean_row(rows)}]:
        values = [f"{row[column]:>{width}.4f}" for column, width in zip(columns, widths)]
        flag = "  warned (below)" if row.get("warnings") else ""
        print("  ".join([f"{row['fold']!s:>4}", f"{row['case']:<24}", *values]) + flag)
    for row in rows:
        if row["warnings"]:
            print(f"{row['case']}: warning: {row['warnings']}")
    print(f"per case: {args.out / CASES_CSV}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from .export import export_run

    bundle = export_run(
        args.run_dir,
        args.id,
        args.out,
        args.checkpoint,
        args.version,
        args.name,
        args.overwrite,
        args.card_notes,
        args.inference,
        args.members,
    )
    print(f"wrote {bundle.folder} (model {bundle.id}; validation {_validation_dice(bundle)})")
    return 0


def _validation_dice(bundle) -> dict[str, float]:
    metrics = bundle.meta["validation"]["metrics"]
    return {k: v if v is None else round(v, 4) for k, v in metrics.items() if k.endswith("dice")}


def run_reissue(args: argparse.Namespace) -> int:
    from .export import reissue_bundle

    bundle = reissue_bundle(
        args.bundle,
        args.out,
        args.version,
        args.inference,
        args.card_notes,
        args.overwrite,
        args.preprocessing,
    )
    print(
        f"wrote {bundle.folder} (model {bundle.id} {bundle.meta['version']}; inference {bundle.inference}; "
        f"preprocessing {bundle.preprocessing}; "
        f"validation {_validation_dice(bundle)})"
    )
    return 0


def run_select_cleaning(args: argparse.Namespace) -> int:
    from WMHSegmenterLib.engine.metrics.report import write_csv_by_setting
    from WMHSegmenterLib.engine.volume import check_output_path

    from .cleaning import CANDIDATES, CONFIDENCE_CANDIDATES, best_cleaning, compare_cleaning, paired_cases
    from .validation import SELECTION_METRIC

    if args.csv is not None:
        check_output_path(args.csv, args.overwrite, extensions=(".csv",))
    pairs = paired_cases(args.reference_dir, args.prediction_dir)
    defaults = CANDIDATES if args.probability_dir is None else (*CANDIDATES, *CONFIDENCE_CANDIDATES)
    scores = compare_cleaning(args.task, pairs, args.candidates or defaults, args.probability_dir)
    columns = [SELECTION_METRIC[args.task], *CLEANING_COLUMNS[args.task]]
    print(f"{len(pairs)} case(s); mean over cases")
    width = max(len("cleaning"), *(len(str(candidate.cleaning)) for candidate in scores))
    print("  ".join([f"{'cleaning':>{width}}", *columns]))
    for candidate in scores:
        values = [f"{candidate.mean.get(column, float('nan')):>{len(column)}.4f}" for column in columns]
        print("  ".join([f"{candidate.cleaning!s:>{width}}", *values]))
    best = best_cleaning(args.task, scores).cleaning
    options = " ".join(f"--inference {setting}" for setting in best.inference_settings)
    print(f"best: {best} (bundle it: {PROGRAM} export RUN_DIR ... {options})")
    if args.csv is not None:
        evaluations = {str(candidate.cleaning): candidate.evaluation for candidate in scores}
        print(f"wrote {write_csv_by_setting(evaluations, 'cleaning', args.csv, args.overwrite)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    logging.getLogger("wmhseg").setLevel(logging.WARNING)
    keep_freed_memory()
    try:
        if argv[:1] == ["export"]:
            return run_export(export_parser().parse_args(argv[1:]))
        if argv[:1] == ["reissue"]:
            return run_reissue(reissue_parser().parse_args(argv[1:]))
        if argv[:1] == ["cross-validate"]:
            return run_cross_validate(crossval_parser().parse_args(argv[1:]))
        if argv[:1] == ["select-cleaning"]:
            return run_select_cleaning(cleaning_parser().parse_args(argv[1:]))
        if argv[:1] == ["train"]:
            argv = argv[1:]
        return run_train(train_parser().parse_args(argv))
    except InputError as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROGRAM}: interrupted; finished epochs are saved (continue with --resume)", file=sys.stderr)
        return 130
