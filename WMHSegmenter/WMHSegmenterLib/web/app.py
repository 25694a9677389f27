"""The browser app: trame-slicer's SlicerApp, views and segment editor around one WebSession.

Handlers run on the server's event loop, the main thread, where MRML may be touched; the network runs
in the session's worker thread while a coroutine polls it for the progress bar. Every handler reports
its errors in the page, once, so whatever a page sends, the server keeps running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from trame.app import get_server
from trame_server import Server
from trame_server.utils.asynchronous import create_task
from trame_slicer import module as trame_slicer_module
from trame_slicer.app.logic import LayoutButtonLogic, SegmentEditorLogic
from trame_slicer.core import SlicerApp
from trame_slicer.rca_view import register_rca_factories
from trame_slicer.segmentation import SegmentationDisplay, SegmentationOpacityEnum

from ..engine.bundle import ModelBundle, list_bundles
from ..engine.errors import Cancelled, InputError
from ..engine.quantify import count_heading
from ..scene.activations import color_node_id, set_foreground_opacity, show_in_slice_views
from ..scene.logic import REGIONS_ROLE, SegmenterLogic, SegmentOptions, SegmentResult
from .layout import Page
from .session import UnsavedEditsError, WebSession, statistics_rows

log = logging.getLogger("wmhseg")

STAGES = {
    "starting": "Loading the model",
    "preprocess": "Preparing the images",
    "network": "Running the network",
    "postprocess": "Making the label map",
}
POLL_SECONDS = 0.2
#: Edits arrive as bursts of modified events; the table is recomputed once they settle.
STATISTICS_DELAY_SECONDS = 0.4


class WebApp:
    """trame-slicer's views and segment editor with the WMHSegmenter panel, on one scene per server.

    trame shares one state between all pages of a server, so this is one user's workbench: two browser
    tabs show the same case, as two windows of one desktop Slicer would.
    """

    def __init__(
        self,
        data_root: str | Path,
        server: Server | str | None = None,
        list_models: Callable[[], list[ModelBundle]] = list_bundles,
    ):
        self.server = get_server(server, client_type="vue3")
        self.server.enable_module(trame_slicer_module)
        self.server.state.trame__title = "WMHSegmenter"
        self.slicer = SlicerApp()
        register_rca_factories(self.slicer.view_manager, self.server)
        self.editor = SegmentEditorLogic(self.server, self.slicer)
        layouts = LayoutButtonLogic(self.server, self.slicer)
        self.session = WebSession(SegmenterLogic(self.slicer.scene, list_models), data_root)
        self._warned_unsaved: dict[str, str] | None = None  # the edits the page warned Open would drop
        self.page = Page(self.server, layouts.layout_manager)
        self.editor.set_ui(self.page.editor)
        self.panel = self.page.panel
        self._statistics_pending = False

        self.page.open_clicked.connect(self._reported(self.open_case))
        self.page.segment_clicked.connect(self._reported(self.segment))
        self.page.cancel_clicked.connect(self.session.cancel)
        self.page.save_clicked.connect(self._reported(self.save))
        self.page.keep_removed_clicked.connect(self._reported(self.keep_removed))
        self.page.keep_removed_region_clicked.connect(self._reported(self.keep_removed_region))
        name = self.panel.name
        self.panel.bind_changes(
            {
                name.model_id: self._reported(self._list_cases),
                (name.overlay, name.removed_region): self._reported(self._show_overlay),
                name.lesion: self._reported(self._show_lesion),
                name.foreground: self._reported(self._show_foreground),
                name.foreground_opacity: lambda opacity: set_foreground_opacity(self.slicer.scene, opacity),
                (name.layer, name.view, name.channel, name.class_name): self._reported(self._show_foreground),
            }
        )
        self.page.editor_state.bind_changes(
            {self.page.editor_state.name.segment_display: self._reported(self._style_regions)}
        )
        self.slicer.segmentation_editor.segmentation_modified.connect(self._schedule_statistics)
        self.page.display.data.show_3d = True
        self.slicer.segmentation_editor.set_surface_representation_enabled(True)
        self._reported(self._list_models)()

    def start(self, host: str, port: int) -> None:
        """Serve until interrupted; ``timeout=0``: stay up while no page is connected."""
        self.server.start(host=host, port=port, open_browser=False, timeout=0)

    # --- model and case -----------------------------------------------------------------------

    def _list_models(self) -> None:
        bundles = self.session.models()
        self.panel.data.models = [{"title": _model_title(b), "value": b.id} for b in bundles]
        self.panel.data.model_id = bundles[0].id if bundles else ""
        self._list_cases(self.panel.data.model_id)
        if not bundles:
            self._say(
                "No model is installed: see `wmhseg models` for where bundles are looked for.", "warning"
            )

    def _list_cases(self, model_id: str, *_) -> None:
        cases = self.session.case_choices(self.session.model(model_id)) if model_id else []
        self.panel.data.cases = cases
        self.panel.data.case_key = cases[0]["value"] if cases else ""

    def open_case(self) -> None:
        """A first Open over unsaved edits only warns; pressing Open again discards what it named."""
        bundle = self.session.model(self.panel.data.model_id)
        try:
            case = self.session.open_case(bundle, self.panel.data.case_key, discard=self._warned_unsaved)
        except UnsavedEditsError as error:
            self._warned_unsaved = error.unsaved
            raise InputError(f"{error}: Save keeps them; Open again discards them") from None
        self._warned_unsaved = None
        display = self.slicer.display_manager
        display.show_volume_in_slice_background(case.reference)
        display.show_volume_in_slice_foreground(None)
        display.reset_views()
        data = self.panel.data
        data.case_title, data.has_result, data.statistics = case.id, False, []
        data.foregrounds, data.foreground, data.overlay = [], "none", "labels"
        self._say(f"Opened {case.id} ({', '.join(case.inputs)}). Press Segment.", "info")

    # --- segment ------------------------------------------------------------------------------

    def segment(self) -> None:
        bundle = self.session.model(self.panel.data.model_id)
        options = SegmentOptions(
            probabilities=self.panel.data.keep_probabilities, activations=self.panel.data.keep_activations
        )
        run = self.session.start_segment(bundle, options)
        self.panel.data.running, self.panel.data.progress = True, 0
        self.panel.data.stage = STAGES["starting"]
        self._say("Segmenting…", "info")
        create_task(self._watch(run, bundle))

    async def _watch(self, run, bundle: ModelBundle) -> None:
        while not run.done:
            with self.server.state:
                self.panel.data.progress = round(100 * run.fraction)
                stage = STAGES.get(run.stage, run.stage)
                self.panel.data.stage = f"{stage} (cancelling…)" if run.cancel_requested else f"{stage}…"
            await asyncio.sleep(POLL_SECONDS)
        with self.server.state:
            self.panel.data.running = False
            self._reported(self._show_result)(bundle)

    def _show_result(self, bundle: ModelBundle) -> None:
        result = self.session.finish()
        node, reference = result.segmentation_node, self.session.case.reference
        self.slicer.segmentation_editor.set_active_segmentation(node, reference)
        self.session.logic.show_overlay(node, "labels")
        data = self.panel.data
        data.has_result, data.is_brats, data.overlay = True, bundle.task == "brats", "labels"
        self._list_removed_regions()
        data.statistics = statistics_rows(result.statistics)
        self._list_lesions()
        data.count_heading = count_heading(bundle.task)
        self._offer_foregrounds(result)
        for view in self.slicer.view_manager.get_threed_views():
            view.reset_camera()
        message = f"{result.message(bundle)} {self.session.note}".strip()
        self._say(message, "warning" if result.warnings else "success")
        self.session.note = ""

    def _offer_foregrounds(self, result: SegmentResult) -> None:
        """Probability maps and kept activations become foreground choices; activations show first."""
        data = self.panel.data
        choices = [{"title": "None", "value": "none"}]
        choices += [
            {"title": node.GetName(), "value": f"probability:{index}"}
            for index, node in enumerate(result.probability_nodes)
        ]
        kept = self.session.logic.activation_choices()
        if kept is not None:
            choices.append({"title": "Activation maps", "value": "activations"})
            data.layers = [
                {"title": f"{i.name} ({i.channels} channels)", "value": i.name, "channels": i.channels}
                for i in kept.layers
            ]
            data.layer, data.views, data.view, data.channel = kept.layers[0].name, list(kept.views), "mean", 0
            data.classes, data.class_name = kept.classes, kept.classes[0] if kept.classes else ""
        data.foregrounds = choices
        data.foreground = "activations" if kept is not None else "none"
        if kept is None:
            self.slicer.display_manager.show_volume_in_slice_foreground(None)

    # --- overlays -----------------------------------------------------------------------------

    def _show_overlay(self, *_) -> None:
        data = self.panel.data
        if self.session.segmentation is not None:
            self.session.logic.show_overlay(self.session.segmentation, data.overlay, int(data.removed_region))
            self._style_regions()

    def _list_lesions(self) -> None:
        """Offer the result's lesions as they are now (edits included), the largest first."""
        logic, segmentation = self.session.logic, self.session.segmentation
        self.panel.data.lesions = numbered_items(
            logic.island_titles(segmentation, logic.lesions(segmentation))
        )
        self.panel.data.lesion = -1

    def _show_lesion(self, lesion: int, *_) -> None:
        if self.session.segmentation is not None and int(lesion) >= 0:
            self.session.logic.show_lesion(self.session.segmentation, int(lesion))

    def _list_removed_regions(self) -> None:
        """Offer what the cleaning removed and is left to keep, the largest first."""
        logic, segmentation = self.session.logic, self.session.segmentation
        titles = logic.island_titles(segmentation, logic.removed_regions(segmentation))
        self.panel.data.removed_regions = numbered_items(titles)
        self.panel.data.removed_region = 0

    def _style_regions(self, *_) -> None:
        """The regions node is not the editor's, so it takes the editor's display settings from here."""
        segmentation = self.session.segmentation
        regions = None if segmentation is None else segmentation.GetNodeReference(REGIONS_ROLE)
        if regions is None:
            return
        style = self.page.display.data
        display = SegmentationDisplay(regions.GetDisplayNode())
        display.set_opacity_mode(SegmentationOpacityEnum(style.opacity_mode))
        display.set_opacity_2d(style.opacity_2d.value)
        display.set_opacity_3d(style.opacity_3d.value)
        display.set_border_thickness(style.border_thickness.value)
        if style.show_3d:
            regions.CreateClosedSurfaceRepresentation()
        else:
            regions.RemoveClosedSurfaceRepresentation()

    def _show_foreground(self, *_) -> None:
        segmentation, data = self.session.segmentation, self.panel.data
        if segmentation is None:
            return
        if data.foreground == "none":
            self.slicer.display_manager.show_volume_in_slice_foreground(None)
        elif data.foreground == "activations":
            layer = next((item for item in data.layers if item["value"] == data.layer), None)
            data.channels = layer["channels"] if layer else 1
            data.channel = min(int(data.channel), data.channels - 1)
            self.session.logic.show_activations(
                data.layer, data.view, data.channel, data.class_name or None, data.foreground_opacity
            )
        else:
            index = int(data.foreground.partition(":")[2])
            node = self.session.logic.probability_nodes(segmentation)[index]
            node.GetDisplayNode().SetAndObserveColorNodeID(color_node_id(self.slicer.scene))
            reference = self.session.case.reference
            show_in_slice_views(self.slicer.scene, node, data.foreground_opacity, background=reference)

    # --- statistics and saving ----------------------------------------------------------------

    def _schedule_statistics(self, *_) -> None:
        if not self._statistics_pending and self.session.segmentation is not None:
            self._statistics_pending = True
            create_task(self._refresh_statistics())

    async def _refresh_statistics(self) -> None:
        await asyncio.sleep(STATISTICS_DELAY_SECONDS)
        self._statistics_pending = False
        with self.server.state:
            self._reported(self._update_statistics)()

    def _update_statistics(self) -> None:
        if self.session.segmentation is None or self.session.running:
            return
        self.panel.data.statistics = self.session.statistics()
        self._list_lesions()
        if self.panel.data.overlay == "regions":
            self._show_overlay()

    def keep_removed(self) -> None:
        """What the cleaning removed goes back into the result (an edit: Save keeps it)."""
        self._keep_removed(None, "the removed regions")

    def keep_removed_region(self) -> None:
        """The removed region the views pass through goes back; the others stay to look at."""
        self._keep_removed(int(self.panel.data.removed_region), "the removed region")

    def _keep_removed(self, region: int | None, what: str) -> None:
        segmentation, data = self.session.segmentation, self.panel.data
        data.statistics = statistics_rows(self.session.logic.keep_removed(segmentation, region))
        self._list_removed_regions()
        self._list_lesions()
        if data.removed_regions:
            self._show_overlay()  # the views move on to the largest region left
        else:
            data.overlay = "labels"
        self._say(f"Kept {what} in '{segmentation.GetName()}'; Save keeps the change.", "success")

    def save(self) -> None:
        saved = iter(self.session.save().items())
        _, current = next(saved)
        text = f"Saved {self._file_names(current)}"
        for name, paths in saved:
            text += f"; your edits of '{name}' as {self._file_names(paths)}"
        self._say(f"{text} in the data folder.", "success")

    def _file_names(self, paths: list[Path]) -> str:
        return ", ".join(path.relative_to(self.session.data_root).as_posix() for path in paths)

    # --- messages -----------------------------------------------------------------------------

    def _say(self, text: str, kind: str) -> None:
        self.panel.data.message, self.panel.data.message_type = text, kind

    def _reported(self, handler: Callable) -> Callable:
        """``handler`` with its errors shown in the page instead of reaching the server loop."""

        def report(*args):
            try:
                return handler(*args)
            except InputError as error:
                self._say(str(error), "error")
            except Cancelled:
                self._say("Cancelled.", "warning")
            except Exception as error:  # the page must survive any bad input; the log keeps the trace
                log.exception("web request failed")
                self._say(f"Something went wrong: {error}", "error")
            return None

        return report


def _model_title(bundle: ModelBundle) -> str:
    trained = "" if bundle.trained else ", untrained"
    return f"{bundle.meta.get('name', bundle.id)} ({bundle.task}, {bundle.version}{trained})"


def numbered_items(titles: list[str]) -> list[dict]:
    """A select's items for a list the logic numbers from 0 (lesions, removed regions)."""
    return [{"title": title, "value": index} for index, title in enumerate(titles)]
