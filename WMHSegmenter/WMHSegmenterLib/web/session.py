"""One browser's workflow on one scene, free of trame: open a case, segment in the background, save.

The page (app.py) only binds widgets to these methods, so the workflow is tested on real MRML without a
browser, and Segment takes the Slicer module's path: SegmenterLogic's prepare (main thread), run (a
worker thread) and apply (main thread again). Edits are never overwritten: re-segmenting an edited
result writes a new segmentation and says so, and opening another case (which clears the scene) is
refused while a segmentation holds edits that were not saved, unless the user chose to discard them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.bundle import ModelBundle
from ..engine.cases import image_stem
from ..engine.errors import InputError
from ..engine.quantify import LabelStatistics
from ..engine.volume import read_volume
from ..scene.background import BackgroundRun
from ..scene.logic import EditedSegmentationError, SegmenterLogic, SegmentOptions, SegmentResult
from ..scene.nodes import add_volume_node
from ..scene.segmentation import fingerprint
from .cases import case_choices, resolve_case
from .saving import save_segmentation

#: An MRML node; only scene/ imports MRML, so the web layer hands nodes on without naming their classes.
Node = Any


@dataclass
class OpenCase:
    id: str
    inputs: dict[str, Node]  # modality -> node, the reference first
    folder: Path  # where corrections are saved

    @property
    def reference(self) -> Node:
        return next(iter(self.inputs.values()))


class UnsavedEditsError(InputError):
    """Opening a case would clear segmentations whose edits were not saved.

    ``unsaved`` (name -> fingerprint of the labels) is what the user is told; handing it back as
    ``discard`` discards exactly that, and an edit made since makes the refusal come again.
    """

    def __init__(self, unsaved: dict[str, str]):
        self.unsaved = unsaved
        quoted = ", ".join(f"'{name}'" for name in unsaved)
        super().__init__(f"{quoted} {'has' if len(unsaved) == 1 else 'have'} edits that are not saved")


class WebSession:
    """The case, the running job and the current result of one page."""

    def __init__(self, logic: SegmenterLogic, data_root: str | Path):
        self.logic = logic
        self.data_root = Path(data_root).resolve(strict=True)
        self.case: OpenCase | None = None
        self.segmentation: Node | None = None
        self.note = ""  # said once after the next result, e.g. that edits were kept
        self._run: BackgroundRun | None = None
        self._job = None
        self._saved: dict[str, str] = {}  # segmentation node ID -> fingerprint of the labels last saved

    def models(self) -> list[ModelBundle]:
        return self.logic.list_models()

    def model(self, model_id: str) -> ModelBundle:
        for bundle in self.models():
            if bundle.id == model_id:
                return bundle
        raise InputError(f"unknown model {model_id!r}: choose one from the list")

    def case_choices(self, bundle: ModelBundle) -> list[dict[str, str]]:
        return case_choices(self.data_root, bundle)

    def open_case(self, bundle: ModelBundle, key: str, discard: Mapping[str, str] | None = None) -> OpenCase:
        """Read every modality first (a bad file leaves the open case as it was), then replace the scene.

        Refused while segmentations hold edits that were not saved, unless ``discard`` is exactly those
        edits (the ``unsaved`` of the refusal the user was shown).
        """
        if self.running:
            raise InputError("a segmentation is running: cancel it before opening another case")
        files = resolve_case(self.data_root, bundle, key)
        volumes = {name: read_volume(path) for name, path in files.paths.items()}
        unsaved = {node.GetName(): labels for node, labels in self._unsaved()}
        if unsaved and unsaved != discard:
            raise UnsavedEditsError(unsaved)
        self.logic.drop_activations()
        self.logic.scene.Clear(False)
        self.segmentation = None
        self._saved = {}
        inputs = {
            name: add_volume_node(self.logic.scene, volume, image_stem(files.paths[name].name) or name)
            for name, volume in volumes.items()
        }
        folder = self.data_root if files.is_sample else files.paths[bundle.input_names[0]].parent
        self.case = OpenCase(files.id, inputs, folder)
        return self.case

    @property
    def running(self) -> bool:
        return self._run is not None

    @property
    def run(self) -> BackgroundRun | None:
        return self._run

    def start_segment(self, bundle: ModelBundle, options: SegmentOptions) -> BackgroundRun:
        """Check and copy the inputs, then predict in a worker thread; poll :attr:`run`, then :meth:`finish`.

        A result the user has edited is never overwritten: the new one goes to a new segmentation.
        """
        if self.case is None:
            raise InputError("open a case first")
        if self.running:
            raise InputError("a segmentation is already running")
        missing = [spec.description for spec in bundle.inputs if spec.name not in self.case.inputs]
        if missing:
            raise InputError(f"the open case has no {', '.join(missing)}: open a case for this model")
        inputs = {name: self.case.inputs[name] for name in bundle.input_names}
        target = self.segmentation
        try:
            job = self.logic.prepare(bundle, inputs, options, target)
        except EditedSegmentationError:
            job = self.logic.prepare(bundle, inputs, options, None)
            self.note = f"Your edits stay in '{target.GetName()}'; the new result is a new segmentation."
        self._job = job
        self._run = BackgroundRun(lambda progress, stop: self.logic.run(job, progress, stop)).start()
        return self._run

    def cancel(self) -> None:
        if self._run is not None:
            self._run.cancel()

    def finish(self) -> SegmentResult:
        """Write the finished run into the scene; re-raises its error (Cancelled when cancelled)."""
        run, job = self._run, self._job
        if run is None or not run.done:
            raise RuntimeError("no finished segmentation to apply")
        self._run = self._job = None
        result = self.logic.apply(job, run.result())
        self.segmentation = result.segmentation_node
        return result

    def statistics(self) -> list[dict]:
        """The current segmentation's table rows (edits included), recomputed by the scene logic."""
        if self.segmentation is None:
            return []
        return statistics_rows(self.logic.update_statistics(self.segmentation))

    def unsaved_edits(self) -> list[str]:
        """Names of the segmentations edited since they were made or last saved."""
        return [node.GetName() for node, _ in self._unsaved()]

    def save(self) -> dict[str, list[Path]]:
        """The current segmentation, and every other one whose edits are not saved: edits kept beside a
        newer result have no other way out of the page. Returns the files of each, by name, current first."""
        if self.case is None or self.segmentation is None:
            raise InputError("segment a case before saving")
        kept = [node for node, _ in self._unsaved() if node is not self.segmentation]
        saved = {}
        for node in [self.segmentation, *kept]:
            labels = self.logic.labels(node)
            saved[node.GetName()] = save_segmentation(
                self.logic, node, labels, self.case.folder, self.case.id
            )
            self._saved[node.GetID()] = fingerprint(labels.array)
        return saved

    def _unsaved(self) -> list[tuple[Node, str]]:
        """Each edited segmentation whose labels differ from what was last saved, with their fingerprint."""
        return [
            (node, labels)
            for node, labels in self.logic.edited_segmentations()
            if self._saved.get(node.GetID()) != labels
        ]


def statistics_rows(rows: list[LabelStatistics]) -> list[dict]:
    """Table rows as the page shows them (the numbers of the engine's quantify)."""
    return [
        {
            "label": row.label,
            "name": row.name,
            "voxels": row.voxels,
            "volume_ml": round(row.volume_ml, 3),
            "components": row.components,
        }
        for row in rows
    ]
