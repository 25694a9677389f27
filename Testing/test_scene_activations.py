"""What the network sees, in the scene: kept maps, one activation volume on its layer grid, the overlay.

Real MRML (slicer-core), real bundles of freshly initialised networks and the engine predictor; the
slice composite nodes are the ones Slicer's layout (or trame-slicer's views) would create.
"""
# ruff: noqa: F811  (the mrml_scene fixture is imported, then requested by name)

from __future__ import annotations

import tempfile

import numpy as np
import pytest
import vtk
from slicer_scene import mrml_scene, slicer  # noqa: F401

from conftest import blob_volume, oblique_geometry
from WMHSegmenterLib.engine.activations import list_layers
from WMHSegmenterLib.engine.errors import Cancelled, InputError
from WMHSegmenterLib.engine.predictor import Predictor
from WMHSegmenterLib.scene.activations import display_range, view_spec
from WMHSegmenterLib.scene.logic import OUTPUT_ATTRIBUTE, SegmenterLogic, SegmentOptions
from WMHSegmenterLib.scene.nodes import add_volume_node, volume_from_node
from WMHSegmenterLib.scene.segmentation import read_labels

SHAPE = (10, 24, 20)
MODALITIES = ("flair", "t1", "t1ce", "t2")
KEEP = SegmentOptions(device="cpu", activations=True)


@pytest.fixture
def views(mrml_scene):
    """The three slice views' composite nodes, as the application layout creates them."""
    nodes = []
    for name in ("Red", "Yellow", "Green"):
        node = mrml_scene.scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
        node.SetLayoutName(name)
        nodes.append(node)
    return nodes


@pytest.fixture
def wmh_case(mrml_scene, wmh_bundle, views):
    flair = add_volume_node(mrml_scene.scene, blob_volume(SHAPE, oblique_geometry()), "patient1_flair")
    return SegmenterLogic(mrml_scene.scene, list_models=lambda: [wmh_bundle]), wmh_bundle, flair


def engine_activations(bundle, flair_node, layers):
    predictor = Predictor(bundle, device="cpu")
    recorder = predictor.activation_recorder(layers, ["WMH"])
    return predictor.predict({"flair": volume_from_node(flair_node)}, recorder=recorder).activations


def activation_nodes(scene) -> list:
    collection = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    nodes = [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]
    return [node for node in nodes if node.GetAttribute(OUTPUT_ATTRIBUTE) == "activations"]


def world_to_index(node, points_lps: np.ndarray) -> np.ndarray:
    """Continuous (z, y, x) indices of world points in a node's grid, parent transform included."""
    geometry = volume_from_node(node).geometry
    scaled = geometry.direction_matrix * np.asarray(geometry.spacing)
    ijk = np.linalg.solve(scaled, (points_lps - np.asarray(geometry.origin)).T).T
    return ijk[:, ::-1]


@pytest.mark.parametrize("transformed", [False, True], ids=["oblique", "oblique-under-a-transform"])
def test_activation_node_lies_on_the_layer_grid_of_an_oblique_input(wmh_case, mrml_scene, transformed):
    logic, bundle, flair = wmh_case
    if transformed:  # a registration: the maps must land where the transformed input is shown
        transform = mrml_scene.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
        matrix = vtk.vtkMatrix4x4()
        matrix.SetElement(0, 1, -0.2)
        matrix.SetElement(1, 0, 0.2)
        matrix.SetElement(2, 3, 12.5)
        transform.SetMatrixTransformToParent(matrix)
        flair.SetAndObserveTransformNodeID(transform.GetID())
    result = logic.segment(bundle, {"flair": flair}, KEEP)
    node = result.activation_node
    expected = engine_activations(bundle, flair, ["encoder.0"])["encoder.0"]
    shown = volume_from_node(node)
    assert node.GetName() == "patient1_flair activations encoder.0 mean"
    assert node.GetParentTransformNode() is None
    assert shown.geometry.matches(expected.geometry, tolerance=1e-5)
    np.testing.assert_allclose(shown.array, expected.view("mean").array, atol=1e-5)
    # a stride-1 layer's voxel centres are input voxel centres, in the world
    corners = np.array([[0, 0, 0], [s - 1 for s in shown.shape]], dtype=float)
    indices = world_to_index(flair, shown.geometry.index_to_world(corners))
    np.testing.assert_allclose(indices, np.round(indices), atol=1e-4)
    coarse = volume_from_node(logic.show_activations("bottleneck"))
    assert coarse.geometry.spacing == pytest.approx(tuple(2 * s for s in shown.geometry.spacing))
    halfway = shown.geometry.index_to_world(np.array([[0.5, 0.5, 0.5]]))[0]
    assert coarse.geometry.origin == pytest.approx(tuple(halfway), abs=1e-5)
    assert coarse.geometry.direction == pytest.approx(shown.geometry.direction)


