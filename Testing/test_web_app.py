"""The page's handlers in-process: overlays, probability and activation foregrounds, statistics after edits.

Builds the real WebApp (trame-slicer's SlicerApp, offscreen views, segment editor) without a browser or
a listening socket, and changes its state as the page's widgets would. The browser itself is driven in
test_web_e2e.py; this covers the choices that test does not click through, on a small BraTS case.
"""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import pytest
import vtk

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")  # before any view exists

from slicer_scene import distances_to_slices, slicer  # noqa: E402

from conftest import blob_volume, make_bundle  # noqa: E402
from WMHSegmenterLib.engine.bundle import find_bundle  # noqa: E402
from WMHSegmenterLib.engine.volume import write_volume  # noqa: E402
from WMHSegmenterLib.scene.logic import REGIONS_ROLE  # noqa: E402
from WMHSegmenterLib.scene.segmentation import oriented_image, read_labels, segment_id  # noqa: E402
from WMHSegmenterLib.web.app import WebApp  # noqa: E402

SHAPE = (12, 32, 28)
BRATS_MODEL = "brats-glioma"


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)


@pytest.fixture(scope="module")
def app(tmp_path_factory, loop):
    models, data = tmp_path_factory.mktemp("models"), tmp_path_factory.mktemp("data")
    bundles = [
        make_bundle(models / "test-brats", "brats"),
        make_bundle(models / "test-wmh", "wmh"),
        find_bundle(BRATS_MODEL),
    ]
    for seed, modality in enumerate(("flair", "t1", "t1ce", "t2")):
        write_volume(blob_volume(SHAPE, seed=seed), data / f"Brats_7_{modality}.nii.gz")
    app = WebApp(data, server="test_web_app", list_models=lambda: bundles)
    app.server.state.ready()  # what a page connecting does: from now on changes run their callbacks
    change(app, model_id="test-brats")
    assert app.panel.data.cases[1] == {"title": "Brats_7", "value": "Brats_7_flair.nii.gz"}
    change(app, case_key="Brats_7_flair.nii.gz", keep_activations=True)
    app.open_case()
    assert "Opened Brats_7" in app.panel.data.message
    app.segment()
    settle(loop, app)
    assert "Done in" in app.panel.data.message, app.panel.data.message
    return app


def change(app: WebApp, **values) -> None:
    """Set panel state as the page does: the change callbacks run when the state is flushed."""
    with app.server.state:
        for key, value in values.items():
            setattr(app.panel.data, key, value)


def settle(loop, app: WebApp, seconds: float = 1.0) -> None:
    """Run the server's loop until Segment has finished and pending refreshes have run."""

    async def idle():
        deadline = time.monotonic() + 120
        while app.panel.data.running and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(seconds)

    loop.run_until_complete(idle())


def paint_edema(segmentation, reference, edema: np.ndarray) -> None:
    """The edema segment made ``edema``, as the segment editor's paint and erase leave it."""
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    image = oriented_image(edema.astype(np.uint8), reference)
    logic.SetBinaryLabelmapToSegment(image, segmentation, segment_id(2), logic.MODE_REPLACE)


def foregrounds(app: WebApp) -> set:
    collection = app.slicer.scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    return {
        collection.GetItemAsObject(i).GetForegroundVolumeID() for i in range(collection.GetNumberOfItems())
    }


def test_activation_maps_are_the_first_foreground_and_every_view_can_be_shown(app):
    data, logic = app.panel.data, app.session.logic
    assert data.foreground == "activations" and data.views[:3] == ["mean", "max", "pca"]
    assert [f["value"] for f in data.foregrounds] == [
        "none",
        "probability:0",
        "probability:1",
        "probability:2",
        "activations",
    ]
    node = logic.activation_node(app.session.segmentation)
    for view, extra in [
        ("max", {}),
        ("channel", {"channel": 2}),
        ("gradcam", {"class_name": data.classes[-1]}),
    ]:
        change(app, layer=data.layers[-1]["value"], view=view, **extra)
        assert data.message_type != "error", data.message
        assert foregrounds(app) == {node.GetID()}
        assert data.layers[-1]["value"] in node.GetName() and view in node.GetName()
    change(app, channel=10_000)
    assert data.channel == data.layers[-1]["channels"] - 1


