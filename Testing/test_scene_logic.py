"""The Segment workflow on real MRML with real (freshly initialised) bundles and the engine predictor."""
# ruff: noqa: F811  (the mrml_scene fixture is imported, then requested by name)

from __future__ import annotations

import numpy as np
import pytest
from slicer_scene import add_slice_views, distances_to_slices, mrml_scene, slicer, vtk  # noqa: F401

from conftest import blob_volume, make_bundle, oblique_geometry
from WMHSegmenterLib.engine.errors import Cancelled, InputError
from WMHSegmenterLib.engine.predictor import Predictor
from WMHSegmenterLib.engine.quantify import label_statistics
from WMHSegmenterLib.engine.samples import sample_inputs
from WMHSegmenterLib.engine.volume import read_volume
from WMHSegmenterLib.scene.background import BackgroundRun
from WMHSegmenterLib.scene.logic import (
    EditedSegmentationError,
    SegmenterLogic,
    SegmentOptions,
    default_case_id,
)
from WMHSegmenterLib.scene.nodes import add_volume_node, volume_from_node
from WMHSegmenterLib.scene.segmentation import oriented_image, read_labels, segment_id

SHAPE = (10, 24, 20)
MODALITIES = ("flair", "t1", "t1ce", "t2")


@pytest.fixture
def wmh_case(mrml_scene, wmh_bundle):
    flair = add_volume_node(mrml_scene.scene, blob_volume(SHAPE, oblique_geometry()), "patient1_flair")
    return SegmenterLogic(mrml_scene.scene, list_models=lambda: [wmh_bundle]), wmh_bundle, flair


@pytest.fixture
def brats_case(mrml_scene, brats_bundle):
    nodes = {
        name: add_volume_node(
            mrml_scene.scene, blob_volume(SHAPE, oblique_geometry(), seed=i), f"Brats_7_{name}"
        )
        for i, name in enumerate(MODALITIES)
    }
    return SegmenterLogic(mrml_scene.scene, list_models=lambda: [brats_bundle]), brats_bundle, nodes


def toggle(node, reference, value: int, region: np.ndarray) -> np.ndarray:
    """Edit as the Segment Editor does: paint where ``value`` is absent in ``region``, erase where present.

    A freshly initialised network may label anything, so toggling is the edit sure to change something.
    """
    segment = read_labels(node, reference) == value
    edited = segment ^ region
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    image = oriented_image(edited.astype(np.uint8), reference)
    logic.SetBinaryLabelmapToSegment(image, node, segment_id(value), logic.MODE_REPLACE)
    return edited


def test_segment_matches_the_engine_and_lies_on_the_input_grid(wmh_case):
    logic, bundle, flair = wmh_case
    result = logic.segment(bundle, {"flair": flair}, SegmentOptions(device="cpu", probabilities=True))
    engine = Predictor(bundle, device="cpu").predict({"flair": volume_from_node(flair)})
    node = result.segmentation_node
    np.testing.assert_array_equal(read_labels(node, flair), engine.labels.array)
    assert logic.labels(node).geometry == volume_from_node(flair).geometry
    assert node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole()) is flair
    segment = node.GetSegmentation().GetSegment(segment_id(1))
    assert segment.GetName() == bundle.labels[0].name
    np.testing.assert_allclose(segment.GetColor(), bundle.labels[0].color)
    (probability,) = result.probability_nodes
    on_grid = volume_from_node(probability)
    assert on_grid.geometry == volume_from_node(flair).geometry
    np.testing.assert_allclose(on_grid.array, engine.probabilities.array, atol=1e-6)


def test_statistics_table_equals_engine_quantify_also_after_editing(wmh_case):
    logic, bundle, flair = wmh_case
    result = logic.segment(bundle, {"flair": flair}, SegmentOptions(device="cpu"))
    names = {info.value: info.name for info in bundle.labels}
    assert_table_equals(
        result.statistics_node, label_statistics(logic.labels(result.segmentation_node), names)
    )
    region = np.zeros(SHAPE, dtype=bool)
    region[2:4, 3:6, 3:6] = True
    region[7, 15:17, 12] = True
    lesion = toggle(result.segmentation_node, flair, 1, region)
    rows = logic.update_statistics(result.segmentation_node)
    edited = logic.labels(result.segmentation_node)
    np.testing.assert_array_equal(edited.array == 1, lesion)
    assert rows == label_statistics(edited, names)
    assert_table_equals(result.statistics_node, rows)


