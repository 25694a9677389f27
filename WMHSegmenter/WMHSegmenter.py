"""WMHSegmenter: segment white matter hyperintensities (FLAIR) and brain tumors (BraTS) with a 3D U-Net.

Thin Slicer glue on purpose: the panel only wires widgets to WMHSegmenterLib.scene, the Qt-free
logic that is tested on real MRML outside Slicer. The network runs in a worker thread polled by a
timer, so Slicer stays usable. Importing this file imports no torch: torch (from the PyTorch
extension) and the packages in Resources/requirements.txt are checked when Segment is pressed.
"""

import contextlib
import logging
import sys
import traceback

import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from WMHSegmenterLib.engine.device import available_devices
from WMHSegmenterLib.engine.errors import Cancelled, InputError
from WMHSegmenterLib.engine.quantify import summary
from WMHSegmenterLib.engine.tasks import task_metadata
from WMHSegmenterLib.scene import dependencies
from WMHSegmenterLib.scene.activations import parse_layer_names
from WMHSegmenterLib.scene.background import BackgroundRun
from WMHSegmenterLib.scene.logic import EditedSegmentationError, SegmenterLogic, SegmentOptions
from WMHSegmenterLib.scene.reloading import reload_package

TASKS = (("wmh", "White matter hyperintensities (FLAIR)"), ("brats", "Brain tumor (FLAIR, T1, T1ce, T2)"))
MODALITIES = ("flair", "t1", "t1ce", "t2")
DEVICES = (
    ("auto", "Automatic (CUDA, then MPS, then CPU)"),
    ("cuda", "CUDA (NVIDIA GPU)"),
    ("mps", "MPS (Apple GPU)"),
)
STAGES = {
    "starting": "Loading the model",
    "preprocess": "Preparing the images",
    "network": "Running the network",
    "postprocess": "Making the label map",
}
POLL_MILLISECONDS = 100
ACTIVATION_VIEWS = {
    "mean": "Mean over channels",
    "max": "Maximum over channels",
    "pca": "First principal component",
    "channel": "One channel",
    "gradcam": "Grad-CAM (class attribution)",
}


