"""`wmhseg models`: what is installed, for people and for scripts."""

from __future__ import annotations

import json

from ..engine.bundle import list_bundles, model_search_paths

NO_MODEL_MESSAGE = (
    "No trained model is installed yet. Bundles are looked for in: {paths}. "
    "Trained WMH and brain-tumor models will ship in WMHSegmenter/Resources/Models; "
    "Training/ can make one from your own data."
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list the installed model bundles")
    parser.add_argument("--json", action="store_true", help="print a JSON list for scripts")
    parser.set_defaults(func=run)


def run(args) -> int:
    bundles = list_bundles()
    if args.json:
        print(json.dumps([bundle.summary() for bundle in bundles], indent=2))
        return 0
    if not bundles:
        print(NO_MODEL_MESSAGE.format(paths=", ".join(map(str, model_search_paths()))))
        return 0
    print(f"{'id':<20} {'task':<6} {'version':<9} {'inputs':<22} validation")
    for bundle in bundles:
        notes = "" if bundle.trained else "  [untrained]"
        notes += f"  [ensemble of {bundle.members}]" if bundle.members > 1 else ""
        print(
            f"{bundle.id:<20} {bundle.task:<6} {bundle.version:<9} {','.join(bundle.input_names):<22} "
            f"{validation_text(bundle.meta.get('validation', {}))}{notes}"
        )
    return 0


def validation_text(validation: dict) -> str:
    """The Dice scores a bundle was exported with and where they were measured, or "-" if none."""
    metrics = validation.get("metrics", {})
    scores = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items() if k.endswith("dice") and v is not None)
    if not scores:
        return "-"
    where = "training" if validation.get("on_training_data") else "held-out"
    return f"{scores} ({validation.get('cases', '?')} {where} case(s))"