def test_brats_statistics_add_whole_tumor_core_and_enhancing_volumes_that_follow_edits(brats_case):
    logic, bundle, nodes = brats_case
    result = logic.segment(bundle, nodes, SegmentOptions(device="cpu"))
    node = result.segmentation_node
    edema = np.zeros(SHAPE, dtype=bool)
    edema[1:9, 2:22, 2:18] = True
    toggle(node, nodes["flair"], 2, edema)
    rows = logic.update_statistics(node)
    labels = logic.labels(node).array
    regions = {row.name: (row.label, row.voxels) for row in rows[3:]}
    assert regions == {
        "Whole tumor (WT)": ("1+2+4", np.count_nonzero(labels)),
        "Tumor core (TC)": ("1+4", np.count_nonzero(np.isin(labels, (1, 4)))),
        "Enhancing tumor (ET)": ("4", np.count_nonzero(labels == 4)),
    }
    assert_table_equals(result.statistics_node, rows, count_column="Foci")


def assert_table_equals(table_node, rows, count_column: str = "Lesions") -> None:
    table = table_node.GetTable()
    assert table.GetNumberOfRows() == len(rows)
    for index, row in enumerate(rows):
        assert table.GetColumnByName("Label").GetValue(index) == row.label
        assert table.GetColumnByName("Segment").GetValue(index) == row.name
        assert table.GetColumnByName("Voxels").GetValue(index) == row.voxels
        assert table.GetColumnByName("Volume").GetValue(index) == row.volume_ml
        assert table.GetColumnByName(count_column).GetValue(index) == row.components
    assert table_node.GetColumnUnitLabel("Volume") == "ml"


def test_resegmenting_never_overwrites_edits_silently(wmh_case):
    logic, bundle, flair = wmh_case
    options = SegmentOptions(device="cpu", probabilities=True)
    first = logic.segment(bundle, {"flair": flair}, options)
    node = first.segmentation_node
    again = logic.segment(bundle, {"flair": flair}, options, segmentation_node=node)
    assert again.segmentation_node is node and again.statistics_node is first.statistics_node
    assert again.probability_nodes == first.probability_nodes
    edit = np.zeros(SHAPE, dtype=bool)
    edit[5, 5:8, 5:8] = True
    toggle(node, flair, 1, edit)
    edited = read_labels(node, flair)
    with pytest.raises(EditedSegmentationError) as raised:
        logic.prepare(bundle, {"flair": flair}, options, segmentation_node=node)
    assert raised.value.node is node
    np.testing.assert_array_equal(read_labels(node, flair), edited)
    elsewhere = logic.segment(bundle, {"flair": flair}, options)
    assert elsewhere.segmentation_node is not node
    np.testing.assert_array_equal(read_labels(node, flair), edited)
    overwritten = logic.segment(
        bundle, {"flair": flair}, options, segmentation_node=node, overwrite_edits=True
    )
    np.testing.assert_array_equal(read_labels(node, flair), read_labels(elsewhere.segmentation_node, flair))
    assert overwritten.segmentation_node is node


def test_edits_made_while_the_network_runs_are_kept(wmh_case):
    logic, bundle, flair = wmh_case
    node = logic.segment(bundle, {"flair": flair}, SegmentOptions(device="cpu")).segmentation_node
    job = logic.prepare(bundle, {"flair": flair}, SegmentOptions(device="cpu"), segmentation_node=node)
    prediction = logic.run(job)
    region = np.zeros(SHAPE, dtype=bool)
    region[1:3, 1:3, 1:3] = True
    toggle(node, flair, 1, region)
    edited = read_labels(node, flair)
    result = logic.apply(job, prediction)
    assert result.segmentation_node is not node
    np.testing.assert_array_equal(read_labels(node, flair), edited)


def test_an_input_removed_while_the_network_runs_is_reported(wmh_case, mrml_scene):
    logic, bundle, flair = wmh_case
    job = logic.prepare(bundle, {"flair": flair}, SegmentOptions(device="cpu"))
    prediction = logic.run(job)
    mrml_scene.scene.RemoveNode(flair)
    with pytest.raises(InputError, match="flair volume was removed"):
        logic.apply(job, prediction)


