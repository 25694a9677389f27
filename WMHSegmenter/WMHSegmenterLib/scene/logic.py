"""The Segment workflow on a scene: volume nodes -> engine predictor -> segmentation, probabilities, table.

A run has three steps so the panel can keep Slicer responsive: :meth:`SegmenterLogic.prepare`
copies the inputs out of the scene (main thread), :meth:`SegmenterLogic.run` predicts (any thread,
no MRML), :meth:`SegmenterLogic.apply` writes the results into the scene (main thread).
:meth:`SegmenterLogic.segment` does all three in a row for scripts and tests.

A segmentation the user has edited is never overwritten silently: :meth:`prepare` raises
:class:`EditedSegmentationError` unless asked to overwrite, and the panel asks the user.

With ``SegmentOptions.activations`` the same prediction pass captures feature maps; the logic keeps
one run's maps (see :mod:`.activations`) until the next run starts or :meth:`drop_activations`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import slicer

from ..engine.bundle import ModelBundle, list_bundles
from ..engine.cases import match_case_id
from ..engine.errors import InputError
from ..engine.postprocess import NOTED_REMOVED_ML, islands_largest_first
from ..engine.quantify import (
    Island,
    LabelStatistics,
    bundle_statistics,
    islands,
    label_statistics,
    summary,
    task_regions,
)
from ..engine.volume import Volume, check_image, check_output_path, write_volume
from .activations import (
    DEFAULT_OPACITY,
    ActivationChoices,
    KeptActivations,
    fill_activation_node,
    make_recorder,
    set_foreground_opacity,
    show_in_slice_views,
    view_spec,
)
from .nodes import set_array_on_grid_of, volume_from_node, world_geometry
from .segmentation import (
    add_to_segments,
    edited_fingerprint,
    erase_from_segments,
    is_edited,
    label_names,
    read_labels,
    write_labels,
    write_regions,
)
from .statistics import fill_statistics_table

ATTRIBUTE = "WMHSegmenter"
MODEL_ATTRIBUTE = f"{ATTRIBUTE}.ModelId"
TASK_ATTRIBUTE = f"{ATTRIBUTE}.Task"
INPUTS_ATTRIBUTE = f"{ATTRIBUTE}.Inputs"
OUTPUT_ATTRIBUTE = f"{ATTRIBUTE}.Output"
INPUT_ROLE = f"{ATTRIBUTE}.Input."
PROBABILITY_ROLE = f"{ATTRIBUTE}.Probability"
STATISTICS_ROLE = f"{ATTRIBUTE}.Statistics"
REGIONS_ROLE = f"{ATTRIBUTE}.Regions"
REMOVED_ROLE = f"{ATTRIBUTE}.Removed"
ACTIVATION_ROLE = f"{ATTRIBUTE}.Activation"
OVERLAYS = ("labels", "regions", "removed")
#: How the numbered lists are counted in a refusal, and how one item is named.
LESION_NOUNS = ("lesion(s)", "lesion")
REMOVED_REGION_NOUNS = ("removed region(s) left", "region")

PredictorFactory = Callable[[ModelBundle, str, bool], Any]


def engine_predictor(bundle: ModelBundle, device: str, mirror: bool):
    """The engine's Predictor; imported here because it brings torch, which loads only when work starts."""
    from ..engine.predictor import Predictor

    return Predictor(bundle, device=device, mirror=mirror)


class EditedSegmentationError(Exception):
    """Re-segmenting into ``node`` would overwrite the user's edits."""

    def __init__(self, node: slicer.vtkMRMLSegmentationNode):
        self.node = node
        super().__init__(
            f"Segmentation '{node.GetName()}' has been edited since it was segmented (or holds segments "
            "WMHSegmenter did not write). Overwrite it, or write the new result to a new segmentation."
        )


@dataclass(frozen=True)
class SegmentOptions:
    device: str = "auto"
    mirror: bool = False
    probabilities: bool = False
    activations: bool = False
    #: blocks to capture (see engine.activations.list_layers); empty: every block
    activation_layers: tuple[str, ...] = ()