def test_refreshing_updates_the_one_node_and_every_slice_view(wmh_case, mrml_scene, views):
    logic, bundle, flair = wmh_case
    result = logic.segment(bundle, {"flair": flair}, KEEP)
    node, count = result.activation_node, mrml_scene.scene.GetNumberOfNodes()
    expected = engine_activations(bundle, flair, ["bottleneck", "decoder.0"])
    for layer, view, options, spec in [
        ("bottleneck", "channel", {"channel": 3}, "channel:3"),
        ("decoder.0", "gradcam", {"class_name": "WMH"}, "gradcam:WMH"),
        ("bottleneck", "pca", {}, "pca"),
        ("decoder.0", "max", {}, "max"),
    ]:
        assert logic.show_activations(layer, view, opacity=0.3, **options) is node
        assert node.GetName() == f"patient1_flair activations {layer} {spec}"
        shown = volume_from_node(node)
        assert shown.shape == expected[layer].features.shape[1:]
        assert shown.geometry.matches(expected[layer].geometry, tolerance=1e-5)
        np.testing.assert_allclose(shown.array, expected[layer].view(spec).array, atol=1e-4)
        display = node.GetDisplayNode()
        assert not display.GetAutoWindowLevel()
        low, high = np.percentile(shown.array, [1, 99])
        assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == pytest.approx((low, high))
    assert mrml_scene.scene.GetNumberOfNodes() == count  # no node pile-up
    color = node.GetDisplayNode().GetColorNode()
    assert color is not None and color.GetID() == "vtkMRMLColorTableNodeIron"  # no Inferno file here
    for composite in views:
        assert composite.GetForegroundVolumeID() == node.GetID()
        assert composite.GetBackgroundVolumeID() == flair.GetID()
        assert composite.GetForegroundOpacity() == pytest.approx(0.3)
    logic.set_activation_opacity(0.8)
    assert [c.GetForegroundOpacity() for c in views] == pytest.approx([0.8] * 3)
    again = logic.segment(bundle, {"flair": flair}, KEEP, segmentation_node=result.segmentation_node)
    assert again.activation_node is node and activation_nodes(mrml_scene.scene) == [node]
    assert node.GetName() == "patient1_flair activations encoder.0 mean"


def test_lists_offered_to_the_panel_match_the_network_and_the_bundle_classes(
    mrml_scene, wmh_bundle, brats_bundle, views
):
    cases = [
        (wmh_bundle, ["WMH"], {"flair": blob_volume(SHAPE, oblique_geometry())}),
        (
            brats_bundle,
            ["whole tumor", "tumor core", "enhancing tumor"],
            {m: blob_volume(SHAPE, oblique_geometry(), seed=i) for i, m in enumerate(MODALITIES)},
        ),
    ]
    for bundle, classes, volumes in cases:
        logic = SegmenterLogic(mrml_scene.scene, list_models=lambda b=bundle: [b])
        inputs = {name: add_volume_node(mrml_scene.scene, v, f"Case_{name}") for name, v in volumes.items()}
        logic.segment(bundle, inputs, KEEP)
        choices = logic.activation_choices()
        assert choices.layers == list_layers(Predictor(bundle, device="cpu").network)
        assert choices.views == ("mean", "max", "pca", "channel", "gradcam")
        assert choices.classes == classes
        for name in classes:
            assert logic.show_activations(choices.layers[-1].name, "gradcam", class_name=name)
        some = SegmentOptions(device="cpu", activations=True, activation_layers=("decoder.0", "encoder.0"))
        logic.segment(bundle, inputs, some)
        assert [info.name for info in logic.activation_choices().layers] == ["encoder.0", "decoder.0"]
        logic.drop_activations()