def test_probability_maps_are_removed_when_no_longer_asked_for(wmh_case, mrml_scene):
    logic, bundle, flair = wmh_case
    first = logic.segment(bundle, {"flair": flair}, SegmentOptions(device="cpu", probabilities=True))
    (probability,) = first.probability_nodes
    logic.segment(bundle, {"flair": flair}, SegmentOptions(device="cpu"), first.segmentation_node)
    assert mrml_scene.scene.GetNodeByID(probability.GetID()) is None
    assert logic.probability_nodes(first.segmentation_node) == []


def test_brats_inputs_fill_themselves_from_names_per_case(brats_case, mrml_scene):
    logic, bundle, nodes = brats_case
    other = {
        name: add_volume_node(mrml_scene.scene, blob_volume(SHAPE), f"Brats_8_{name}")
        for name in ("flair", "t1")
    }
    add_volume_node(mrml_scene.scene, blob_volume(SHAPE), "unrelated")
    matches = logic.match_inputs(bundle)
    assert matches["flair"] is other["flair"] and matches["t1"] is other["t1"]
    assert matches["t1ce"] is nodes["t1ce"] and matches["t2"] is nodes["t2"]
    mrml_scene.scene.RemoveNode(other["flair"])
    assert logic.match_inputs(bundle) == nodes


def test_brats_inputs_named_by_modality_alone_fill_themselves(mrml_scene, brats_bundle):
    # volumes loaded from a folder per case: FLAIR.nii.gz, T1.nii.gz, T1CE.nii.gz, T2.nii.gz
    nodes = {
        name: add_volume_node(mrml_scene.scene, blob_volume(SHAPE, seed=i), name.upper())
        for i, name in enumerate(MODALITIES)
    }
    logic = SegmenterLogic(mrml_scene.scene, list_models=lambda: [brats_bundle])
    assert logic.match_inputs(brats_bundle) == nodes


def test_brats_overlay_toggles_between_labels_and_regions(brats_case, mrml_scene):
    logic, bundle, nodes = brats_case
    result = logic.segment(bundle, nodes, SegmentOptions(device="cpu"))
    node = result.segmentation_node
    core = np.zeros(SHAPE, dtype=bool)
    core[4:6, 10:14, 8:12] = True
    toggle(node, nodes["flair"], 1, core)
    regions = logic.show_overlay(node, "regions")
    assert regions is not node
    assert not node.GetDisplayNode().GetVisibility() and regions.GetDisplayNode().GetVisibility()
    assert [regions.GetSegmentation().GetNthSegment(i).GetName() for i in range(3)] == [
        "Whole tumor",
        "Tumor core",
        "Enhancing tumor",
    ]
    assert logic.show_overlay(node, "labels") is node
    assert node.GetDisplayNode().GetVisibility() and not regions.GetDisplayNode().GetVisibility()
    assert logic.show_overlay(node, "regions") is regions
    with pytest.raises(ValueError):
        logic.show_overlay(node, "heatmap")


def segment_with_a_removed_region(mrml_scene, tmp_path):
    """A BraTS result whose cleaning removed a 5.1 ml core region and a 1.5 ml edema one (crafted
    probabilities through the engine's own finish step), with the logic, bundle, input nodes and the
    probabilities used."""
    bundle = make_bundle(tmp_path / "brats", "brats", min_island_fraction=1.0, island_measure="confidence")
    logic = SegmenterLogic(mrml_scene.scene, list_models=lambda: [bundle])
    shape = (40, 40, 40)
    nodes = {
        name: add_volume_node(mrml_scene.scene, blob_volume(shape, oblique_geometry(), seed=i), f"B_{name}")
        for i, name in enumerate(MODALITIES)
    }
    job = logic.prepare(bundle, nodes, SegmentOptions(device="cpu"))
    reference = job.volumes["flair"]
    probabilities = np.zeros((3, *shape), np.float32)  # whole tumour, core, enhancing
    probabilities[0, 2:17, 2:17, 2:17] = 0.95  # kept: the island the network is surest of
    probabilities[:2, 25:37, 25:37, 25:37] = 0.7  # removed: core, 5.1 ml on the oblique grid
    probabilities[0, 28:36, 2:10, 28:36] = 0.7  # removed: edema, 1.5 ml
    prediction = Predictor(bundle, device="cpu").finish(
        probabilities, reference.geometry, reference, np.ones(shape, bool)
    )
    return logic, bundle, nodes, logic.apply(job, prediction), probabilities


