"""The web page's workflow without a browser: safe paths, case listing, Segment, edits, saving.

Real MRML (slicer-core), real bundles of freshly initialised networks, files the tests write.
"""
# ruff: noqa: F811  (the mrml_scene fixture is imported, then requested by name)

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from slicer_scene import mrml_scene, slicer  # noqa: F401

from conftest import blob_volume, make_bundle, oblique_geometry
from WMHSegmenterLib.engine.errors import Cancelled, InputError
from WMHSegmenterLib.engine.volume import read_volume, write_volume
from WMHSegmenterLib.scene.logic import SegmenterLogic, SegmentOptions
from WMHSegmenterLib.scene.segmentation import oriented_image, read_labels, segment_id
from WMHSegmenterLib.web.cases import case_choices, resolve_case
from WMHSegmenterLib.web.safe_paths import resolve_under
from WMHSegmenterLib.web.saving import free_stem
from WMHSegmenterLib.web.session import UnsavedEditsError, WebSession

SHAPE = (10, 24, 20)
CPU = SegmentOptions(device="cpu")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("models") / "test-wmh", "wmh", seed=2)


@pytest.fixture
def data(tmp_path):
    """A data folder with one WMH case in a sub-folder, a stray file, and a secret outside it."""
    root = tmp_path / "data"
    (root / "site").mkdir(parents=True)
    write_volume(blob_volume(SHAPE, oblique_geometry()), root / "site" / "p1_flair.nii.gz")
    (root / "notes.txt").write_text("not an image")
    (tmp_path / "secret_flair.nii.gz").write_bytes(b"outside the data folder")
    return root


@pytest.fixture
def session(mrml_scene, bundle, data):
    return WebSession(SegmenterLogic(mrml_scene.scene, list_models=lambda: [bundle]), data)


def segment(session, bundle, options=CPU):
    session.start_segment(bundle, options).wait(120)
    return session.finish()


def flip_one_voxel(node, reference, voxel=(0, 0, 0)) -> None:
    """An edit as the segment editor makes it."""
    labels = read_labels(node, reference)
    labels[voxel] = 1 - labels[voxel]
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    image = oriented_image(labels.astype(np.uint8), reference)
    logic.SetBinaryLabelmapToSegment(image, node, segment_id(1), logic.MODE_REPLACE)


@pytest.mark.parametrize(
    "relative",
    ["../secret_flair.nii.gz", "site/../../secret_flair.nii.gz", "/etc/passwd", "", "..\\x", "a\x00b"],
)
def test_paths_that_leave_the_data_folder_are_refused(data, relative):
    with pytest.raises(InputError):
        resolve_under(data, relative)


def test_symlinks_may_point_inside_the_data_folder_but_not_out(data):
    os.symlink(data.parent / "secret_flair.nii.gz", data / "link_flair.nii.gz")
    os.symlink(data.parent, data / "up")
    os.symlink(data / "site", data / "alias")
    for escaping in ("link_flair.nii.gz", "up/secret_flair.nii.gz"):
        with pytest.raises(InputError, match="outside the data folder"):
            resolve_under(data, escaping)
    assert resolve_under(data, "alias/p1_flair.nii.gz") == (data / "site" / "p1_flair.nii.gz").resolve()
    assert resolve_under(data, "site/new.nii.gz") == (data / "site" / "new.nii.gz").resolve()


def test_cases_listed_are_the_sample_and_complete_cases_inside_the_folder(data, bundle):
    os.symlink(data.parent / "secret_flair.nii.gz", data / "link_flair.nii.gz")
    choices = case_choices(data.resolve(), bundle)
    assert choices == [
        {"title": "Sample: patient26", "value": "sample:wmh"},
        {"title": "p1", "value": "site/p1_flair.nii.gz"},
    ]
    with pytest.raises(InputError, match="outside the data folder"):
        resolve_case(data.resolve(), bundle, "link_flair.nii.gz")
    with pytest.raises(InputError, match="FLAIR image by name"):
        resolve_case(data.resolve(), bundle, "notes.txt")
    with pytest.raises(InputError, match="no sample 'brats'"):
        resolve_case(data.resolve(), bundle, "sample:brats")


def test_a_brats_case_missing_a_modality_is_not_listed_and_cannot_be_opened(tmp_path, brats_bundle):
    for modality in ("flair", "t1", "t1ce"):
        write_volume(blob_volume(SHAPE), tmp_path / f"Brats_9_{modality}.nii.gz")
    assert [c["value"] for c in case_choices(tmp_path, brats_bundle)] == ["sample:brats"]
    with pytest.raises(InputError, match="no t2 image"):
        resolve_case(tmp_path, brats_bundle, "Brats_9_flair.nii.gz")


