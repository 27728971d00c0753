"""The region list (colour chip, tag, how it was made, area, caption), captions, Describe, Delete.

The list is a ``gr.HTML`` whose template holds no data: its script builds the rows from the
value with ``textContent``, so a caption such as ``${alert(1)}`` or ``C:\\users\\me`` is shown
as written. Captions stream into their row while GAR writes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from components.chat import decoding_settings
from components.common import View, Wiring
from components.session import Session
from components.style import ink
from gar_app.errors import InputError
from gar_app.workspace import Services

TEMPLATE = '<div class="gar-regions" role="list"></div>'
SCRIPT = """
const list = element.querySelector('.gar-regions');
function render() {
  const rows = Array.isArray(props.value) ? props.value : [];
  list.replaceChildren();
  if (!rows.length) {
    const empty = document.createElement('p');
    empty.className = 'gar-empty';
    empty.textContent = 'No regions yet: click on the image to mark one.';
    list.append(empty);
    return;
  }
  for (const r of rows) {
    const row = document.createElement('div');
    row.className = 'gar-region-row' + (r.selected ? ' gar-selected' : '');
    row.setAttribute('role', 'listitem');
    row.dataset.tag = r.tag;
    row.title = 'Select ' + r.tag + ' to edit it';
    const chip = document.createElement('span');
    chip.className = 'gar-chip';
    chip.style.background = r.colour;
    chip.style.color = r.ink;
    chip.textContent = r.tag;
    const meta = document.createElement('span');
    meta.className = 'gar-region-meta';
    meta.textContent = r.meta;
    const caption = document.createElement('div');
    caption.className = 'gar-region-caption';
    caption.textContent = r.caption || '(no caption yet)';
    row.append(chip, meta, caption);
    list.append(row);
  }
}
list.addEventListener('click', (event) => {
  const row = event.target.closest('[data-tag]');
  if (row) trigger('pick_region', {tag: row.dataset.tag});
});
watch('value', render);
render();
"""


@dataclass
class RegionsUI:
    rows: gr.HTML
    caption: gr.Textbox
    describe: gr.Button
    describe_all: gr.Button
    delete: gr.Button
    api_tag: gr.Textbox  # hidden: the region an API call names
    api_button: gr.Button  # hidden: API-only endpoints hang on it

    @property
    def view(self) -> View:
        return View([self.rows, self.caption], render)


def build(services: Services) -> RegionsUI:
    rows = gr.HTML(
        value=[],
        html_template=TEMPLATE,
        js_on_load=SCRIPT,
        elem_id="gar-region-list",
        padding=False,
        label="Regions",
    )
    has_model = services.gar is not None
    caption = gr.Textbox(
        label="Caption",
        lines=2,
        max_lines=10,
        interactive=False,
        elem_id="gar-caption",
        placeholder="Select a region, then type its caption or press Describe",
    )
    with gr.Row(elem_classes=["gar-actions"]):
        describe = gr.Button(
            "Describe", variant="primary", interactive=has_model, size="sm", elem_id="gar-describe"
        )
        describe_all = gr.Button("Describe all", interactive=has_model, size="sm")
        delete = gr.Button("Delete region", variant="stop", size="sm", elem_id="gar-delete-region")
    with gr.Group(visible=False):
        api_tag = gr.Textbox(label="tag")
        api_button = gr.Button("api")
    return RegionsUI(rows, caption, describe, describe_all, delete, api_tag, api_button)


def rows(session: Session) -> list[dict]:
    ws = session.workspace
    current = ws.marking.current if ws.marking is not None else None
    changed = set(ws.conversation.changed(ws.regions))
    used = set(ws.conversation.masks)
    result = []
    for region in ws.regions:
        meta = f"{region.source} · {region.area:,} px"
        if region.index in changed:
            meta += " · changed since the conversation used it"
        elif region.index in used:
            meta += " · in the conversation"
        result.append(
            {
                "tag": region.tag,
                "colour": region.colour,
                "ink": ink(region.colour),
                "meta": meta,
                "caption": region.caption,
                "selected": region.index == current,
            }
        )
    return result


def render(session: Session) -> list:
    region = session.workspace.marking.current_region if session.workspace.marking is not None else None
    caption = gr.update(
        value=region.caption if region else "",
        interactive=region is not None,
        label=f"Caption of {region.tag}" if region else "Caption",
    )
    return [rows(session), caption]


# ---------------------------------------------------------------- handlers


def _current(session: Session):
    region = session.workspace.require_marking().current_region
    if region is None:
        raise InputError("select a region first (click its row, or mark one on the image)")
    return region


def pick_region(session: Session, evt: gr.EventData) -> None:
    session.workspace.require_marking().select(str(getattr(evt, "tag", "")))


def select_region(session: Session, tag: str) -> None:
    """``/select_region``: the region the next marks, Describe and Delete act on."""
    session.workspace.require_marking().select(tag)


def caption_edited(session: Session, caption: str) -> None:
    region = _current(session)
    if (caption or "").strip() != region.caption:
        session.workspace.marking.set_caption(region.index, (caption or "").strip())


def api_set_caption(session: Session, tag: str, caption: str) -> None:
    """``/set_caption``: a hand-written caption for ``tag``."""
    session.workspace.require_marking().set_caption(tag, (caption or "").strip())


def delete_current(session: Session) -> str:
    region = _current(session)
    session.workspace.marking.delete(region.index)
    return f"Deleted {region.tag} (Undo brings it back)."


def api_delete(session: Session, tag: str) -> str:
    """``/delete_region``: remove ``tag``; Undo brings it back."""
    region = session.workspace.require_marking().delete(tag)
    return f"Deleted {region.tag} (Undo brings it back)."


def _describe(session: Session, keys, settings):
    ws = session.workspace
    ws.require_gar()
    for key in keys:
        yield None
        for _text in ws.stream_caption(key, settings):
            yield None


def describe_current(session: Session, *settings):
    yield from _describe(session, [_current(session).index], decoding_settings(*settings))


def api_describe(session: Session, tag: str, *settings):
    """``/describe``: stream GAR's caption of ``tag`` (the selected region when empty)."""
    ws = session.workspace
    ws.require_image()
    if not tag:
        tag = _current(session).tag
    yield from _describe(session, [ws.regions.get(tag).index], decoding_settings(*settings))