def test_regions_the_cleaning_removed_lie_hidden_beside_the_result_until_outlined(mrml_scene, tmp_path):
    logic, bundle, nodes, result, probabilities = segment_with_a_removed_region(mrml_scene, tmp_path)
    shape = probabilities.shape[1:]
    node, removed = result.segmentation_node, result.removed_node
    expected = np.zeros(shape, np.uint8)
    expected[25:37, 25:37, 25:37] = 1
    expected[28:36, 2:10, 28:36] = 2
    np.testing.assert_array_equal(read_labels(removed, nodes["flair"]), expected)
    assert removed.GetName() == f"{node.GetName()} removed by cleaning"
    assert not removed.GetDisplayNode().GetVisibility() and node.GetDisplayNode().GetVisibility()
    assert "Note: the island cleaning removed 2 regions of 5.1 and 1.5 ml" in result.message(bundle)
    assert result.message(bundle).endswith("The overlay 'Removed by cleaning' outlines the removed regions.")
    assert logic.show_overlay(node, "removed") is removed
    display = removed.GetDisplayNode()
    assert display.GetVisibility() and node.GetDisplayNode().GetVisibility()
    assert display.GetVisibility2DOutline() and not display.GetVisibility2DFill()
    assert logic.show_overlay(node, "labels") is node and not display.GetVisibility()

    probabilities[:, 25:37] = 0.0  # a run that removes nothing takes the earlier removal away
    probabilities[:, 28:36] = 0.0
    job = logic.prepare(bundle, nodes, SegmentOptions(device="cpu"), node)
    reference = job.volumes["flair"]
    finished = Predictor(bundle, device="cpu").finish(
        probabilities, reference.geometry, reference, np.ones(shape, bool)
    )
    again = logic.apply(job, finished)
    assert again.segmentation_node is node and again.removed_node is None
    assert mrml_scene.scene.GetNodeByID(removed.GetID()) is None and logic.removed_node(node) is None
    assert "Removed by cleaning" not in again.message(bundle)
    with pytest.raises(InputError, match="removed no region of 1 ml or more"):
        logic.show_overlay(node, "removed")


def test_kept_removed_regions_join_the_result_with_their_labels_as_an_edit(mrml_scene, tmp_path):
    logic, bundle, nodes, result, _ = segment_with_a_removed_region(mrml_scene, tmp_path)
    node, flair = result.segmentation_node, nodes["flair"]
    before = read_labels(node, flair)
    painted = before.copy()
    painted[30:33, 30:33, 30:33] = 4  # the reader already labelled part of the region otherwise
    toggle(node, flair, 4, painted == 4)
    rows = logic.keep_removed(node)

    expected = painted.copy()
    core = np.zeros_like(before, bool)
    core[25:37, 25:37, 25:37] = True
    expected[core & (painted == 0)] = 1  # the removed core, where the reader left it empty
    expected[28:36, 2:10, 28:36] = 2  # the removed edema
    np.testing.assert_array_equal(read_labels(node, flair), expected)
    removed_name = f"{node.GetName()} removed by cleaning"
    assert logic.removed_node(node) is None
    assert mrml_scene.scene.GetNodesByName(removed_name).GetNumberOfItems() == 0
    core_row = next(row for row in rows if row.label == "1")
    assert core_row.voxels == np.count_nonzero(expected == 1)
    with pytest.raises(EditedSegmentationError):  # kept regions are an edit: a re-run asks first
        logic.prepare(bundle, nodes, SegmentOptions(device="cpu"), node)
    with pytest.raises(InputError, match="removed nothing to keep"):
        logic.keep_removed(node)