def test_probability_maps_and_none_as_foreground(app):
    probability = app.session.logic.probability_nodes(app.session.segmentation)[1]
    change(app, foreground="probability:1", foreground_opacity=0.3)
    assert foregrounds(app) == {probability.GetID()}
    collection = app.slicer.scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    assert collection.GetItemAsObject(0).GetForegroundOpacity() == pytest.approx(0.3)
    change(app, foreground="none")
    assert foregrounds(app) == {None}


def test_regions_overlay_takes_the_editor_display_settings(app):
    segmentation = app.session.segmentation
    change(app, overlay="regions")
    regions = segmentation.GetNodeReference(REGIONS_ROLE)
    assert regions.GetDisplayNode().GetVisibility() and not segmentation.GetDisplayNode().GetVisibility()
    with app.server.state:
        app.page.display.data.opacity_mode = 2  # outline only
    assert not regions.GetDisplayNode().GetVisibility2DFill()
    assert regions.GetDisplayNode().GetVisibility2DOutline()
    change(app, overlay="labels")
    assert segmentation.GetDisplayNode().GetVisibility() and not regions.GetDisplayNode().GetVisibility()
    assert (
        app.page.display.data.show_3d and app.slicer.segmentation_editor.is_surface_representation_enabled()
    )


def test_statistics_follow_edits(app, loop):
    segmentation, reference = app.session.segmentation, app.session.case.reference
    edited = read_labels(segmentation, reference) == 2
    edited[4:8, 10:20, 10:20] = True
    paint_edema(segmentation, reference, edited)
    settle(loop, app)
    edema = next(row for row in app.panel.data.statistics if row["label"] == "2")
    assert edema["voxels"] == int((read_labels(segmentation, reference) == 2).sum())
    assert app.panel.data.count_heading == "Foci"  # a tumour's pieces; a WMH's are lesions


def test_cancel_and_save(app, loop):
    app.segment()
    app.session.cancel()
    settle(loop, app, seconds=0.1)
    assert app.panel.data.message == "Cancelled." and not app.panel.data.running
    app.save()
    assert (
        app.panel.data.message
        == "Saved Brats_7_seg.seg.nrrd, Brats_7_seg.nii.gz, Brats_7_seg.csv, Brats_7_seg_lesions.csv in the "
        "data folder."
    )


def test_open_over_unsaved_edits_warns_first_and_discards_on_the_second_press(app, loop):
    segmentation, reference = app.session.segmentation, app.session.case.reference
    edema = read_labels(segmentation, reference) == 2
    edema[0, 0, 0] = not edema[0, 0, 0]
    paint_edema(segmentation, reference, edema)
    settle(loop, app)
    app.page.open_clicked()  # the Open button
    assert app.panel.data.message.endswith(
        "edits that are not saved: Save keeps them; Open again discards them"
    )
    assert app.slicer.scene.IsNodePresent(segmentation)
    app.page.open_clicked()
    assert "Opened Brats_7" in app.panel.data.message
    assert not app.slicer.scene.IsNodePresent(segmentation)


def test_save_names_the_file_pair_holding_edits_kept_beside_a_newer_result(app, loop):
    app.segment()
    settle(loop, app)
    edited, reference = app.session.segmentation, app.session.case.reference
    edema = read_labels(edited, reference) == 2
    edema[0, 0, 0] = not edema[0, 0, 0]
    paint_edema(edited, reference, edema)
    app.segment()  # the edits stay in the first segmentation
    settle(loop, app)
    assert app.session.segmentation is not edited
    app.page.save_clicked()
    message = app.panel.data.message
    assert (
        message.startswith("Saved Brats_7_seg")
        and f"; your edits of '{edited.GetName()}' as Brats_7_seg" in message
    )