def describe_all(session: Session, *settings):
    ws = session.workspace
    ws.require_image()
    if not len(ws.regions):
        raise InputError("there are no regions to describe yet: click on the image to mark one")
    yield from _describe(session, [r.index for r in ws.regions], decoding_settings(*settings))


def wire(ui: RegionsUI, wiring: Wiring, settings: list) -> None:
    gar = {"concurrency_limit": 1, "concurrency_id": "gar"}
    ui.rows.pick_region(**wiring.event(pick_region), api_visibility="private")
    ui.caption.blur(**wiring.event(caption_edited, [ui.caption]), api_visibility="private")
    ui.caption.submit(**wiring.event(caption_edited, [ui.caption]), api_visibility="private")
    ui.delete.click(**wiring.event(delete_current), api_visibility="private")
    ui.describe.click(
        **wiring.event(describe_current, settings, views=[ui.view], gpu=True), **gar, api_visibility="private"
    )
    ui.describe_all.click(
        **wiring.event(describe_all, settings, views=[ui.view], gpu=True), **gar, api_name="describe_all"
    )
    api = {"inputs": [ui.api_tag]}
    ui.api_button.click(**wiring.event(select_region, **api), api_name="select_region")
    ui.api_button.click(**wiring.event(api_delete, **api), api_name="delete_region")
    ui.api_button.click(**wiring.event(api_set_caption, [ui.api_tag, ui.caption]), api_name="set_caption")
    ui.api_button.click(
        **wiring.event(api_describe, [ui.api_tag, *settings], views=[ui.view], gpu=True),
        **gar,
        api_name="describe",
    )