def test_without_activations_no_node_no_recorder_and_the_same_labels(wmh_case, mrml_scene, views):
    logic, bundle, flair = wmh_case
    job = logic.prepare(bundle, {"flair": flair}, SegmentOptions(device="cpu"))
    prediction = logic.run(job)
    assert job.recorder is None and prediction.activations == {}
    plain = logic.apply(job, prediction)
    assert plain.activation_node is None and activation_nodes(mrml_scene.scene) == []
    assert logic.activation_choices() is None
    with pytest.raises(InputError, match="no activations are kept"):
        logic.show_activations("encoder.0")
    kept = logic.segment(bundle, {"flair": flair}, KEEP)
    np.testing.assert_array_equal(
        read_labels(kept.segmentation_node, flair), read_labels(plain.segmentation_node, flair)
    )
    # re-segmenting without activations removes that segmentation's now stale activation volume
    logic.segment(bundle, {"flair": flair}, SegmentOptions(device="cpu"), kept.segmentation_node)
    assert activation_nodes(mrml_scene.scene) == [] and logic.activation_choices() is None
    assert all(not c.GetForegroundVolumeID() for c in views)


def test_kept_maps_are_released_when_a_new_run_starts_or_they_are_dropped(
    mrml_scene, wmh_bundle, views, tmp_path, monkeypatch
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the engine spills its accumulators
    flair = add_volume_node(mrml_scene.scene, blob_volume(SHAPE, oblique_geometry()), "patient1_flair")
    logic = SegmenterLogic(mrml_scene.scene, list_models=lambda: [wmh_bundle], activation_memory_budget=1000)

    def spilled() -> list:
        return list(tmp_path.glob("wmhseg-activations-*"))

    result = logic.segment(wmh_bundle, {"flair": flair}, KEEP)
    assert len(spilled()) == 1
    assert logic.show_activations("decoder.0", "channel", channel=1) is result.activation_node
    job = logic.prepare(wmh_bundle, {"flair": flair}, SegmentOptions(device="cpu"))
    assert spilled() == [] and logic.activation_choices() is None
    logic.apply(job, logic.run(job))
    logic.segment(wmh_bundle, {"flair": flair}, KEEP)
    assert len(spilled()) == 1
    logic.drop_activations()
    assert spilled() == []
    cancelled = logic.prepare(wmh_bundle, {"flair": flair}, KEEP)
    with pytest.raises(Cancelled):
        logic.run(cancelled, should_stop=lambda: True)
    assert spilled() == [] and cancelled.recorder is None
    removed = logic.prepare(wmh_bundle, {"flair": flair}, KEEP)
    prediction = logic.run(removed)
    mrml_scene.scene.RemoveNode(flair)
    with pytest.raises(InputError, match="removed while segmenting"):
        logic.apply(removed, prediction)
    assert spilled() == []


def test_unknown_layers_are_refused_by_name_before_any_node_is_made(wmh_case, mrml_scene):
    logic, bundle, flair = wmh_case
    options = SegmentOptions(device="cpu", activations=True, activation_layers=("encoder.9",))
    with pytest.raises(InputError, match="unknown layer"):
        logic.segment(bundle, {"flair": flair}, options)
    assert activation_nodes(mrml_scene.scene) == []


def test_view_specs_and_display_window():
    assert [view_spec("mean"), view_spec("channel", 3), view_spec("gradcam", class_name="tumor core")] == [
        "mean",
        "channel:3",
        "gradcam:tumor core",
    ]
    with pytest.raises(InputError, match="choose a class"):
        view_spec("gradcam")
    with pytest.raises(InputError, match="unknown activation view"):
        view_spec("median")
    ramp = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    ramp[0, 0, 0] = 1e9  # one hot voxel must not wash the map out
    assert display_range(ramp) == pytest.approx((10.99, 990.01))
    assert display_range(np.zeros((2, 2, 2), np.float32)) == (0.0, 1.0)