def test_segment_edit_and_save_next_to_the_case_without_overwriting(session, bundle, data):
    case = session.open_case(bundle, "site/p1_flair.nii.gz")
    assert case.id == "p1" and case.reference.GetName() == "p1_flair"
    result = segment(session, bundle)
    node = result.segmentation_node
    assert session.segmentation is node
    assert session.statistics()[0]["voxels"] == result.statistics[0].voxels

    (first,) = session.save().values()
    edited = read_labels(node, case.reference) == 1
    edited[5, 2:6, 2:6] = ~edited[5, 2:6, 2:6]
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    image = oriented_image(edited.astype(np.uint8), case.reference)
    logic.SetBinaryLabelmapToSegment(image, node, segment_id(1), logic.MODE_REPLACE)
    assert session.statistics()[0]["voxels"] == int(edited.sum())
    (second,) = session.save().values()

    folder = data / "site"
    assert [p.name for p in first] == ["p1_seg.seg.nrrd", "p1_seg.nii.gz", "p1_seg.csv", "p1_seg_lesions.csv"]
    assert [p.name for p in second] == [
        "p1_seg_1.seg.nrrd",
        "p1_seg_1.nii.gz",
        "p1_seg_1.csv",
        "p1_seg_1_lesions.csv",
    ]
    with open(folder / "p1_seg_1.csv") as handle:
        (lesion,) = csv.DictReader(handle)
    assert (lesion["label"], int(lesion["voxels"])) == ("1", int(edited.sum()))  # the corrected volume
    with open(folder / "p1_seg_1_lesions.csv") as handle:
        lesions = list(csv.DictReader(handle))
    pieces = ndimage.label(edited, structure=np.ones((3, 3, 3)))[1]  # the corrected mask's, one by one
    assert len(lesions) == pieces and sum(int(row["voxels"]) for row in lesions) == int(edited.sum())
    saved = read_volume(folder / "p1_seg_1.nii.gz")
    assert saved.geometry.matches(read_volume(folder / "p1_flair.nii.gz").geometry)
    np.testing.assert_array_equal(saved.array, edited.astype(np.uint8))
    segmentation_file = sitk.ReadImage(str(folder / "p1_seg_1.seg.nrrd"))
    assert segmentation_file.GetSize() == SHAPE[::-1]
    np.testing.assert_allclose(segmentation_file.GetOrigin(), saved.geometry.origin, atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(segmentation_file), saved.array)


def test_re_segmenting_an_edited_result_keeps_the_edits(session, bundle):
    case = session.open_case(bundle, "site/p1_flair.nii.gz")
    first = segment(session, bundle).segmentation_node
    flip_one_voxel(first, case.reference)
    second = segment(session, bundle).segmentation_node
    assert second is not first and session.segmentation is second
    assert "Your edits stay in" in session.note


def test_opening_a_case_over_unsaved_edits_is_refused_until_saved_or_discarded(session, bundle):
    case = session.open_case(bundle, "site/p1_flair.nii.gz")
    node = segment(session, bundle).segmentation_node
    assert session.unsaved_edits() == []  # a fresh result is no one's work yet
    flip_one_voxel(node, case.reference)
    with pytest.raises(InputError, match=f"'{node.GetName()}' has edits that are not saved"):
        session.open_case(bundle, "site/p1_flair.nii.gz")
    assert session.case is case and session.logic.scene.IsNodePresent(node)
    session.save()
    assert session.unsaved_edits() == []
    flip_one_voxel(node, case.reference, voxel=(1, 1, 1))  # edited again after saving
    assert session.unsaved_edits() == [node.GetName()]
    with pytest.raises(UnsavedEditsError) as refused:
        session.open_case(bundle, "site/p1_flair.nii.gz")
    flip_one_voxel(node, case.reference, voxel=(2, 2, 2))  # an edit after the warning is not discarded
    with pytest.raises(UnsavedEditsError):
        session.open_case(bundle, "site/p1_flair.nii.gz", discard=refused.value.unsaved)
    flip_one_voxel(node, case.reference, voxel=(2, 2, 2))  # undone: back to what the warning named
    reopened = session.open_case(bundle, "site/p1_flair.nii.gz", discard=refused.value.unsaved)
    assert reopened is not case and not session.logic.scene.IsNodePresent(node)


def test_edits_kept_beside_a_new_result_stop_a_case_from_being_opened_and_are_saved_with_it(session, bundle):
    case = session.open_case(bundle, "site/p1_flair.nii.gz")
    edited = segment(session, bundle).segmentation_node
    flip_one_voxel(edited, case.reference)
    assert segment(session, bundle).segmentation_node is not edited  # the edits stay where they were
    assert session.unsaved_edits() == [edited.GetName()]
    with pytest.raises(InputError, match="not saved"):
        session.open_case(bundle, "site/p1_flair.nii.gz")
    saved = session.save()
    assert list(saved) == [session.segmentation.GetName(), edited.GetName()]
    current, kept = (paths[1] for paths in saved.values())  # the .nii.gz of each
    np.testing.assert_array_equal(read_volume(kept).array, read_labels(edited, case.reference))
    np.testing.assert_array_equal(
        read_volume(current).array, read_labels(session.segmentation, case.reference)
    )
    session.open_case(bundle, "site/p1_flair.nii.gz")


def test_cancel_stops_the_run_and_leaves_the_scene_alone(session, bundle):
    session.open_case(bundle, "site/p1_flair.nii.gz")
    run = session.start_segment(bundle, CPU)
    session.cancel()
    assert run.wait(120)
    with pytest.raises(Cancelled):
        session.finish()
    assert session.segmentation is None and not session.running
    assert session.logic.scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 0


def test_a_bad_file_is_reported_and_the_open_case_stays(session, bundle, data):
    case = session.open_case(bundle, "site/p1_flair.nii.gz")
    (data / "broken_flair.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(InputError):
        session.open_case(bundle, "broken_flair.nii.gz")
    assert session.case is case and session.logic.scene.IsNodePresent(case.reference)


def test_free_stem_skips_names_taken_by_either_file(tmp_path):
    assert free_stem(tmp_path, "c_seg") == "c_seg"
    (tmp_path / "c_seg.nii.gz").touch()
    (tmp_path / "c_seg_1.seg.nrrd").touch()
    assert free_stem(tmp_path, "c_seg") == "c_seg_2"


def test_a_symlink_loop_is_refused_not_crashed_on(data):
    os.symlink(data / "loop_b", data / "loop_a")
    os.symlink(data / "loop_a", data / "loop_b")
    with pytest.raises(InputError):
        resolve_under(data, "loop_a/x_flair.nii.gz")