def test_removed_regions_are_listed_largest_first_and_each_can_be_looked_at_and_kept_alone(
    mrml_scene, tmp_path
):
    logic, _, nodes, result, _ = segment_with_a_removed_region(mrml_scene, tmp_path)
    add_slice_views(mrml_scene.scene)
    node, flair = result.segmentation_node, nodes["flair"]
    before = read_labels(node, flair)
    regions = logic.removed_regions(node)
    assert logic.island_titles(node, regions) == [
        "1: 5.13 ml (Necrotic and non-enhancing tumor core)",
        "2: 1.52 ml (Peritumoral edema)",
    ]
    edema = np.zeros_like(before, bool)
    edema[28:36, 2:10, 28:36] = True
    ijk_to_ras = vtk.vtkMatrix4x4()
    flair.GetIJKToRASMatrix(ijk_to_ras)
    centre = np.array(ijk_to_ras.MultiplyPoint([*np.argwhere(edema).mean(axis=0)[::-1], 1.0])[:3])
    np.testing.assert_allclose(regions[1].centre_ras_mm, centre, atol=1e-6)
    logic.show_overlay(node, "removed")  # the largest first
    assert max(distances_to_slices(mrml_scene.scene, centre)) > 5
    assert logic.show_overlay(node, "removed", removed_region=1) is result.removed_node
    assert max(distances_to_slices(mrml_scene.scene, centre)) <= 1e-6  # every slice view through it
    with pytest.raises(InputError, match="has 2 removed region\\(s\\) left, no region 3"):
        logic.show_overlay(node, "removed", removed_region=2)

    logic.keep_removed(node, region=1)  # the edema only
    np.testing.assert_array_equal(read_labels(node, flair), np.where(edema, 2, before))
    assert logic.island_titles(node, logic.removed_regions(node)) == [
        "1: 5.13 ml (Necrotic and non-enhancing tumor core)"
    ]
    assert not read_labels(result.removed_node, flair)[edema].any()
    with pytest.raises(InputError, match="has 1 removed region\\(s\\) left, no region 2"):
        logic.keep_removed(node, region=1)

    logic.keep_removed(node, region=0)  # the last one: nothing is left to look at
    assert logic.removed_node(node) is None and logic.removed_regions(node) == []
    assert np.count_nonzero(read_labels(node, flair) == 1) == np.count_nonzero(before == 1) + 12**3


def test_lesions_of_the_result_as_edited_are_listed_largest_first_and_the_views_go_to_each(
    mrml_scene, tmp_path
):
    logic, _, nodes, result, _ = segment_with_a_removed_region(mrml_scene, tmp_path)
    add_slice_views(mrml_scene.scene)
    node, flair = result.segmentation_node, nodes["flair"]
    assert logic.island_titles(node, logic.lesions(node)) == ["1: 10.02 ml (Peritumoral edema)"]
    logic.keep_removed(node, region=1)  # an edit: the kept edema becomes the second lesion
    found = logic.lesions(node)
    assert logic.island_titles(node, found) == [
        "1: 10.02 ml (Peritumoral edema)",
        "2: 1.52 ml (Peritumoral edema)",
    ]
    ijk_to_ras = vtk.vtkMatrix4x4()
    flair.GetIJKToRASMatrix(ijk_to_ras)
    for lesion, box in enumerate([np.s_[2:17, 2:17, 2:17], np.s_[28:36, 2:10, 28:36]]):
        inside = np.zeros(flair.GetImageData().GetDimensions()[::-1], bool)
        inside[box] = True
        centre = np.array(ijk_to_ras.MultiplyPoint([*np.argwhere(inside).mean(axis=0)[::-1], 1.0])[:3])
        assert logic.show_lesion(node, lesion) == found[lesion]
        assert max(distances_to_slices(mrml_scene.scene, centre)) <= 1e-6
    with pytest.raises(InputError, match="has 2 lesion\\(s\\), no lesion 3"):
        logic.show_lesion(node, 2)


def test_regions_are_refused_for_wmh(wmh_case):
    logic, bundle, flair = wmh_case
    result = logic.segment(bundle, {"flair": flair}, SegmentOptions(device="cpu"))
    with pytest.raises(InputError, match="brain-tumor"):
        logic.show_overlay(result.segmentation_node, "regions")


def test_bad_requests_fail_before_any_computation(brats_case, mrml_scene):
    logic, bundle, nodes = brats_case
    with pytest.raises(InputError, match="T1 with contrast"):
        logic.prepare(bundle, {**nodes, "t1ce": None})
    with pytest.raises(InputError, match="same volume"):
        logic.prepare(bundle, {**nodes, "t2": nodes["t1"]})
    empty = add_volume_node(
        mrml_scene.scene, blob_volume(SHAPE).with_array(np.zeros(SHAPE, np.float32)), "zero"
    )
    with pytest.raises(InputError, match="all zeros"):
        logic.prepare(bundle, {**nodes, "t2": empty})


