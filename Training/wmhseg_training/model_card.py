"""MODEL_CARD.md: what a bundle was trained on, how well it did, and what it must not be used for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from WMHSegmenterLib.engine.preprocessing import N4_TRIMMED_PERCENTILE

from .config import differences
from .metadata import (
    UNRECORDED_PRECISION,
    run_preprocessing,
    run_validation_settings,
    validation_preprocessing,
    validation_settings,
)

#: Metrics shown in the card's table, per task, with how to read them.
CARD_METRICS = {
    "wmh": [
        ("dice", "Dice (higher is better)"),
        ("hd95", "95th-percentile Hausdorff distance, mm (lower is better)"),
        ("avd", "Absolute volume difference, % (lower is better)"),
        ("lesion_recall", "Lesion recall"),
        ("lesion_f1", "Lesion F1"),
    ],
    "brats": [
        ("wt_dice", "Whole tumor Dice"),
        ("tc_dice", "Tumor core Dice"),
        ("et_dice", "Enhancing tumor Dice"),
        ("wt_hd95", "Whole tumor HD95, mm"),
        ("tc_hd95", "Tumor core HD95, mm"),
        ("et_hd95", "Enhancing tumor HD95, mm"),
    ],
}


def model_card(meta: Mapping[str, Any], notes: str = "") -> str:
    """The card from model.json's facts, then ``notes`` (what only the person who trained it knows)."""
    training, validation = meta["training"], meta["validation"]
    data = training["data"]
    hyper = training["hyperparameters"]
    inputs = ", ".join(spec["description"] for spec in meta["inputs"])
    spacing = ", ".join("input" if s is None else f"{s:g}" for s in meta["preprocessing"]["spacing_xyz_mm"])
    rows = []
    for key, label in CARD_METRICS[meta["task"]]:
        value = validation["metrics"].get(key)
        rows.append(f"| {label} | {'n/a' if value is None else f'{value:.3f}'} |")
    where = (
        "the training cases themselves (fold 'all': optimistic)"
        if validation["on_training_data"]
        else (f"{validation['cases']} held-out case(s) of fold {data['fold']} of {data['folds']}")
    )
    lines = [
        f"# {meta['name']} (`{meta['id']}`, version {meta['version']})",
        "",
        f"A 3D U-Net for the `{meta['task']}` task of WMHSegmenter, retrained with `wmhseg-train`.",
        "",
        "## Intended use",
        "",
        meta["intended_use"],
        "Not a medical device: results must be reviewed by a qualified reader before any clinical use.",
        "",
        "## Inputs and outputs",
        "",
        f"- Inputs: {inputs} (co-registered; the first defines the output grid).",
        f"- Resampled to {spacing} mm (x, y, z){_bias_correction(meta['preprocessing'])} and z-scored "
        "inside the head before the network.",
        f"- Outputs: {', '.join(label['name'] for label in meta['outputs']['labels'])}.",
        "- The network computes in bfloat16 on CPUs that multiply it natively (AVX512-BF16 or AMX), in "
        "float16 on CUDA GPUs, and in float32 elsewhere or with `--no-mixed-precision`.",
        "",
        "## Training data",
        "",
        f"- {data['training_cases']} training case(s), layout `{data['layout']}`, from `{data['root']}`.",
        f"- Validation on {where}.",
        "",
        "## Training",
        "",
        f"- {training['epochs']} epoch(s) of {training['iterations_per_epoch']} iterations, batch "
        f"{hyper['training']['batch_size']}, patch {hyper['training']['patch_size_zyx']} (z, y, x).",
        f"- Loss {hyper['training']['loss']}, optimizer {hyper['training']['optimizer']['name']}, "
        f"schedule {hyper['training']['schedule']['name']}; weights from `{training['checkpoint']}`.",
        f"- Code {training['code_version']}, saved {training['date']}, {training['seconds']:.0f} s on "
        f"{_hardware(training['hardware'])}.",
        *_sessions(training.get("sessions", []), training["epochs"]),
        *_initial_weights(training.get("initial_weights")),
        *_members(training.get("members", [])),
        "",
        f"## Validation (epoch {validation['epoch']})",
        "",
        "| Metric | Mean |",
        "|---|---|",
        *rows,
        "",
        "Scored by the engine's metrics (WMH challenge / BraTS definitions) on each case's original grid, "
        f"the network in {validation.get('precision', UNRECORDED_PRECISION)}.",
        *_validation_caveats(meta),
        "",
        "## Limitations",
        "",
        f"- Trained on {data['training_cases']} case(s): performance on other scanners, field strengths,",
        "  protocols, ages or pathologies is unknown until measured there.",
        "- Expects the modalities above, co-registered; a missing or misregistered modality degrades it.",
        "- Validation numbers from few cases have wide uncertainty.",
        "",
    ]
    if notes.strip():
        lines += [notes.strip(), ""]
    return "\n".join(lines)