class WMHSegmenter(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "WMH Segmenter"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["WMHSegmenter contributors"]
        self.parent.helpText = (
            "Segments white matter hyperintensities on FLAIR, or glioma sub-regions (necrotic core, edema, "
            "enhancing tumor) on co-registered FLAIR, T1, T1ce and T2, with a 3D U-Net. Results are "
            "segmentations you can correct in the Segment Editor, with volumes and lesion counts. "
            "Research use only: not a medical device."
        )
        self.parent.acknowledgementText = (
            "Sample data: MICCAI WMH Segmentation Challenge and BraTS 2018 "
            "(see Resources/SampleData/README.md)."
        )


class WMHSegmenterWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.bundles = []
        self.job = None
        self.run = None
        self.timer = None
        self.activationChannels = {}

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        panel = slicer.util.loadUI(self.resourcePath("UI/WMHSegmenter.ui"))
        self.layout.addWidget(panel)
        self.ui = slicer.util.childWidgetVariables(panel)
        panel.setMRMLScene(slicer.mrmlScene)
        self.logic = SegmenterLogic(slicer.mrmlScene)
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_MILLISECONDS)
        self.timer.timeout.connect(self.poll)
        for task, title in TASKS:
            self.ui.taskComboBox.addItem(title, task)
        self.ui.progressBar.hide()
        self.refreshDevices()

        self.ui.taskComboBox.currentIndexChanged.connect(self.onTaskChanged)
        self.ui.modelComboBox.currentIndexChanged.connect(self.onModelChanged)
        self.ui.findInputsButton.clicked.connect(self.fillInputs)
        self.ui.segmentButton.clicked.connect(self.onSegment)
        self.ui.cancelButton.clicked.connect(self.onCancel)
        self.ui.outputSegmentationSelector.currentNodeChanged.connect(self.onOutputChanged)
        self.ui.showRegionsRadioButton.toggled.connect(self.onOverlayChanged)
        self.ui.showRemovedRadioButton.toggled.connect(self.onOverlayChanged)
        self.ui.removedRegionComboBox.currentIndexChanged.connect(self.onRemovedRegionChanged)
        self.ui.keepRemovedRegionButton.clicked.connect(self.onKeepRemovedRegion)
        self.ui.keepRemovedButton.clicked.connect(self.onKeepAllRemoved)
        self.ui.lesionComboBox.currentIndexChanged.connect(self.onLesionChanged)
        self.ui.showProbabilityCheckBox.toggled.connect(lambda checked: self.showLayers())
        self.ui.editButton.clicked.connect(self.onEdit)
        self.ui.updateStatisticsButton.clicked.connect(self.onUpdateStatistics)
        self.ui.saveTrainingCaseButton.clicked.connect(self.onSaveTrainingCase)
        self.ui.activationLayerComboBox.currentIndexChanged.connect(self.onActivationLayerChanged)
        self.ui.activationViewComboBox.currentIndexChanged.connect(lambda index: self.showActivations())
        self.ui.activationChannelSpinBox.valueChanged.connect(lambda value: self.showActivations())
        self.ui.activationClassComboBox.currentIndexChanged.connect(lambda index: self.showActivations())
        self.ui.activationOpacitySliderWidget.valueChanged.connect(self.logic.set_activation_opacity)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.onTaskChanged()
        self.onOutputChanged(self.ui.outputSegmentationSelector.currentNode())

    def cleanup(self):
        self.removeObservers()
        if self.run is not None:
            self.run.cancel()
        if self.timer is not None:
            self.timer.stop()
        if self.logic is not None:
            self.logic.drop_activations()

    def onReload(self):
        """Reload the library too, so edits to WMHSegmenterLib take effect without restarting Slicer."""
        self.cleanup()
        reload_package("WMHSegmenterLib")
        ScriptedLoadableModuleWidget.onReload(self)

    # --- task, model, inputs ------------------------------------------------------------------

    def currentBundle(self):
        index = self.ui.modelComboBox.currentIndex
        return self.bundles[index] if 0 <= index < len(self.bundles) else None

    def onTaskChanged(self):
        task = self.ui.taskComboBox.currentData
        try:
            self.bundles = self.logic.models(task)
        except InputError as error:
            self.bundles = []
            self.setStatus(f"A model bundle is broken: {error}", error=True)
        self.ui.modelComboBox.blockSignals(True)
        self.ui.modelComboBox.clear()
        for bundle in self.bundles:
            self.ui.modelComboBox.addItem(f"{bundle.meta.get('name', bundle.id)} ({bundle.version})")
        if not self.bundles:
            self.ui.modelComboBox.addItem("No model installed")
        self.ui.modelComboBox.blockSignals(False)
        self.showOverlayChoices()
        self.onModelChanged()

    def onModelChanged(self):
        bundle = self.currentBundle()
        task = self.ui.taskComboBox.currentData
        self.ui.modelComboBox.enabled = bundle is not None
        self.ui.segmentButton.enabled = bundle is not None and self.run is None
        if bundle is None:
            self.ui.modelInfoLabel.text = (
                "No model for this task is installed. Put a model bundle folder (model.json, "
                "weights.safetensors) into WMHSegmenter/Resources/Models, or into a folder named in the "
                "WMHSEG_MODELS environment variable, and reopen this module."
            )
            names = [spec["name"] for spec in task_metadata(task)["inputs"]]
        else:
            self.ui.modelInfoLabel.text = _describe(bundle)
            names = bundle.input_names
        for modality in MODALITIES:
            getattr(self.ui, f"{modality}Label").setVisible(modality in names)
            getattr(self.ui, f"{modality}Selector").setVisible(modality in names)
        self.fillInputs()

    def fillInputs(self):
        """Select loaded volumes whose names match the model's input patterns (only where one matches)."""
        bundle = self.currentBundle()
        if bundle is None:
            return
        for name, node in self.logic.match_inputs(bundle).items():
            selector = getattr(self.ui, f"{name}Selector", None)
            if node is not None and selector is not None:
                selector.setCurrentNode(node)

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def onNodeAdded(self, caller, event, node):
        if node.IsA("vtkMRMLScalarVolumeNode") and self.run is None:
            qt.QTimer.singleShot(0, self.fillInputs)  # once loading has named the node

    def refreshDevices(self):
        """Offer only devices that exist; torch is asked only once it is loaded, never loaded for this."""
        available = available_devices() if "torch" in sys.modules else ["cpu"]
        current = self.ui.deviceComboBox.currentData or "auto"
        self.ui.deviceComboBox.clear()
        for device, title in DEVICES:
            if device == "auto" or device in available:
                self.ui.deviceComboBox.addItem(title, device)
        self.ui.deviceComboBox.addItem("CPU", "cpu")
        self.ui.deviceComboBox.setCurrentIndex(max(self.ui.deviceComboBox.findData(current), 0))

    # --- segment ------------------------------------------------------------------------------

    def onSegment(self):
        if self.currentBundle() is None or not self.ensureDependencies():
            return
        self.start(overwrite_edits=False)

    def start(self, overwrite_edits):
        bundle = self.currentBundle()
        inputs = {name: getattr(self.ui, f"{name}Selector").currentNode() for name in bundle.input_names}
        options = SegmentOptions(
            device=self.ui.deviceComboBox.currentData,
            mirror=self.ui.mirrorCheckBox.checked,
            probabilities=self.ui.probabilityCheckBox.checked,
            activations=self.ui.activationsCheckBox.checked,
            activation_layers=parse_layer_names(self.ui.activationLayersLineEdit.text),
        )
        output = self.ui.outputSegmentationSelector.currentNode()
        try:
            job = self.logic.prepare(bundle, inputs, options, output, overwrite_edits)
        except EditedSegmentationError as edited:
            choice = self.askAboutEdits(edited)
            if choice == "new":
                self.ui.outputSegmentationSelector.setCurrentNode(None)
            if choice is not None:
                self.start(overwrite_edits=choice == "overwrite")
            return
        except InputError as error:
            self.setStatus(str(error), error=True)
            return
        self.job = job
        self.run = BackgroundRun(
            lambda progress, should_stop: self.logic.run(job, progress, should_stop)
        ).start()
        self.setRunning(True)
        self.timer.start()

    def askAboutEdits(self, edited):
        """'overwrite', 'new' or None (cancel): the user decides what happens to their edits."""
        box = qt.QMessageBox(slicer.util.mainWindow())
        box.setIcon(qt.QMessageBox.Warning)
        box.setWindowTitle("Segmentation was edited")
        box.setText(str(edited))
        new = box.addButton("Write to a new segmentation", qt.QMessageBox.AcceptRole)
        overwrite = box.addButton("Overwrite my edits", qt.QMessageBox.DestructiveRole)
        box.addButton(qt.QMessageBox.Cancel)
        box.setDefaultButton(new)
        box.exec_()
        clicked = box.clickedButton()
        return "new" if clicked == new else "overwrite" if clicked == overwrite else None

    def onCancel(self):
        if self.run is not None:
            self.run.cancel()
            self.setStatus("Cancelling after the current tile…")

    def poll(self):
        run = self.run
        self.ui.progressBar.value = int(round(100 * run.fraction))
        if not run.cancel_requested:
            self.setStatus(f"{STAGES.get(run.stage, run.stage)}…")
        if not run.done:
            return
        self.timer.stop()
        self.run = None
        self.setRunning(False)
        self.refreshDevices()
        try:
            prediction = run.result()
        except Cancelled:
            self.setStatus("Cancelled.")
            return
        except InputError as error:
            self.setStatus(str(error), error=True)
            return
        except Exception as error:
            logging.error(traceback.format_exc())
            hint = (
                " Try the CPU device or turn mirroring off." if "out of memory" in str(error).lower() else ""
            )
            self.setStatus(f"Segmentation failed: {error}.{hint}", error=True)
            return
        with slicer.util.tryWithErrorDisplay("Could not show the segmentation.", waitCursor=True):
            self.showResult(self.logic.apply(self.job, prediction))

    def showResult(self, result):
        self.ui.outputSegmentationSelector.setCurrentNode(result.segmentation_node)
        self.ui.showLabelsRadioButton.checked = True
        self.showOverlayChoices()
        self.listLesions()
        self.showLayers(fit=True)
        self.fillActivationSelectors()
        text = result.message(self.job.bundle)
        if self.job.segmentation_node not in (None, result.segmentation_node):
            text += " The target segmentation was edited meanwhile, so the result went to a new one."
        self.setStatus(text, warning=bool(result.warnings))

    def setRunning(self, running):
        for widget in (
            self.ui.inputsCollapsibleButton,
            self.ui.modelCollapsibleButton,
            self.ui.resultsCollapsibleButton,
        ):
            widget.enabled = not running
        self.ui.activationsCollapsibleButton.enabled = (
            not running and self.logic.activation_choices() is not None
        )
        self.ui.outputSegmentationSelector.enabled = not running
        self.ui.segmentButton.enabled = not running and self.currentBundle() is not None
        self.ui.cancelButton.enabled = running
        self.ui.progressBar.setVisible(running)
        self.ui.progressBar.value = 0
        if not running:
            self.onOutputChanged(self.ui.outputSegmentationSelector.currentNode())

    def setStatus(self, text, error=False, warning=False):
        self.ui.statusLabel.text = text
        self.ui.statusLabel.setStyleSheet("color: #d33" if error else "color: #c60" if warning else "")
        if error or warning:
            logging.warning(text)

    # --- dependencies -------------------------------------------------------------------------

    def ensureDependencies(self):
        """torch through the PyTorch extension, then the requirements file; asks before installing."""
        problem = dependencies.unmet(dependencies.TORCH_REQUIREMENT)
        if problem is not None and not self.installTorch(problem):
            return False
        missing = dependencies.missing_requirements()
        if not missing:
            return True
        if not slicer.util.confirmOkCancelDisplay(
            "WMHSegmenter needs these Python packages, which will now be downloaded and installed into "
            f"Slicer's Python: {', '.join(missing)}.\n\nThis needs an internet connection and about 100 MB.",
            windowTitle="Install Python packages",
        ):
            self.setStatus("Python packages were not installed; Segment needs them.", error=True)
            return False
        output = dependencies.CapturedOutput()
        try:
            with slicer.util.WaitCursor(), contextlib.redirect_stdout(output):
                slicer.util.pip_install(missing)
        except Exception as error:
            slicer.util.errorDisplay(
                dependencies.explain_install_failure(missing, f"{output.text}\n{error}"),
                detailedText=output.text or traceback.format_exc(),
            )
            return False
        return True

    def installTorch(self, problem):
        try:
            import PyTorchUtils
        except ModuleNotFoundError:
            slicer.util.errorDisplay(
                "WMHSegmenter needs PyTorch. Install the 'PyTorch' extension with the Extensions Manager, "
                "restart Slicer and press Segment again."
            )
            return False
        if problem != "missing":
            slicer.util.errorDisplay(
                f"WMHSegmenter needs {dependencies.TORCH_REQUIREMENT}, but {problem}. Install a compatible "
                "version in the PyTorch Utils module, then restart Slicer."
            )
            return False
        requirement = dependencies.TORCH_REQUIREMENT[len("torch") :]
        try:
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
                askConfirmation=True, torchVersionRequirement=requirement
            )
        except Exception as error:
            slicer.util.errorDisplay(
                dependencies.explain_install_failure(["torch"], str(error)),
                detailedText=traceback.format_exc(),
            )
            return False
        if torch is None:
            self.setStatus("PyTorch was not installed; Segment needs it.", error=True)
        return torch is not None

    # --- results ------------------------------------------------------------------------------

    def onOutputChanged(self, node):
        made_here = node is not None and self.logic.input_node(node) is not None
        self.ui.resultsCollapsibleButton.enabled = made_here
        self.ui.statisticsTableView.setMRMLTableNode(self.logic.statistics_node(node) if made_here else None)
        self.showOverlayChoices()
        self.listLesions()

    def showOverlayChoices(self):
        """Tumor regions for brain-tumor results; what the cleaning removed where it removed a region."""
        node = self.ui.outputSegmentationSelector.currentNode()
        brats = self.ui.taskComboBox.currentData == "brats"
        regions = self.islandTitles(node, self.logic.removed_regions, "the removed regions")
        _refill(self.ui.removedRegionComboBox, [(title, index) for index, title in enumerate(regions)])
        self.ui.showLabelsRadioButton.text = "Labels (NCR / ED / ET)" if brats else "Labels"
        self.ui.showRegionsRadioButton.setVisible(brats)
        self.ui.showRemovedRadioButton.setVisible(bool(regions))
        self.ui.removedRegionWidget.setVisible(bool(regions))
        self.ui.overlayWidget.setVisible(brats or bool(regions))

    def islandTitles(self, node, listing, what):
        """How the list of lesions or removed regions (``listing``) shows them; none, and a status
        line, where the segmentation cannot be read (e.g. moved under another transform than its input)."""
        if node is None or self.logic.input_node(node) is None:
            return []
        try:
            return self.logic.island_titles(node, listing(node))
        except InputError as error:
            self.setStatus(f"Cannot list {what}: {error}", error=True)
            return []

    def listLesions(self):
        """The result's lesions as they are now (edits included), largest first, none chosen yet."""
        node = self.ui.outputSegmentationSelector.currentNode()
        titles = self.islandTitles(node, self.logic.lesions, "the lesions")
        _refill(self.ui.lesionComboBox, [(title, index) for index, title in enumerate(titles)])
        with _signalsBlocked(self.ui.lesionComboBox):
            self.ui.lesionComboBox.setCurrentIndex(-1)

    def onLesionChanged(self, index):
        node = self.ui.outputSegmentationSelector.currentNode()
        if node is None or index < 0:
            return
        with slicer.util.tryWithErrorDisplay("Could not go to the lesion.", waitCursor=True):
            self.logic.show_lesion(node, index)

    def onOverlayChanged(self):
        node = self.ui.outputSegmentationSelector.currentNode()
        if node is None or self.logic.input_node(node) is None:
            return
        overlay = "labels"
        if self.ui.showRegionsRadioButton.checked:
            overlay = "regions"
        elif self.ui.showRemovedRadioButton.checked:
            overlay = "removed"
        region = max(self.ui.removedRegionComboBox.currentIndex, 0)
        with slicer.util.tryWithErrorDisplay("Could not show the overlay.", waitCursor=True):
            self.logic.show_overlay(node, overlay, region)

    def onRemovedRegionChanged(self):
        """Choosing a removed region shows the removed regions, the views through the one chosen."""
        if self.ui.showRemovedRadioButton.checked:
            self.onOverlayChanged()
        else:
            self.ui.showRemovedRadioButton.checked = True  # its toggled signal shows the overlay

    def onKeepRemovedRegion(self):
        self.keepRemoved(self.ui.removedRegionComboBox.currentIndex)

    def onKeepAllRemoved(self):
        self.keepRemoved(None)

    def keepRemoved(self, region):
        """Keep one removed region (``region``, as the list numbers them from 0) or all (None)."""
        node = self.ui.outputSegmentationSelector.currentNode()
        what = "the removed regions" if region is None else "the removed region"
        with slicer.util.tryWithErrorDisplay(f"Could not keep {what}.", waitCursor=True):
            rows = self.logic.keep_removed(node, region)
            self.showOverlayChoices()
            if self.logic.removed_node(node) is None:
                self.ui.showLabelsRadioButton.checked = True
            else:
                self.onOverlayChanged()  # the views move on to a region still left
            self.ui.statisticsTableView.setMRMLTableNode(self.logic.statistics_node(node))
            self.listLesions()
            self.setStatus(f"Kept {what} in '{node.GetName()}'. {summary(rows, self.logic.task(node))}.")

    def showLayers(self, fit=False):
        """The input as background and, if asked for, the first probability map as foreground."""
        node = self.ui.outputSegmentationSelector.currentNode()
        if node is None or self.logic.input_node(node) is None:
            return
        probabilities = self.logic.probability_nodes(node)
        shown = probabilities[0] if probabilities and self.ui.showProbabilityCheckBox.checked else None
        slicer.util.setSliceViewerLayers(
            background=self.logic.input_node(node), foreground=shown, foregroundOpacity=0.4, fit=fit
        )

    def onEdit(self):
        node = self.ui.outputSegmentationSelector.currentNode()
        if node is None:
            return
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(node)
        editor.setSourceVolumeNode(self.logic.input_node(node))

    def onUpdateStatistics(self):
        node = self.ui.outputSegmentationSelector.currentNode()
        with slicer.util.tryWithErrorDisplay("Could not compute the statistics.", waitCursor=True):
            rows = self.logic.update_statistics(node)
            self.ui.statisticsTableView.setMRMLTableNode(self.logic.statistics_node(node))
            self.listLesions()
            self.onOverlayChanged()
            self.setStatus(summary(rows, self.logic.task(node)))

    def onSaveTrainingCase(self):
        node = self.ui.outputSegmentationSelector.currentNode()
        folder = self.ui.trainingFolderPathLineEdit.currentPath
        if not folder:
            self.setStatus("Choose a training folder first.", error=True)
            return
        try:
            paths = self.logic.save_training_case(node, folder, self.ui.caseIdLineEdit.text.strip() or None)
        except InputError as error:
            self.setStatus(str(error), error=True)
            return
        self.ui.trainingFolderPathLineEdit.addCurrentPathToHistory()
        self.setStatus(f"Saved {len(paths)} files to {folder}: {', '.join(p.name for p in paths)}")

    # --- what the network sees ---------------------------------------------------------------

    def fillActivationSelectors(self):
        """Offer what the last run kept, keeping the user's choices where they still exist."""
        choices = self.logic.activation_choices()
        self.ui.activationsCollapsibleButton.enabled = choices is not None
        if choices is None:
            return
        self.activationChannels = {info.name: info.channels for info in choices.layers}
        layers = [
            (f"{i.name} ({i.channels} channels, stride {'x'.join(map(str, i.stride))})", i.name)
            for i in choices.layers
        ]
        _refill(self.ui.activationLayerComboBox, layers)
        _refill(self.ui.activationViewComboBox, [(ACTIVATION_VIEWS[v], v) for v in choices.views])
        _refill(self.ui.activationClassComboBox, [(name, name) for name in choices.classes])
        self.onActivationLayerChanged()

    def onActivationLayerChanged(self):
        channels = self.activationChannels.get(self.ui.activationLayerComboBox.currentData, 1)
        with _signalsBlocked(self.ui.activationChannelSpinBox):
            self.ui.activationChannelSpinBox.maximum = channels - 1
        self.showActivations()

    def showActivations(self):
        """Refill the activation volume with the selected layer and view and overlay it."""
        view = self.ui.activationViewComboBox.currentData
        self.ui.activationChannelSpinBox.enabled = view == "channel"
        self.ui.activationClassComboBox.enabled = view == "gradcam"
        if view is None or self.logic.activation_choices() is None:
            return
        with slicer.util.tryWithErrorDisplay("Could not show the activations.", waitCursor=True):
            self.logic.show_activations(
                self.ui.activationLayerComboBox.currentData,
                view,
                self.ui.activationChannelSpinBox.value,
                self.ui.activationClassComboBox.currentData,
                self.ui.activationOpacitySliderWidget.value,
            )

    def onSceneStartClose(self, caller, event):
        """A closing scene takes the input and segmentation with it: release the kept maps too."""
        self.logic.drop_activations()
        self.ui.activationsCollapsibleButton.enabled = False