def test_background_run_reports_progress_and_cancels(wmh_case):
    logic, bundle, flair = wmh_case
    job = logic.prepare(bundle, {"flair": flair}, SegmentOptions(device="cpu"))
    stages = []

    def work(progress, should_stop):
        return logic.run(
            job, lambda stage, fraction: (stages.append(stage), progress(stage, fraction)), should_stop
        )

    run = BackgroundRun(work).start()
    assert run.wait(60)
    result = logic.apply(job, run.result())
    assert run.fraction == 1.0 and "network" in stages and "postprocess" in stages
    assert result.segmentation_node.GetSegmentation().GetNumberOfSegments() == 1

    cancelled = BackgroundRun(lambda progress, should_stop: logic.run(job, progress, should_stop))
    cancelled.cancel()
    cancelled.start()
    assert cancelled.wait(60)
    with pytest.raises(Cancelled):
        cancelled.result()


def test_save_training_case_writes_inputs_and_corrected_labels(brats_case, tmp_path):
    logic, bundle, nodes = brats_case
    node = logic.segment(bundle, nodes, SegmentOptions(device="cpu")).segmentation_node
    edema = np.zeros(SHAPE, dtype=bool)
    edema[1:3, 2:5, 2:5] = True
    edema = toggle(node, nodes["flair"], 2, edema)
    paths = logic.save_training_case(node, tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        [f"Brats_7_{m}.nii.gz" for m in MODALITIES] + ["Brats_7_seg.nii.gz"]
    )
    labels = read_volume(tmp_path / "Brats_7_seg.nii.gz")
    np.testing.assert_array_equal(labels.array, read_labels(node, nodes["flair"]))
    assert labels.geometry.matches(volume_from_node(nodes["flair"]).geometry, tolerance=1e-5)
    t2 = read_volume(tmp_path / "Brats_7_t2.nii.gz")
    np.testing.assert_array_equal(t2.array, volume_from_node(nodes["t2"]).array)
    with pytest.raises(InputError, match="exists"):
        logic.save_training_case(node, tmp_path)


def test_saved_training_case_reads_back_in_training_with_the_corrected_labels(brats_case, tmp_path):
    from wmhseg_training.datasets import check_case_files, checked_labels, find_cases

    logic, bundle, nodes = brats_case
    node = logic.segment(bundle, nodes, SegmentOptions(device="cpu")).segmentation_node
    before = read_labels(node, nodes["flair"])
    edema = np.zeros(SHAPE, dtype=bool)
    edema[1:3, 2:5, 2:5] = True
    toggle(node, nodes["flair"], 2, edema)
    (tmp_path / "Brats_7").mkdir()
    logic.save_training_case(node, tmp_path / "Brats_7")
    data = {"layout": "brats", "root": str(tmp_path), "label_file": None, "image_files": None}
    (case,) = find_cases(data, "brats", list(MODALITIES))
    check_case_files(case)
    assert case.id == "Brats_7" and list(case.images) == list(MODALITIES)
    labels = checked_labels(read_volume(case.label).array, "brats", case.label)
    np.testing.assert_array_equal(labels, read_labels(node, nodes["flair"]))
    assert not np.array_equal(labels, before)  # the correction, not the network's output, was saved


def test_default_case_id_drops_the_modality_suffix():
    assert default_case_id("Brats18_TCIA01_425_1_flair", "flair") == "Brats18_TCIA01_425_1"
    assert default_case_id("patient26-FLAIR", "flair") == "patient26"
    assert default_case_id("scan", "flair") == "scan"


def test_installed_models_are_listed_per_task(models_env, mrml_scene):
    logic = SegmenterLogic(mrml_scene.scene)
    brats = logic.models("brats")
    assert "test-brats" in [b.id for b in brats] and all(b.task == "brats" for b in brats)
    assert "test-brats" not in [b.id for b in logic.models("wmh")]


def test_real_sample_case_loaded_by_slicer_is_found_and_read_like_the_engine(mrml_scene, brats_bundle):
    case, files = sample_inputs("brats")
    volumes = mrml_scene.module_logics["Volumes"]
    loaded = {
        name: volumes.AddArchetypeVolume(str(path), path.name.split(".")[0]) for name, path in files.items()
    }
    logic = SegmenterLogic(mrml_scene.scene, list_models=lambda: [brats_bundle])
    assert logic.match_inputs(brats_bundle) == loaded
    flair, from_file = volume_from_node(loaded["flair"]), read_volume(files["flair"])
    assert flair.geometry.matches(from_file.geometry, tolerance=1e-6)
    np.testing.assert_array_equal(flair.array, from_file.array)
    assert default_case_id(loaded["flair"].GetName(), "flair") == case