def test_the_region_the_shipped_models_cleaning_removed_is_outlined_and_can_be_kept(app, loop):
    """The shipped BraTS model removes a 2.4 ml region from its sample (test_bundled_models): the page
    says so, lists it, offers the overlay, shows it outlined beside the labels, and keeps it when asked
    (all removed regions, and on a second run the one chosen)."""
    data = app.panel.data
    change(app, model_id=BRATS_MODEL, keep_activations=False, keep_probabilities=False)
    change(app, case_key="sample:brats")
    app.open_case()
    app.segment()
    settle(loop, app)
    assert "Removed by cleaning" in data.message, data.message
    assert data.removed_regions == [{"title": "1: 2.37 ml (Peritumoral edema)", "value": 0}]
    segmentation = app.session.segmentation
    removed = app.session.logic.removed_node(segmentation)
    assert not removed.GetDisplayNode().GetVisibility()
    # the removed region's centre, read back from the node here; the views start at the grid's corner
    reference = app.session.case.reference
    ijk_to_ras = vtk.vtkMatrix4x4()
    reference.GetIJKToRASMatrix(ijk_to_ras)
    centre_zyx = np.argwhere(read_labels(removed, reference) > 0).mean(axis=0)  # one region here
    centre = np.array(ijk_to_ras.MultiplyPoint([*centre_zyx[::-1], 1.0])[:3])
    slicer.vtkMRMLSliceNode.JumpAllSlices(app.slicer.scene, *ijk_to_ras.MultiplyPoint([0, 0, 0, 1])[:3])
    assert min(distances_to_slices(app.slicer.scene, centre)) > 10
    change(app, overlay="removed")
    assert removed.GetDisplayNode().GetVisibility() and segmentation.GetDisplayNode().GetVisibility()
    assert max(distances_to_slices(app.slicer.scene, centre)) <= 1.0  # every slice view passes through it
    assert removed.GetDisplayNode().GetVisibility2DOutline()
    assert not removed.GetDisplayNode().GetVisibility2DFill()
    change(app, overlay="labels")
    assert not removed.GetDisplayNode().GetVisibility()

    region = read_labels(removed, reference)
    before = read_labels(segmentation, reference)
    app.page.keep_removed_clicked()  # the button
    assert "Kept the removed regions" in data.message and not data.removed_regions, data.message
    after = read_labels(segmentation, reference)
    np.testing.assert_array_equal(after, np.where(region > 0, region, before))
    whole = next(row for row in data.statistics if row["name"] == "Whole tumor (WT)")
    assert whole["voxels"] == np.count_nonzero(after)
    # the kept region is a second focus now: the list follows, and choosing it takes the views there
    assert [item["title"].split(" (")[0] for item in data.lesions] == ["1: 26.84 ml", "2: 2.37 ml"]
    slicer.vtkMRMLSliceNode.JumpAllSlices(app.slicer.scene, *ijk_to_ras.MultiplyPoint([0, 0, 0, 1])[:3])
    change(app, lesion=1)
    assert max(distances_to_slices(app.slicer.scene, centre)) <= 1.0

    app.segment()  # a new run (the kept region was an edit): keep the one region chosen
    settle(loop, app)
    segmentation = app.session.segmentation
    change(app, overlay="removed", removed_region=0)
    app.page.keep_removed_region_clicked()  # the button
    assert "Kept the removed region in" in data.message and not data.removed_regions, data.message
    np.testing.assert_array_equal(read_labels(segmentation, reference), after)
    assert data.overlay == "labels" and app.session.logic.removed_node(segmentation) is None
    assert app.session.logic.removed_node(segmentation) is None
