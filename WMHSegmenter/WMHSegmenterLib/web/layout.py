"""The page: trame-slicer's viewer layout with a WMHSegmenter panel beside Slicer's segment editor.

Only widgets and their state live here; app.py connects the signals to the workflow. Overlay style
(fill, outline, opacity, 3D) reuses trame-slicer's segment display card on the editor's own state, so
the panel and the editor never disagree. Elements a test or a user script needs carry ``wmh-`` ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trame.widgets import html
from trame.widgets import vuetify3 as v
from trame_server import Server
from trame_server.utils.typed_state import TypedState
from trame_slicer.app.ui import (
    ControlButton,
    LayoutButton,
    SegmentDisplayUI,
    SegmentEditorState,
    SegmentEditorToolbarUI,
    SegmentEditorUI,
    SegmentEditorUndoRedoUI,
    ViewerLayout,
)
from trame_slicer.core import LayoutManager
from undo_stack import Signal

PANEL = "WMHSegmenterPanel"
DRAWER_WIDTH = 400
EDITOR = SegmentEditorUI.__name__


@dataclass
class PanelState:
    models: list[dict] = field(default_factory=list)  # select items {"title", "value"}
    model_id: str = ""
    cases: list[dict] = field(default_factory=list)
    case_key: str = ""
    case_title: str = ""  # the case open now
    keep_probabilities: bool = True
    keep_activations: bool = False
    running: bool = False
    progress: float = 0.0  # percent
    stage: str = ""
    message: str = ""
    message_type: str = "info"  # a v-alert type: info, success, warning, error
    has_result: bool = False
    is_brats: bool = False
    #: what the island cleaning removed and is left to keep, largest first: select items {"title", "value"}
    removed_regions: list[dict] = field(default_factory=list)
    removed_region: int = 0  # the one the views pass through under the "removed" overlay
    #: the result's lesions (a tumour's foci), largest first: select items {"title", "value"}
    lesions: list[dict] = field(default_factory=list)
    lesion: int = -1  # the one the views were sent to; -1 none
    overlay: str = "labels"  # or "regions", "removed"
    foregrounds: list[dict] = field(default_factory=list)
    foreground: str = "none"
    foreground_opacity: float = 0.5
    layers: list[dict] = field(default_factory=list)  # {"title", "value", "channels"}
    layer: str = ""
    views: list[str] = field(default_factory=list)
    view: str = "mean"
    channels: int = 1
    channel: int = 0
    classes: list[str] = field(default_factory=list)
    class_name: str = ""
    statistics: list[dict] = field(default_factory=list)
    count_heading: str = "Lesions"  # "Foci" for a tumour (engine quantify.count_heading)


class Page:
    """Builds the page once per server; exposes the panel state, its signals and the editor widget."""

    open_clicked = Signal()
    segment_clicked = Signal()
    cancel_clicked = Signal()
    save_clicked = Signal()
    keep_removed_clicked = Signal()
    keep_removed_region_clicked = Signal()

    def __init__(self, server: Server, layout_manager: LayoutManager):
        self.panel = TypedState(server.state, PanelState, namespace="wmh")
        self.editor_state = TypedState(server.state, SegmentEditorState)
        self.display = self.editor_state.get_sub_state(self.editor_state.name.segment_display)
        self.display.data.is_extended = True
        with ViewerLayout(server, title="WMHSegmenter", is_drawer_visible=True) as self.layout:
            self.viewer = self.layout.typed_state
            self.viewer.data.active_tool = PANEL
            self.layout.drawer.width = DRAWER_WIDTH
            with self.layout.drawer:
                with html.Div(v_if=(self._is_active(PANEL),)):
                    self._build_panel()
                self.editor = SegmentEditorUI(v_if=(self._is_active(EDITOR),))
            with self.layout.toolbar:
                self._tool_button("WMHSegmenter", "mdi-brain", PANEL)
                self._tool_button("Segment editor", "mdi-layers-edit", EDITOR)
                LayoutButton(classes="mt-1")
                with html.Div(id="wmh-editor-tools"):
                    SegmentEditorToolbarUI(editor_ui=self.editor)
            with self.layout.undo_redo:
                SegmentEditorUndoRedoUI(editor_ui=self.editor)
            with self.layout.content:
                layout_manager.initialize_layout_grid(self.layout)

    def _is_active(self, tool: str) -> str:
        return f"{self.viewer.name.active_tool} === '{tool}'"

    def _tool_button(self, title: str, icon: str, tool: str) -> None:
        def toggle():
            showing = self.viewer.data.is_drawer_visible and self.viewer.data.active_tool == tool
            self.viewer.data.is_drawer_visible = not showing
            self.viewer.data.active_tool = None if showing else tool

        ControlButton(name=title, icon=icon, click=toggle, active=(self._is_active(tool),), classes="mt-1")

    def _build_panel(self) -> None:
        name = self.panel.name
        running = (name.running,)
        with v.VCard(variant="flat", classes="pa-3"):
            v.VSelect(
                id="wmh-model",
                label="Model",
                items=(name.models,),
                v_model=(name.model_id,),
                disabled=running,
                density="compact",
                hide_details=True,
                classes="mb-3",
            )
            v.VSelect(
                id="wmh-case",
                label="Case (data folder or sample)",
                items=(name.cases,),
                v_model=(name.case_key,),
                disabled=running,
                density="compact",
                hide_details=True,
                classes="mb-2",
            )
            v.VBtn(
                "Open",
                id="wmh-open",
                click=self.open_clicked,
                disabled=(f"{name.running} || !{name.case_key}",),
                prepend_icon="mdi-folder-open",
                variant="tonal",
                block=True,
            )
            v.VDivider(classes="my-3")
            with html.Div(classes="d-flex"):
                v.VCheckbox(
                    label="Probability maps",
                    v_model=(name.keep_probabilities,),
                    density="compact",
                    hide_details=True,
                )
                v.VCheckbox(
                    label="Activation maps",
                    v_model=(name.keep_activations,),
                    density="compact",
                    hide_details=True,
                )
            with html.Div(classes="d-flex ga-2"):
                v.VBtn(
                    "Segment",
                    id="wmh-segment",
                    click=self.segment_clicked,
                    disabled=(f"{name.running} || !{name.case_title} || !{name.model_id}",),
                    color="primary",
                    prepend_icon="mdi-play",
                    classes="flex-grow-1",
                )
                v.VBtn(
                    "Cancel",
                    id="wmh-cancel",
                    click=self.cancel_clicked,
                    disabled=(f"!{name.running}",),
                    prepend_icon="mdi-stop",
                    variant="tonal",
                )
            with html.Div(v_if=running, id="wmh-progress", classes="mt-2"):
                v.VProgressLinear(model_value=(name.progress,), height=8, color="primary", rounded=True)
                html.Div("{{ " + name.stage + " }}", classes="text-caption")
            v.VAlert(
                "{{ " + name.message + " }}",
                id="wmh-message",
                v_if=(name.message,),
                type=(name.message_type,),
                density="compact",
                variant="tonal",
                classes="mt-3 text-body-2",
            )
            with html.Div(v_if=(name.has_result,)):
                self._build_results()

    def _build_results(self) -> None:
        name = self.panel.name
        v.VDivider(classes="my-3")
        has_removed = f"{name.removed_regions}.length > 0"
        with v.VRadioGroup(
            id="wmh-overlay",
            v_if=(f"{name.is_brats} || {has_removed}",),
            v_model=(name.overlay,),
            inline=True,
            density="compact",
            hide_details=True,
        ):
            v.VRadio(label="Tumor labels", value="labels")
            v.VRadio(v_if=(name.is_brats,), label="Regions WT/TC/ET", value="regions")
            v.VRadio(v_if=(has_removed,), label="Removed by cleaning", value="removed")
        v.VSelect(
            id="wmh-removed-region",
            v_if=(f"{has_removed} && {name.overlay} === 'removed'",),
            label="Removed region (the views pass through it)",
            items=(name.removed_regions,),
            v_model=(name.removed_region,),
            density="compact",
            hide_details=True,
            classes="mt-2",
        )
        with html.Div(v_if=(has_removed,), classes="d-flex ga-2 mt-1"):
            v.VBtn(
                "Keep this region",
                id="wmh-keep-removed-region",
                v_if=(f"{name.overlay} === 'removed'",),
                click=self.keep_removed_region_clicked,
                disabled=(name.running,),
                prepend_icon="mdi-plus-box",
                variant="tonal",
                size="small",
            )
            v.VBtn(
                "Keep all",
                id="wmh-keep-removed",
                click=self.keep_removed_clicked,
                disabled=(name.running,),
                prepend_icon="mdi-plus-box-multiple",
                variant="tonal",
                size="small",
            )
        SegmentDisplayUI(typed_state=self.display, variant="flat", density="compact")
        v.VSelect(
            id="wmh-foreground",
            label="Foreground overlay",
            items=(name.foregrounds,),
            v_model=(name.foreground,),
            density="compact",
            hide_details=True,
            classes="mt-2",
        )
        v.VSlider(
            label="Opacity",
            v_if=(f"{name.foreground} !== 'none'",),
            v_model=(name.foreground_opacity,),
            min=0,
            max=1,
            step=0.05,
            density="compact",
            hide_details=True,
        )
        with html.Div(v_if=(f"{name.foreground} === 'activations'",)):
            v.VSelect(
                label="Layer",
                items=(name.layers,),
                v_model=(name.layer,),
                density="compact",
                hide_details=True,
                classes="mb-1",
            )
            v.VSelect(
                label="View", items=(name.views,), v_model=(name.view,), density="compact", hide_details=True
            )
            v.VSlider(
                label="Channel",
                v_if=(f"{name.view} === 'channel'",),
                v_model=(name.channel,),
                min=0,
                max=(f"{name.channels} - 1",),
                step=1,
                thumb_label=True,
                density="compact",
                hide_details=True,
            )
            v.VSelect(
                label="Class",
                v_if=(f"{name.view} === 'gradcam'",),
                items=(name.classes,),
                v_model=(name.class_name,),
                density="compact",
                hide_details=True,
            )
        with v.VTable(id="wmh-statistics", density="compact", classes="mt-3"):
            with html.Thead(), html.Tr():
                for title in ("Segment", "Volume (ml)", f"{{{{ {name.count_heading} }}}}", "Voxels"):
                    html.Th(title)
            with html.Tbody(), html.Tr(v_for=f"(row, index) in {name.statistics}", key="index"):
                for column in ("name", "volume_ml", "components", "voxels"):
                    html.Td("{{ row." + column + " }}")
        v.VSelect(
            id="wmh-lesion",
            v_if=(f"{name.lesions}.length > 0",),
            label=(f"{name.count_heading} + ', largest first: the views go to the one chosen'",),
            items=(name.lesions,),
            v_model=(name.lesion,),
            density="compact",
            hide_details=True,
            classes="mt-2",
        )
        v.VBtn(
            "Save segmentation",
            id="wmh-save",
            click=self.save_clicked,
            disabled=(name.running,),
            prepend_icon="mdi-content-save",
            variant="tonal",
            block=True,
            classes="mt-3",
        )
