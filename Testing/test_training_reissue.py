"""`wmhseg-train reissue`: a shipped bundle's weights under a new version with a later inference setting."""

from __future__ import annotations

import json
import shutil

from wmhseg_training.cli import main
from wmhseg_training.config import DEFAULTS
from WMHSegmenterLib.engine.bundle import ModelBundle, find_bundle, sha256_of


def test_reissue_keeps_weights_and_training_record_and_changes_only_the_named_setting(tmp_path, capsys):
    source = find_bundle("wmh-flair")
    out = tmp_path / "wmh-flair"
    notes = tmp_path / "notes.md"
    notes.write_text("## Brain mask\nChosen on drawn-head composites.\n")
    code = main(
        ["reissue", str(source.folder), "--out", str(out), "--version", "9.9.9"]
        + ["--inference", "brain_mask=true", "--card-notes", str(notes)]
    )
    assert code == 0, capsys.readouterr().err
    reissued = ModelBundle(out)
    assert sha256_of(reissued.weights_path) == sha256_of(source.weights_path)
    assert reissued.meta["version"] == "9.9.9"
    assert reissued.inference == {**DEFAULTS["inference"], **source.inference, "brain_mask": True}
    assert reissued.meta["training"] == source.meta["training"]
    assert reissued.meta["reissued_from"] == {"id": "wmh-flair", "version": source.meta["version"]}
    card = (out / "MODEL_CARD.md").read_text()
    assert "Chosen on drawn-head composites." in card
    assert "brain_mask" in card  # the card says the bundle's settings differ from the run's
    reissued.load_network()  # sha256 checked


def test_reissue_refuses_an_unknown_setting_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "bundle"
    code = main(
        ["reissue", str(find_bundle("wmh-flair").folder), "--out", str(out), "--version", "1.0.0"]
        + ["--inference", "brain_masc=true"]
    )
    assert code == 2
    assert "brain_masc" in capsys.readouterr().err
    assert not out.exists()


def test_reissue_does_not_replace_an_existing_bundle_unless_asked(tmp_path, capsys):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "model.json").write_text("{}")
    code = main(["reissue", str(find_bundle("wmh-flair").folder), "--out", str(out), "--version", "1.0.0"])
    assert code == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "model.json").read_text() == "{}"


def test_reissue_turns_keeping_the_largest_island_into_a_fraction_the_user_can_change(tmp_path, capsys):
    source = tmp_path / "old"
    shutil.copytree(find_bundle("brats-glioma").folder, source)
    meta = json.loads((source / "model.json").read_text())
    meta["inference"].pop("min_island_fraction", None)
    meta["inference"]["largest_component_only"] = True  # as bundles made before the fraction say it
    (source / "model.json").write_text(json.dumps(meta))
    out = tmp_path / "brats-glioma"
    code = main(
        ["reissue", str(source), "--out", str(out), "--version", "9.9.9"]
        + ["--inference", "min_island_fraction=0.8"]
    )
    assert code == 0, capsys.readouterr().err
    inference = ModelBundle(out).inference
    assert (inference["min_island_fraction"], inference["largest_component_only"]) == (0.8, False)