@dataclass
class Job:
    """A run's inputs, copied out of the scene so the network can run off the main thread."""

    bundle: ModelBundle
    input_nodes: dict[str, slicer.vtkMRMLScalarVolumeNode]
    volumes: dict[str, Volume]
    options: SegmentOptions
    segmentation_node: slicer.vtkMRMLSegmentationNode | None = None
    overwrite_edits: bool = False
    #: input name -> the volume's name, for messages about an input (read on the main thread)
    sources: dict[str, str] = field(default_factory=dict)
    #: set by :meth:`SegmenterLogic.run` when activations were captured; the logic takes it over in apply
    recorder: Any = None

    def close_recorder(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None

    @property
    def reference(self) -> slicer.vtkMRMLScalarVolumeNode:
        """The first modality: outputs lie on its voxel grid."""
        return self.input_nodes[self.bundle.input_names[0]]


@dataclass
class SegmentResult:
    segmentation_node: slicer.vtkMRMLSegmentationNode
    statistics_node: slicer.vtkMRMLTableNode
    statistics: list[LabelStatistics]
    probability_nodes: list[slicer.vtkMRMLScalarVolumeNode] = field(default_factory=list)
    activation_node: slicer.vtkMRMLScalarVolumeNode | None = None
    #: the regions the island cleaning removed that a note names, hidden until the "removed" overlay
    removed_node: slicer.vtkMRMLSegmentationNode | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: what the user should check although the case ran, and may want to know (engine.predictor.Prediction)
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def message(self, bundle: ModelBundle) -> str:
        """What Segment reports, in Slicer and in the browser: the time, warnings first (the most
        important), the statistics, whether the model is untrained, then notes."""
        text = f"Done in {sum(self.timings.values()):.1f} s."
        text += "".join(f" Warning: {line}." for line in self.warnings)
        text += f" {summary(self.statistics, bundle.task)}."
        if not bundle.trained:
            text += " Untrained test model: the result is meaningless."
        text += "".join(f" Note: {line}." for line in self.notes)
        if self.removed_node is not None:
            text += " The overlay 'Removed by cleaning' outlines the removed regions."
        return text


class SegmenterLogic:
    """Segment volumes of ``scene`` with model bundles; collaborators are passed in, not looked up."""

    def __init__(
        self,
        scene: slicer.vtkMRMLScene,
        list_models: Callable[[], list[ModelBundle]] = list_bundles,
        make_predictor: PredictorFactory = engine_predictor,
        activation_memory_budget: int | None = None,
    ):
        """``activation_memory_budget``: bytes of feature maps kept in RAM before the engine spills
        them to temporary files (default: the engine's)."""
        self.scene = scene
        self.list_models = list_models
        self.make_predictor = make_predictor
        self.activation_memory_budget = activation_memory_budget
        self._predictors: dict[tuple, Any] = {}
        self._activations: KeptActivations | None = None

    def models(self, task: str) -> list[ModelBundle]:
        return [bundle for bundle in self.list_models() if bundle.task == task]

    def match_inputs(self, bundle: ModelBundle) -> dict[str, slicer.vtkMRMLScalarVolumeNode | None]:
        """Loaded volumes for each input by the bundle's name patterns (``*`` stands for the case).

        The most recently loaded match of the first modality wins; the others are taken from the
        same case when they can be, so loading a second patient does not mix cases.
        """
        candidates = [
            node
            for node in self._nodes("vtkMRMLScalarVolumeNode")
            if not node.IsA("vtkMRMLLabelMapVolumeNode") and node.GetAttribute(OUTPUT_ATTRIBUTE) is None
        ]

        def latest(patterns):
            return next(
                (n for n in reversed(candidates) if match_case_id(n.GetName(), patterns) is not None), None
            )

        reference_spec, *other_specs = bundle.inputs
        reference = latest(reference_spec.patterns)
        matches = {reference_spec.name: reference}
        case = None if reference is None else match_case_id(reference.GetName(), reference_spec.patterns)
        for spec in other_specs:
            same_case = latest([p.replace("*", case) for p in spec.patterns]) if case else None
            matches[spec.name] = same_case if same_case is not None else latest(spec.patterns)
        return matches

    def prepare(
        self,
        bundle: ModelBundle,
        inputs: Mapping[str, slicer.vtkMRMLScalarVolumeNode | None],
        options: SegmentOptions = SegmentOptions(),
        segmentation_node: slicer.vtkMRMLSegmentationNode | None = None,
        overwrite_edits: bool = False,
    ) -> Job:
        """Check the request and copy the input voxels; raises before any computation is wasted."""
        missing = [spec.description for spec in bundle.inputs if inputs.get(spec.name) is None]
        if missing:
            raise InputError(f"choose a volume for {', '.join(missing)}")
        nodes = {name: inputs[name] for name in bundle.input_names}
        ids = [node.GetID() for node in nodes.values()]
        if len(set(ids)) != len(ids):
            raise InputError("the same volume is selected for two inputs")
        if segmentation_node is not None and not overwrite_edits:
            reference = (
                self.input_node(segmentation_node, bundle.input_names[0]) or nodes[bundle.input_names[0]]
            )
            if is_edited(segmentation_node, reference):
                raise EditedSegmentationError(segmentation_node)
        volumes = {}
        for name, node in nodes.items():
            volume = volume_from_node(node)
            volumes[name] = check_image(
                Volume(volume.array.astype(np.float32), volume.geometry), node.GetName()
            )
        self.drop_activations()  # a new run: never hold two runs' maps at once
        sources = {name: node.GetName() for name, node in nodes.items()}
        return Job(bundle, nodes, volumes, options, segmentation_node, overwrite_edits, sources)

    def run(
        self,
        job: Job,
        progress: Callable[[str, float], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        """Predict (no MRML access: safe in a worker thread). Loaded networks are kept for re-runs.

        With activations on, the recorder rides along in the same pass and is left on ``job.recorder``.
        """
        key = (
            str(job.bundle.folder),
            job.bundle.meta["weights"].get("sha256"),
            job.options.device,
            job.options.mirror,
        )
        if key not in self._predictors:
            self._predictors[key] = self.make_predictor(job.bundle, job.options.device, job.options.mirror)
        predictor = self._predictors[key]
        if job.options.activations:
            job.recorder = make_recorder(
                predictor, job.options.activation_layers, self.activation_memory_budget
            )
        try:
            return predictor.predict(
                job.volumes,
                progress=progress,
                should_stop=should_stop,
                sources=job.sources,
                recorder=job.recorder,
            )
        except BaseException:
            job.close_recorder()
            raise

    def apply(self, job: Job, prediction) -> SegmentResult:
        """Write a prediction into the scene: segmentation, statistics table, probability maps, activations.

        The scene may have changed while the network ran: a removed input is an error, and a target
        segmentation edited meanwhile is left alone (the result goes to a new node).
        """
        try:
            return self._apply(job, prediction)
        finally:
            job.close_recorder()  # unless the logic kept it: then it is closed by drop_activations

    def _apply(self, job: Job, prediction) -> SegmentResult:
        reference, bundle = job.reference, job.bundle
        removed = [name for name, node in job.input_nodes.items() if not self.scene.IsNodePresent(node)]
        if removed:
            raise InputError(f"the {', '.join(removed)} volume was removed while segmenting")
        node = job.segmentation_node
        if node is not None and not self.scene.IsNodePresent(node):
            node = None
        if (
            node is not None
            and not job.overwrite_edits
            and is_edited(node, self.input_node(node) or reference)
        ):
            node = None
        if node is None:
            name = self.scene.GenerateUniqueName(f"{reference.GetName()} segmentation")
            node = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        write_labels(node, prediction.labels.array, reference, bundle.labels)
        node.SetAttribute(MODEL_ATTRIBUTE, bundle.id)
        node.SetAttribute(TASK_ATTRIBUTE, bundle.task)
        node.SetAttribute(INPUTS_ATTRIBUTE, ",".join(bundle.input_names))
        for name, input_node in job.input_nodes.items():
            node.SetNodeReferenceID(INPUT_ROLE + name, input_node.GetID())
        probability_nodes = self._write_probabilities(node, job, prediction)
        activation_node = self._keep_activations(node, job, prediction)
        removed_node = self._write_removed(node, job, prediction)
        regions = node.GetNodeReference(REGIONS_ROLE)
        if regions is not None:
            write_regions(regions, prediction.labels.array, reference)
        self.show_overlay(node, "labels")
        rows = bundle_statistics(Volume(prediction.labels.array, world_geometry(reference)), bundle)
        table = self._statistics_node(node)
        fill_statistics_table(table, rows, bundle.task)
        return SegmentResult(
            node,
            table,
            rows,
            probability_nodes,
            activation_node=activation_node,
            removed_node=removed_node,
            timings=dict(prediction.timings),
            warnings=prediction.warnings,
            notes=prediction.notes,
        )

    def segment(
        self,
        bundle: ModelBundle,
        inputs: Mapping[str, slicer.vtkMRMLScalarVolumeNode | None],
        options: SegmentOptions = SegmentOptions(),
        segmentation_node: slicer.vtkMRMLSegmentationNode | None = None,
        overwrite_edits: bool = False,
        progress: Callable[[str, float], None] | None = None,
    ) -> SegmentResult:
        """prepare, run and apply in the calling thread (scripts, tests, the module's self-test)."""
        job = self.prepare(bundle, inputs, options, segmentation_node, overwrite_edits)
        return self.apply(job, self.run(job, progress))

    def input_node(
        self, segmentation_node: slicer.vtkMRMLSegmentationNode, name: str | None = None
    ) -> slicer.vtkMRMLScalarVolumeNode | None:
        """The volume a segmentation was made from (``name``: which modality; default the reference)."""
        names = (segmentation_node.GetAttribute(INPUTS_ATTRIBUTE) or "").split(",")
        return segmentation_node.GetNodeReference(INPUT_ROLE + (name or names[0]))

    def edited_segmentations(self) -> list[tuple[slicer.vtkMRMLSegmentationNode, str]]:
        """The results in the scene the user has changed since they were written, each with the
        fingerprint of its labels now (to compare with the version last saved)."""
        edited = []
        for node in self._nodes("vtkMRMLSegmentationNode"):
            reference = self.input_node(node)
            if node.GetAttribute(MODEL_ATTRIBUTE) is None or reference is None:
                continue
            labels = edited_fingerprint(node, reference)
            if labels is not None:
                edited.append((node, labels))
        return edited

    def labels(self, segmentation_node: slicer.vtkMRMLSegmentationNode) -> Volume:
        """The segmentation as it is now (edits included) as a label volume on its input's grid."""
        reference = self._require_reference(segmentation_node)
        return Volume(read_labels(segmentation_node, reference), world_geometry(reference))

    def task(self, segmentation_node: slicer.vtkMRMLSegmentationNode) -> str:
        """The task of the model that made the segmentation ("" for one made elsewhere)."""
        return segmentation_node.GetAttribute(TASK_ATTRIBUTE) or ""

    def update_statistics(
        self, segmentation_node: slicer.vtkMRMLSegmentationNode, labels: Volume | None = None
    ) -> list[LabelStatistics]:
        """Recompute the statistics table after the user edited the segmentation (``labels``: its
        :meth:`labels`, when the caller has just read them)."""
        regions = task_regions(self.task(segmentation_node))
        if labels is None:
            labels = self.labels(segmentation_node)
        rows = label_statistics(labels, label_names(segmentation_node), regions)
        fill_statistics_table(self._statistics_node(segmentation_node), rows, self.task(segmentation_node))
        return rows

    def statistics_node(
        self, segmentation_node: slicer.vtkMRMLSegmentationNode
    ) -> slicer.vtkMRMLTableNode | None:
        return segmentation_node.GetNodeReference(STATISTICS_ROLE)

    def probability_nodes(self, segmentation_node: slicer.vtkMRMLSegmentationNode) -> list:
        count = segmentation_node.GetNumberOfNodeReferences(PROBABILITY_ROLE)
        return [segmentation_node.GetNthNodeReference(PROBABILITY_ROLE, i) for i in range(count)]

    def activation_node(
        self, segmentation_node: slicer.vtkMRMLSegmentationNode
    ) -> slicer.vtkMRMLScalarVolumeNode | None:
        return segmentation_node.GetNodeReference(ACTIVATION_ROLE)

    def activation_choices(self) -> ActivationChoices | None:
        """Layers, views and classes the last run kept, for the panel's selectors; None if none kept."""
        return None if self._activations is None else self._activations.choices()

    def show_activations(
        self,
        layer: str,
        view: str = "mean",
        channel: int = 0,
        class_name: str | None = None,
        opacity: float = DEFAULT_OPACITY,
    ) -> slicer.vtkMRMLScalarVolumeNode:
        """Put one view of a kept layer into the segmentation's single activation volume and overlay it.

        ``view`` is one of :data:`.activations.VIEWS`; ``channel`` and ``class_name`` serve the
        ``channel`` and ``gradcam`` views. The same node is refilled and renamed each time.
        """
        kept = self._activations
        if kept is None:
            raise InputError("no activations are kept: segment with 'Keep activations' on")
        segmentation_node = kept.segmentation_node
        if not self.scene.IsNodePresent(segmentation_node) or not self.scene.IsNodePresent(kept.reference):
            self.drop_activations()
            raise InputError("the segmentation or input the activations belong to was removed")
        spec = view_spec(view, channel, class_name)
        node = self.activation_node(segmentation_node)
        if node is None:
            node = self.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
            node.SetAttribute(OUTPUT_ATTRIBUTE, "activations")
            segmentation_node.SetNodeReferenceID(ACTIVATION_ROLE, node.GetID())
        name = f"{kept.reference.GetName()} activations {layer} {spec}"
        fill_activation_node(node, kept.view(layer, spec), name)
        show_in_slice_views(self.scene, node, opacity, background=kept.reference)
        return node

    def set_activation_opacity(self, opacity: float) -> None:
        set_foreground_opacity(self.scene, opacity)

    def drop_activations(self) -> None:
        """Release the kept maps (and their spilled files); the activation volume stays as it is."""
        if self._activations is not None:
            self._activations.close()
            self._activations = None

    def removed_node(
        self, segmentation_node: slicer.vtkMRMLSegmentationNode
    ) -> slicer.vtkMRMLSegmentationNode | None:
        return segmentation_node.GetNodeReference(REMOVED_ROLE)

    def removed_regions(self, segmentation_node: slicer.vtkMRMLSegmentationNode) -> list[Island]:
        """The regions the island cleaning removed that are still left to keep, largest first (the
        order :meth:`show_overlay` and :meth:`keep_removed` number them in, from 0)."""
        removed = self.removed_node(segmentation_node)
        return [] if removed is None else self._islands(removed, segmentation_node)

    def lesions(self, segmentation_node: slicer.vtkMRMLSegmentationNode) -> list[Island]:
        """The separate lesions (a tumour's foci) of the segmentation as it is now, edits included,
        largest first (the order :meth:`show_lesion` numbers them in, from 0)."""
        return self._islands(segmentation_node, segmentation_node)

    def island_titles(
        self, segmentation_node: slicer.vtkMRMLSegmentationNode, found: list[Island]
    ) -> list[str]:
        """How the panels list lesions or removed regions: "1: 2.40 ml (Edema)", by the segments' names."""
        names = label_names(segmentation_node)
        return [
            f"{number}: {island.volume_ml:.2f} ml ({', '.join(names.get(v, str(v)) for v in island.labels)})"
            for number, island in enumerate(found, start=1)
        ]

    def show_lesion(self, segmentation_node: slicer.vtkMRMLSegmentationNode, lesion: int) -> Island:
        """Move every slice view through lesion ``lesion`` (numbered as :meth:`lesions` lists them)."""
        return self._slices_through(segmentation_node, self.lesions(segmentation_node), lesion, LESION_NOUNS)

    def keep_removed(
        self, segmentation_node: slicer.vtkMRMLSegmentationNode, region: int | None = None
    ) -> list[LabelStatistics]:
        """Put what the island cleaning removed back into the segmentation, each region with the label
        it had, where the reader left those voxels empty; an edit like any other (a re-run asks first).
        ``region``: only that one (numbered as :meth:`removed_regions` lists them); the others stay to
        look at. Returns the statistics recomputed with them."""
        removed = self._require_removed(segmentation_node, "nothing to keep")
        reference = self._require_reference(segmentation_node)
        labels = read_labels(removed, reference)
        if region is None:
            kept = labels > 0
        else:
            numbered, sizes = islands_largest_first(labels)
            _require_numbered(segmentation_node, region, len(sizes), REMOVED_REGION_NOUNS)
            kept = numbered == region + 1
        add_to_segments(segmentation_node, np.where(kept, labels, 0), reference)
        if kept.sum() == np.count_nonzero(labels):
            self._drop_removed(segmentation_node)
            self.show_overlay(segmentation_node, "labels")
        else:
            erase_from_segments(removed, kept, reference)
        return self.update_statistics(segmentation_node)

    def show_overlay(
        self, segmentation_node: slicer.vtkMRMLSegmentationNode, overlay: str, removed_region: int = 0
    ):
        """Show tumor labels (NCR/ED/ET), the nested regions (WT/TC/ET) made from the current labels, or
        the labels with the regions the island cleaning removed outlined beside them (the slice views
        then pass through ``removed_region``, numbered as :meth:`removed_regions` lists them: by
        default the largest).

        Returns the node now shown (for "removed", the removed regions). Regions are recomputed each
        time, so they follow the user's edits.
        """
        if overlay not in OVERLAYS:
            raise ValueError(f"overlay must be one of {OVERLAYS}, got {overlay!r}")
        regions = segmentation_node.GetNodeReference(REGIONS_ROLE)
        removed = self.removed_node(segmentation_node)
        if overlay == "regions":
            if self.task(segmentation_node) != "brats":
                raise InputError("tumor regions exist only for brain-tumor segmentations")
            if regions is None:
                regions = self.scene.AddNewNodeByClass(
                    "vtkMRMLSegmentationNode", f"{segmentation_node.GetName()} regions"
                )
                regions.SetAttribute(OUTPUT_ATTRIBUTE, "regions")
                segmentation_node.SetNodeReferenceID(REGIONS_ROLE, regions.GetID())
            reference = self._require_reference(segmentation_node)
            write_regions(regions, read_labels(segmentation_node, reference), reference)
        if overlay == "removed":
            self._require_removed(segmentation_node, f"no region of {NOTED_REMOVED_ML:g} ml or more")
        shown = {
            "labels": (segmentation_node,),
            "regions": (regions,),
            "removed": (segmentation_node, removed),
        }[overlay]
        for node in (segmentation_node, regions, removed):
            if node is not None and node.GetDisplayNode() is not None:
                node.GetDisplayNode().SetVisibility(node in shown)
        if overlay == "removed":  # a removed region lies apart from the tumour, often off the slices shown
            listed = self.removed_regions(segmentation_node)
            self._slices_through(segmentation_node, listed, removed_region, REMOVED_REGION_NOUNS)
        return shown[-1]

    def save_training_case(
        self,
        segmentation_node: slicer.vtkMRMLSegmentationNode,
        folder: str | Path,
        case_id: str | None = None,
    ) -> list[Path]:
        """Write the inputs and the (corrected) labels as ``<case>_<input>.nii.gz`` and ``<case>_seg.nii.gz``.

        Every path is checked before anything is written, so a clash leaves no half-written case.
        """
        folder = Path(folder)
        names = [n for n in (segmentation_node.GetAttribute(INPUTS_ATTRIBUTE) or "").split(",") if n]
        inputs = {name: self.input_node(segmentation_node, name) for name in names}
        if not names or any(node is None for node in inputs.values()):
            raise InputError(
                f"'{segmentation_node.GetName()}' was not made by WMHSegmenter from volumes still loaded"
            )
        case_id = case_id or default_case_id(inputs[names[0]].GetName(), names[0])
        paths = {name: folder / f"{case_id}_{name}.nii.gz" for name in names}
        label_path = folder / f"{case_id}_seg.nii.gz"
        for path in [*paths.values(), label_path]:
            check_output_path(path, overwrite=False)
        written = [write_volume(volume_from_node(inputs[name]), path) for name, path in paths.items()]
        labels = self.labels(segmentation_node)
        written.append(write_volume(labels.with_array(labels.array.astype(np.uint8)), label_path))
        return written

    def _write_probabilities(self, segmentation_node, job: Job, prediction) -> list:
        """One probability volume per foreground channel, reusing the nodes of an earlier run."""
        existing = self.probability_nodes(segmentation_node)
        segmentation_node.RemoveNodeReferenceIDs(PROBABILITY_ROLE)
        wanted = job.options.probabilities and prediction.probabilities is not None
        channels = []
        if wanted:
            array = prediction.probabilities.array
            channels = list(zip(prediction.channel_names, array if array.ndim == 4 else [array]))
        for stale in existing[len(channels) :]:
            self.scene.RemoveNode(stale)
        nodes = []
        for index, (channel, probabilities) in enumerate(channels):
            name = f"{segmentation_node.GetName()} {channel} probability"
            node = (
                existing[index]
                if index < len(existing)
                else self.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
            )
            node.SetName(name)
            node.SetAttribute(OUTPUT_ATTRIBUTE, "probability")
            set_array_on_grid_of(node, probabilities.astype(np.float32), job.reference)
            node.CreateDefaultDisplayNodes()
            node.GetDisplayNode().SetAutoWindowLevel(False)
            node.GetDisplayNode().SetWindowLevelMinMax(0.0, 1.0)
            segmentation_node.AddNodeReferenceID(PROBABILITY_ROLE, node.GetID())
            nodes.append(node)
        return nodes

    def _write_removed(self, segmentation_node, job: Job, prediction):
        """What the island cleaning removed (the regions its note names) in a segmentation of its own,
        drawn as outlines and hidden until asked for: a reader can look, and put them back
        (:meth:`keep_removed`). A run that removed none takes away an earlier run's."""
        if prediction.removed is None:
            self._drop_removed(segmentation_node)
            return None
        node = self.removed_node(segmentation_node)
        name = f"{segmentation_node.GetName()} removed by cleaning"
        if node is None:
            node = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
            node.SetAttribute(OUTPUT_ATTRIBUTE, "removed")
            segmentation_node.SetNodeReferenceID(REMOVED_ROLE, node.GetID())
        node.SetName(name)
        write_labels(node, prediction.removed.array, job.reference, job.bundle.labels)
        display = node.GetDisplayNode()
        display.SetVisibility2DFill(False)
        display.SetVisibility2DOutline(True)
        display.SetVisibility(False)
        return node

    def _islands(self, node: slicer.vtkMRMLSegmentationNode, segmentation_node) -> list[Island]:
        """The islands of ``node``'s labels on the grid of ``segmentation_node``'s input."""
        reference = self._require_reference(segmentation_node)
        return islands(Volume(read_labels(node, reference), world_geometry(reference)))

    def _require_removed(self, segmentation_node, nothing: str) -> slicer.vtkMRMLSegmentationNode:
        removed = self.removed_node(segmentation_node)
        if removed is None:
            raise InputError(f"the island cleaning removed {nothing} from '{segmentation_node.GetName()}'")
        return removed

    def _slices_through(self, segmentation_node, found: list[Island], index: int, nouns) -> Island:
        """Move every slice view through island ``index`` of ``found`` (a lesion, a removed region)."""
        _require_numbered(segmentation_node, index, len(found), nouns)
        slicer.vtkMRMLSliceNode.JumpAllSlices(self.scene, *found[index].centre_ras_mm)
        return found[index]

    def _drop_removed(self, segmentation_node) -> None:
        node = self.removed_node(segmentation_node)
        if node is not None:
            segmentation_node.RemoveNodeReferenceIDs(REMOVED_ROLE)
            self.scene.RemoveNode(node)

    def _keep_activations(self, segmentation_node, job: Job, prediction):
        """Keep a run's maps and show the first layer's mean; without maps, remove a stale volume."""
        self.drop_activations()
        if job.recorder is None:
            stale = self.activation_node(segmentation_node)
            if stale is not None:
                self.scene.RemoveNode(stale)
            return None
        self._activations = KeptActivations(
            prediction.activations, job.reference, segmentation_node, job.recorder
        )
        job.recorder = None
        first = next(iter(prediction.activations))
        return self.show_activations(first)

    def _statistics_node(self, segmentation_node) -> slicer.vtkMRMLTableNode:
        table = self.statistics_node(segmentation_node)
        if table is None:
            table = self.scene.AddNewNodeByClass(
                "vtkMRMLTableNode", f"{segmentation_node.GetName()} statistics"
            )
            table.SetAttribute(OUTPUT_ATTRIBUTE, "statistics")
            segmentation_node.SetNodeReferenceID(STATISTICS_ROLE, table.GetID())
        return table

    def _require_reference(self, segmentation_node) -> slicer.vtkMRMLScalarVolumeNode:
        reference = self.input_node(segmentation_node)
        if reference is None:
            raise InputError(
                f"'{segmentation_node.GetName()}' has no input volume: segment it with WMHSegmenter first"
            )
        return reference

    def _nodes(self, class_name: str) -> list:
        collection = self.scene.GetNodesByClass(class_name)
        return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


def _require_numbered(segmentation_node, index: int, count: int, nouns: tuple[str, str]) -> None:
    """Refuse a number past the list (``nouns``: how the list counts its items, and names one)."""
    if not 0 <= index < count:
        listed, one = nouns
        raise InputError(f"'{segmentation_node.GetName()}' has {count} {listed}, no {one} {index + 1}")


def default_case_id(reference_name: str, input_name: str) -> str:
    """``Brats18_X_flair`` -> ``Brats18_X``: the reference's name without its modality suffix."""
    for separator in ("_", "-", " "):
        suffix = f"{separator}{input_name}"
        if reference_name.lower().endswith(suffix):
            return reference_name[: -len(suffix)]
    return reference_name
