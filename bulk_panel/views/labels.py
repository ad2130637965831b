"""The label tools: the chooser (synced with the selection) and the label edits.

>>> LabelTools(store=store)
"""
from __future__ import annotations

import panel as pn
import param

from ..state import ResultsStore
from ._widgets import button, on_demand, text_pane

__all__ = ["LabelTools"]

#: a selection that spans many labels lists their chips in a box that scrolls, below which the
#: labelling tools stay in place
CHOOSER_CSS = ".choices__inner { max-height: 8.5em; overflow-y: auto; }"


class LabelTools(pn.viewable.Viewer):
    """The label chooser (synced with the selection) and the label edits: relabel, rename,
    merge, undo, redo, reset, save."""

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    new_label = param.String(default="", doc="The label to give the selection, or the merge target.")
    rename_from = param.Selector(default=None, objects=[], allow_None=True, doc="The label to rename.")
    rename_to = param.String(default="", doc="Its new name.")

    def __init__(self, **params):
        super().__init__(**params)
        store = self.store
        self._sync_rename_options()
        store.param.watch(lambda *e: self._sync_rename_options(), "frame")

        def act(fn):
            def run():
                try:
                    fn()
                except (ValueError, OSError) as exc:
                    store.message = f"Not done: {exc}"
            return run

        async def save(event=None):
            try:
                await store.save_labels_async()
            except (ValueError, OSError) as exc:
                store.message = f"Not saved: {exc}"

        # options read "label (count)" (the store's names, counted in the selection); the value is
        # the labels themselves
        self.chooser = pn.widgets.MultiChoice.from_param(
            store.param.selected_labels, label="Labels in the selection", placeholder="choose labels",
            description="Each count: the label's images in the map selection, before choosing labels "
                        "narrows it (all its images when nothing is selected or 'Only change selected' is off).",
            sizing_mode="stretch_width", stylesheets=[CHOOSER_CSS],
        )
        store.param.watch(self._resend_chosen, "selected_labels", what="objects")
        self.save_button = pn.widgets.Button(
            label="Save labels", color="primary",
            disabled=pn.bind(lambda dirty, results: not dirty or results is None or results.path is None,
                             store.param.dirty, store.param.results),
        )
        self.save_button.on_click(save)  # a coroutine: the file is written in a worker thread
        self.relabel_button = button("Label selection", act(lambda: store.relabel(self.new_label)), color="primary")
        self.merge_button = button(
            "Merge chosen", act(lambda: store.merge_labels(store.selected_labels, self.new_label)), variant="outline"
        )
        self.widgets = pn.Column(
            self.chooser,
            pn.widgets.Checkbox.from_param(store.param.only_selected, label="Only change selected"),
            pn.Row(
                button("Clear labels", store.clear_labels, variant="outline"),
                button("Clear selection", store.clear_selection, variant="outline"),
            ),
            pn.layout.Divider(),
            pn.widgets.TextInput.from_param(self.param.new_label, label="Label", placeholder="new or existing label",
                                            sizing_mode="stretch_width"),
            pn.Row(self.relabel_button, self.merge_button),
            # renaming, the less frequent edit: made when its section is first opened
            on_demand("Rename a label", lambda: pn.Column(
                pn.Row(
                    pn.widgets.Select.from_param(self.param.rename_from, label="Rename", sizing_mode="stretch_width"),
                    pn.widgets.TextInput.from_param(self.param.rename_to, label="to", sizing_mode="stretch_width"),
                ),
                button("Rename", act(lambda: store.rename_label(self.rename_from, self.rename_to)), variant="outline"),
                sizing_mode="stretch_width",
            )),
            pn.layout.Divider(),
            pn.Row(
                button("Undo", store.undo, disabled=store.param.can_undo.rx.not_(), variant="outline"),
                button("Redo", store.redo, disabled=store.param.can_redo.rx.not_(), variant="outline"),
                button("Reset", store.reset, variant="outline"),
            ),
            self.save_button,
            text_pane(store.param.message, styles={"white-space": "pre-wrap", "font-size": "12px"}),
            sizing_mode="stretch_width",
        )

    def _resend_chosen(self, event) -> None:
        # Panel sends a MultiChoice's value to the browser (as option texts) only when the value
        # changes: after new texts (new counts), send the unchanged value again, or the browser holds
        # chosen texts that match no option any more and shows no chips. A value still on its way
        # to the widget (set with the texts in one batch) goes out with the new texts by itself,
        # and sending the widget's older value now would set it back in the store.
        if list(self.chooser.value) == list(self.store.selected_labels):
            self.chooser.param.trigger("value")

    def _sync_rename_options(self) -> None:
        labels = self.store.sorted_labels(self.store.frame)
        self.param.rename_from.objects = labels
        if self.rename_from not in labels:
            self.rename_from = labels[0] if labels else None

    def __panel__(self):
        return self.widgets