def _validation_caveats(meta: Mapping[str, Any]) -> list[str]:
    """What keeps the table from being the bundle's expected accuracy on new cases.

    Epoch selection on the validation cases makes their scores optimistic, and inference settings
    chosen after training (export --inference) were not the ones scored.
    """
    training, validation = meta["training"], meta["validation"]
    caveats = []
    if training["checkpoint"] == "best.pt" and not validation["on_training_data"]:
        caveats.append(
            "- The epoch was chosen as the one scoring best on these same cases, so the table is optimistic."
        )
    scored, run = validation_settings(meta), run_validation_settings(meta)
    changed = [f"{k} {scored.get(k)} -> {v}" for k, v in meta["inference"].items() if scored.get(k) != v]
    if changed:
        caveats.append(
            f"- Scored with the run's inference settings; the bundle's differ: {'; '.join(changed)}."
        )
    elif scored != run:
        since = [f"{k} {run.get(k)} -> {v}" for k, v in scored.items() if run.get(k) != v]
        caveats.append(
            "- Scored again with the bundle's inference settings, chosen after training (the run's own "
            f"validation differed: {'; '.join(since)})."
        )
    caveats += _preprocessing_caveats(meta)
    return ["", *caveats] if caveats else []


def _preprocessing_caveats(meta: Mapping[str, Any]) -> list[str]:
    """A reissue may change the bias correction after training: the network never saw its images."""
    bundle = meta["preprocessing"]
    trained = run_preprocessing(meta)
    scored = validation_preprocessing(meta)
    if bundle == trained and scored == trained:
        return []
    since = "; ".join(
        f"{key} {trained.get(key)} -> {bundle.get(key)}" for key in differences(trained, bundle)
    )
    table = (
        "the table is scored with the bundle's"
        if scored == bundle
        else "the table is scored with " + ("the run's" if scored == trained else "other preprocessing")
    )
    return [
        f"- Preprocessing changed after training ({since}): the network never saw images prepared so; "
        f"{table}."
    ]


def _bias_correction(preprocessing: Mapping[str, Any]) -> str:
    correction = preprocessing.get("bias_correction")
    if correction is None:
        return ""
    fitted = (
        f" (fitted without the brightest {100 - N4_TRIMMED_PERCENTILE:g} %)"
        if correction == "n4_trimmed"
        else ""
    )
    return f", divided by its N4 bias field{fitted},"


def _initial_weights(record: Mapping[str, Any] | None) -> list[str]:
    if not record:
        return []
    return [
        f"- Started from the weights of `{record['id']}` {record['version']} (sha256 "
        f"{record['sha256'][:12]}…), not from random ones: the epochs above come on top of that model's."
    ]


def _members(records: list[Mapping[str, Any]]) -> list[str]:
    """An ensemble's other networks: each a run (its seed and length) or a bundle (its version)."""
    if not records:
        return []
    described = [
        f"`{r['bundle']}` {r['version']} (sha256 {r['sha256'][:12]}…)"
        if "bundle" in r
        else f"run `{r['run']}` ({r['epochs']} epochs, seed {r['seed']}, {r['seconds']:.0f} s, "
        f"`{r['checkpoint']}`)"
        for r in records
    ]
    return [
        f"- An ensemble of {len(records) + 1} networks of this architecture and preprocessing, their "
        f"probabilities averaged: the one trained above, then {'; '.join(described)}. Weights stored as "
        "float16; activations shown are the first network's."
    ]


def _sessions(sessions: list[Mapping[str, Any]], last_epoch: int) -> list[str]:
    """One line per stretch of a resumed run, which may have changed code, hardware or precision."""
    if len(sessions) < 2:
        return []
    ends = [s["first_epoch"] - 1 for s in sessions[1:]] + [last_epoch]
    return [
        f"  - epochs {s['first_epoch']}-{end}: code {s['code_version']}, {_hardware(s['hardware'])}, "
        f"{s['hardware'].get('precision', 'float32')}"
        for s, end in zip(sessions, ends)
        if s["first_epoch"] <= end
    ]


def _hardware(hardware: Mapping[str, Any]) -> str:
    device = hardware.get("gpu") or f"{hardware.get('cpu_count')} CPU cores"
    return f"{hardware.get('processes', 1)} process(es), {device}"