@contextlib.contextmanager
def _signalsBlocked(widget):
    widget.blockSignals(True)
    try:
        yield
    finally:
        widget.blockSignals(False)


def _refill(comboBox, items):
    """Replace a combo box's (title, data) items without signals; keep the current data if offered."""
    with _signalsBlocked(comboBox):
        previous = comboBox.currentData
        comboBox.clear()
        for title, data in items:
            comboBox.addItem(title, data)
        comboBox.setCurrentIndex(0 if previous is None else max(comboBox.findData(previous), 0))


def _describe(bundle):
    """One paragraph about a model: what it is, its inputs, and a warning when it is untrained."""
    inputs = ", ".join(spec.description for spec in bundle.inputs)
    text = f"<b>{bundle.meta.get('name', bundle.id)}</b> {bundle.version}: {inputs}."
    metrics = bundle.meta.get("validation", {})
    if metrics:
        text += (
            " Validation: "
            + ", ".join(f"{k} {v}" for k, v in metrics.items() if isinstance(v, (int, float)))
            + "."
        )
    if not bundle.trained:
        text += " <span style='color:#d33'>Untrained test model: results are meaningless.</span>"
    return text


class WMHSegmenterTest(ScriptedLoadableModuleTest):
    """Segments a synthetic FLAIR with a freshly initialised network inside this Slicer.

    Exercises torch, the engine and the scene logic together where they really run; the logic's
    behaviour in detail is covered by the pytest suites on slicer-core.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_segment_synthetic_flair()

    def test_segment_synthetic_flair(self):
        if dependencies.unmet(dependencies.TORCH_REQUIREMENT) or dependencies.missing_requirements():
            self.skipTest("PyTorch or the packages in requirements.txt are not installed")
        import tempfile

        import numpy as np
        import torch

        from WMHSegmenterLib.engine.bundle import save_bundle
        from WMHSegmenterLib.engine.unet import UNet3D, UNetConfig
        from WMHSegmenterLib.engine.volume import Geometry, Volume
        from WMHSegmenterLib.scene.nodes import add_volume_node
        from WMHSegmenterLib.scene.segmentation import read_labels

        self.delayDisplay("Segmenting a synthetic FLAIR with an untrained network")
        torch.manual_seed(0)
        meta = task_metadata("wmh")
        meta.update(
            id="selftest-wmh",
            version="0.0.0",
            preprocessing={"spacing_xyz_mm": [None, None, None], "crop_margin_mm": 4.0},
            inference={"patch_size_zyx": [16, 16, 16], "overlap": 0.5},
            training={"trained": False},
        )
        image = np.random.default_rng(0).normal(100.0, 10.0, (12, 32, 28)).astype(np.float32)
        flair = add_volume_node(
            slicer.mrmlScene, Volume(image, Geometry.identity((1.0, 1.0, 2.0))), "selftest_flair"
        )
        with tempfile.TemporaryDirectory() as folder:
            bundle = save_bundle(UNet3D(UNetConfig(1, 2, features=(4, 8))), meta, folder)
            logic = SegmenterLogic(slicer.mrmlScene, list_models=lambda: [bundle])
            options = SegmentOptions(device="cpu", probabilities=True, activations=True)
            result = logic.segment(bundle, {"flair": flair}, options)
        self.assertEqual(read_labels(result.segmentation_node, flair).shape, image.shape)
        self.assertEqual(result.segmentation_node.GetSegmentation().GetNumberOfSegments(), 1)
        self.assertEqual(result.statistics_node.GetNumberOfRows(), 1)
        self.assertEqual(len(result.probability_nodes), 1)
        self.assertEqual(
            logic.show_activations("bottleneck", "gradcam", class_name="WMH"), result.activation_node
        )
        logic.drop_activations()
        self.delayDisplay("Test passed")
