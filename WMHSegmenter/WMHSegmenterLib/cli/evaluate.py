"""``wmhseg evaluate``: score predictions against references with the WMH challenge's or BraTS's metrics.

One pair (--reference/--prediction) or two folders (--reference-dir/--prediction-dir) whose files
are paired by case id. Cases without a partner, or that cannot be scored, are listed, never silently dropped.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from ..engine.cases import image_stem
from ..engine.errors import InputError
from ..engine.labels import AUTO, CONVENTIONS
from ..engine.metrics import evaluate_brats, evaluate_wmh
from ..engine.metrics.report import WMH_TABLES, Evaluation, brats_tables, format_tables, write_csv, write_json
from ..engine.metrics.wmh import lesion_matches
from ..engine.quantify import write_lesion_matches_csv
from ..engine.volume import check_output_path, read_volume
from .progress import print_error

log = logging.getLogger("wmhseg")

TASKS = ("wmh", "brats")
#: Words that mark a file as a label map; stripped from file names to get the case id.
LABEL_WORDS = ("seg", "mask", "wmh", "lesions", "pred", "prediction")
_LABEL_SUFFIX = re.compile(r"[_-](?:" + "|".join(LABEL_WORDS) + r")$", re.IGNORECASE)


def add_parser(subparsers) -> None:
    """Add the ``evaluate`` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score predictions against reference segmentations (WMH challenge or BraTS metrics)",
        description=(
            "Score predictions against references. WMH: Dice, HD95 (mm), AVD (%), lesion recall, "
            "precision and F1 as the MICCAI 2017 WMH challenge defines them (reference label 2 excluded). "
            "BraTS: Dice, HD95 (mm), sensitivity, specificity and volumes of WT, TC and ET."
        ),
    )
    parser.add_argument("--task", required=True, choices=TASKS, help="which challenge's metrics")
    parser.add_argument("--reference", type=Path, help="reference label map (one case)")
    parser.add_argument("--prediction", type=Path, help="predicted label map (one case)")
    parser.add_argument("--reference-dir", type=Path, help="folder of reference label maps, one per case")
    parser.add_argument("--prediction-dir", type=Path, help="folder of predictions, paired by case id")
    parser.add_argument(
        "--labels",
        choices=(*CONVENTIONS, AUTO),
        help="BraTS label convention: ET = 4 (brats2018) or 3 (brats2023); default auto, per file",
    )
    parser.add_argument(
        "--lesionwise", action="store_true", help="also the BraTS 2023 lesion-wise Dice and HD95"
    )
    parser.add_argument(
        "--lesions",
        type=Path,
        help="WMH: write each reference lesion (found or missed) and each predicted lesion (true or "
        "false) to this CSV file, with its volume and centre",
    )
    parser.add_argument("--csv", type=Path, help="write per-case metrics to this CSV file")
    parser.add_argument("--json", type=Path, help="write per-case metrics and summaries to this JSON file")
    parser.add_argument("--overwrite", action="store_true", help="replace existing CSV/JSON outputs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate every pair, print the tables, write the requested files; 0 on success, 2 if a case failed.

    Of two folders, a pair that cannot be scored (off the reference's grid, not a label map) is reported
    in one line and listed, and the others are scored: one bad file of a hundred should not hide the 99.
    """
    _check_options(args)
    pairs, unmatched = _pairs(args)
    for output, extension in ((args.csv, ".csv"), (args.json, ".json"), (args.lesions, ".csv")):
        if output is not None:  # the extension keeps --overwrite off a label map given here by mistake
            check_output_path(output, args.overwrite, extensions=(extension,))
    evaluation = Evaluation(args.task, unmatched=unmatched)
    lesions = {}
    for number, (case, reference_path, prediction_path) in enumerate(pairs, start=1):
        log.info("evaluating %s (%d/%d)", case, number, len(pairs))
        try:
            reference, prediction = read_volume(reference_path), read_volume(prediction_path)
            scores = _metrics(args, reference, prediction, reference_path, prediction_path)
            evaluation.cases.append((case, scores))
            if args.lesions is not None:
                lesions[case] = lesion_matches(reference, prediction, prediction_path)
        except InputError as error:
            if args.reference is not None:
                raise
            print_error(error)
            evaluation.failed.append({"case": case, "error": str(error)})
    if not evaluation.cases:
        raise InputError(f"none of the {len(pairs)} cases in common could be scored", args.prediction_dir)
    print(format_tables(evaluation, WMH_TABLES if args.task == "wmh" else brats_tables(args.lesionwise)))
    if args.csv is not None:
        print(f"wrote {write_csv(evaluation, args.csv, args.overwrite)}")
    if args.json is not None:
        print(f"wrote {write_json(evaluation, args.json, args.overwrite)}")
    if args.lesions is not None:
        print(f"wrote {write_lesion_matches_csv(lesions, args.lesions, args.overwrite)}")
    return 2 if evaluation.failed else 0


def _metrics(
    args: argparse.Namespace, reference, prediction, reference_path: Path, prediction_path: Path
) -> dict[str, float]:
    if args.task == "wmh":
        return evaluate_wmh(reference, prediction, source=prediction_path, reference_source=reference_path)
    return evaluate_brats(
        reference,
        prediction,
        convention=args.labels or AUTO,
        lesionwise=args.lesionwise,
        source=prediction_path,
        reference_source=reference_path,
    )


def case_id(path: Path) -> str:
    """A file's case id: its name without image extension and label suffixes (``_seg``, ``-mask``...).

    A generic name (``wmh.nii.gz``, ``lesions.nii.gz``) says nothing of the case: the folder's name is used.
    """
    name = image_stem(path.name) or path.name
    while _LABEL_SUFFIX.search(name):
        name = _LABEL_SUFFIX.sub("", name)
    return path.resolve().parent.name if name.lower() in LABEL_WORDS else name


def find_cases(folder: Path) -> dict[str, Path]:
    """Case id -> label map in a folder: image files directly in it, or one sub-folder per case."""
    if not folder.is_dir():
        raise InputError("not a folder", folder)
    cases: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            path, case = _label_map_in(entry), entry.name
            if path is None:
                continue
        elif _is_image(entry):
            path, case = entry, case_id(entry)
        else:
            continue
        if case in cases:
            raise InputError(f"two label maps for case {case!r}: {cases[case].name} and {path.name}", folder)
        cases[case] = path
    return cases


def _label_map_in(case_folder: Path) -> Path | None:
    """The case folder's label map: its only image, or its only image named like one (``*_seg``, ``wmh``)."""
    images = [entry for entry in sorted(case_folder.iterdir()) if entry.is_file() and _is_image(entry)]
    if len(images) <= 1:
        return images[0] if images else None
    label_maps = [image for image in images if _looks_like_label_map(image)]
    if len(label_maps) > 1:
        names = ", ".join(image.name for image in label_maps)
        raise InputError(f"holds several label maps ({names}); keep one per case folder", case_folder)
    return label_maps[0] if label_maps else None


def _looks_like_label_map(path: Path) -> bool:
    stem = image_stem(path.name) or ""
    return stem.lower() in LABEL_WORDS or bool(_LABEL_SUFFIX.search(stem))


def _is_image(path: Path) -> bool:
    return image_stem(path.name) is not None


def _check_options(args: argparse.Namespace) -> None:
    single = args.reference is not None or args.prediction is not None
    folders = args.reference_dir is not None or args.prediction_dir is not None
    complete_single = args.reference is not None and args.prediction is not None
    complete_folders = args.reference_dir is not None and args.prediction_dir is not None
    if single == folders or not (complete_single or complete_folders):
        raise InputError("give --reference and --prediction, or --reference-dir and --prediction-dir")
    if args.task == "wmh" and (args.lesionwise or args.labels is not None):
        raise InputError("--labels and --lesionwise apply to --task brats only")
    if args.task == "brats" and args.lesions is not None:
        raise InputError("--lesions applies to --task wmh only (for a tumour, --lesionwise)")
    paths = [path for path in (args.csv, args.json, args.lesions) if path is not None]
    if len({path.resolve() for path in paths}) < len(paths):
        raise InputError("two outputs at one path; choose a path for each")


def _pairs(args: argparse.Namespace) -> tuple[list[tuple[str, Path, Path]], list[dict[str, str]]]:
    """(case, reference, prediction) triples to evaluate, and the cases missing a partner."""
    if args.reference is not None:
        return [(case_id(args.reference), args.reference, args.prediction)], []
    references, predictions = find_cases(args.reference_dir), find_cases(args.prediction_dir)
    common = sorted(references.keys() & predictions.keys())
    if not common:
        raise InputError(
            f"no case ids in common between {args.reference_dir} ({len(references)} cases) "
            f"and {args.prediction_dir} ({len(predictions)} cases)"
        )
    unmatched = [
        {"case": case, "missing": "prediction", "path": str(references[case])}
        for case in sorted(references.keys() - predictions.keys())
    ] + [
        {"case": case, "missing": "reference", "path": str(predictions[case])}
        for case in sorted(predictions.keys() - references.keys())
    ]
    return [(case, references[case], predictions[case]) for case in common], unmatched
