"""The image canvas and the marking tools: points, two-click boxes, scribbles, uploaded masks."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import numpy as np

from components.common import payload_path, ui_action
from components.page import Page, as_outputs, refresh_regions
from gar_app.errors import InputError

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "examples"
INCLUDE, EXCLUDE, BOX, SCRIBBLE, MASK = "Include point", "Exclude point", "Box", "Scribble", "Upload mask"
TOOLS = [INCLUDE, EXCLUDE, BOX, SCRIBBLE, MASK]
HINTS = {
    INCLUDE: "Click on the object. More include points grow the region; exclude points trim it. "
    "Drag to draw a box.",
    EXCLUDE: "Click on what should *not* be in the current region.",
    BOX: "Drag a box around the object, or click one corner and then the opposite one.",
    SCRIBBLE: "Paint over the object in the editor below, then press **Segment the scribble**.",
    MASK: "Upload a black-and-white mask image (any non-zero pixel is inside) for the current region.",
}


def example_images() -> list[str]:
    return sorted(str(p) for p in ASSETS.glob("*.jpg"))


DRAG_JS = """
() => {
  // A drag on the canvas draws a box: report it in image pixels to #gar-drag-box and swallow
  // the click the browser sends after it, so it is not also taken for a point.
  const attach = () => {
    const root = document.querySelector('#gar-canvas');
    const field = document.querySelector('#gar-drag-box textarea');
    if (!root || !field) { setTimeout(attach, 300); return; }
    let start = null;
    root.addEventListener('dragstart', (e) => { if (e.target.tagName === 'IMG') e.preventDefault(); }, true);
    root.addEventListener('pointerdown', (e) => {
      start = (e.target.tagName === 'IMG' && e.button === 0) ? {x: e.clientX, y: e.clientY, img: e.target} : null;
    }, true);
    root.addEventListener('pointerup', (e) => {
      const s = start; start = null;
      if (!s || Math.hypot(e.clientX - s.x, e.clientY - s.y) < 8) return;  // a click: Gradio's own
      const img = s.img, r = img.getBoundingClientRect();
      const scale = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
      const left = r.left + (r.width - img.naturalWidth * scale) / 2;
      const top = r.top + (r.height - img.naturalHeight * scale) / 2;
      const px = (cx, cy) => [(cx - left) / scale, (cy - top) / scale];
      field.value = JSON.stringify([...px(s.x, s.y), ...px(e.clientX, e.clientY), Date.now()]);  // always a change
      field.dispatchEvent(new Event('input', {bubbles: true}));
      const swallow = (ev) => { ev.stopPropagation(); ev.preventDefault(); };
      window.addEventListener('click', swallow, {capture: true, once: true});
      setTimeout(() => window.removeEventListener('click', swallow, {capture: true}), 400);
    }, true);
  };
  attach();
}
"""


def build(page: Page) -> None:
    page.canvas = gr.Image(
        label="Image — upload or paste one, or pick an example; then click on it to mark regions",
        sources=["upload", "clipboard"],
        type="filepath",
        interactive=True,
        elem_id="gar-canvas",
        height=560,
        buttons=["download", "fullscreen"],
    )
    page.examples = gr.Examples(example_images(), inputs=[page.canvas], label="Examples (CC0 photos)")
    with gr.Row():
        page.tool = gr.Radio(TOOLS, value=INCLUDE, label="Tool", scale=4)
        page.new_region = gr.Button("New region", variant="secondary", scale=1)
    page.tool_hint = gr.Markdown(HINTS[INCLUDE])
    page.region_info = gr.Markdown("Load an image to start.", elem_classes=["gar-status"])
    page.scribble = gr.ImageEditor(
        label="Scribble over the object",
        type="numpy",
        image_mode="RGBA",
        sources=[],
        brush=gr.Brush(colors=["#ff00ff"], color_mode="fixed"),
        layers=False,
        transforms=(),
        visible=False,
    )
    page.scribble_apply = gr.Button("Segment the scribble", visible=False)
    page.mask_upload = gr.Image(label="Mask image", type="filepath", sources=["upload"], visible=False)
    with gr.Row(visible=False):  # the same marking, callable by scripts: POST /mark with x, y, tool
        page.point_x = gr.Number(label="x")
        page.point_y = gr.Number(label="y")
        page.point_mark = gr.Button("Mark")
    # A drag on the canvas arrives here as "[x1, y1, x2, y2, time]" in image pixels (see DRAG_JS);
    # rendered but hidden, because the browser script has to find it.
    page.drag_box = gr.Textbox(elem_id="gar-drag-box", elem_classes=["gar-hidden"], show_label=False, container=False)


def _mark(ws, tool: str, x: float, y: float):
    if tool == INCLUDE:
        ws.add_point(x, y, positive=True)
    elif tool == EXCLUDE:
        ws.add_point(x, y, positive=False)
    elif tool == BOX:
        ws.box_click(x, y)
    else:
        ws.require_image()
        raise InputError(f"With the {tool} tool, use the panel below the tools instead of clicking the image.")
    return ws


def wire(page: Page) -> None:
    outputs = page.outputs()

    @ui_action(page, restore=True)
    def on_image_uploaded(state, upload):
        ws = page.workspace(state)
        path = payload_path(upload)
        if path is None:
            return as_outputs(page, refresh_regions(ws))
        name = upload.get("orig_name") if isinstance(upload, dict) else None
        ws.set_image(path, name=name or Path(path).name)
        return as_outputs(page, refresh_regions(ws) | {"chatbot": []})

    @ui_action(page)
    def on_canvas_clicked(state, tool, evt: gr.SelectData):
        ws = page.workspace(state)
        x, y = evt.index[0], evt.index[1]
        return as_outputs(page, refresh_regions(_mark(ws, tool, x, y)))

    @ui_action(page)
    def on_point_marked(state, tool, x, y):
        ws = page.workspace(state)
        return as_outputs(page, refresh_regions(_mark(ws, tool, float(x), float(y))))

    @ui_action(page)
    def on_box_dragged(state, box_json):
        ws = page.workspace(state)
        try:
            box = [float(v) for v in json.loads(box_json)]
        except (ValueError, TypeError):
            return {}
        if len(box) < 4:
            return {}
        ws.corner = None
        ws.set_box(tuple(box[:4]))
        return as_outputs(page, refresh_regions(ws))

    @ui_action(page)
    def on_new_region_clicked(state):
        ws = page.workspace(state)
        ws.require_image()
        ws.new_region()
        return as_outputs(page, refresh_regions(ws))

    def on_tool_changed(state, tool):
        ws = page.workspace(state)
        ws.corner = None
        scribble = tool == SCRIBBLE
        editor = gr.update(visible=scribble)
        if scribble and ws.image is not None:
            editor = gr.update(visible=True, value={"background": np.asarray(ws.image), "layers": [], "composite": None})
        return {
            page.tool_hint: HINTS[tool],
            page.scribble: editor,
            page.scribble_apply: gr.update(visible=scribble),
            page.mask_upload: gr.update(visible=tool == MASK),
            page.canvas: ws.render() if ws.image is not None else gr.update(),
        }

    @ui_action(page)
    def on_scribble_applied(state, drawing):
        ws = page.workspace(state)
        ws.require_image()
        layers = (drawing or {}).get("layers") or []
        strokes = [layer[..., 3] > 0 for layer in layers if layer is not None and layer.ndim == 3]
        if not strokes or not any(s.any() for s in strokes):
            raise InputError("Paint over the object with the brush first, then press Segment the scribble.")
        ws.add_scribble(np.logical_or.reduce(strokes))
        return as_outputs(page, refresh_regions(ws))

    @ui_action(page)
    def on_mask_uploaded(state, upload):
        ws = page.workspace(state)
        path = payload_path(upload)
        if path is None:
            return as_outputs(page, refresh_regions(ws))
        ws.add_mask(path)
        return as_outputs(page, refresh_regions(ws))

    uploaded = {"fn": on_image_uploaded, "inputs": [page.state, page.canvas], "outputs": page.outputs(page.chatbot)}
    page.canvas.upload(**uploaded, preprocess=False, api_name="load_image")
    page.examples.load_input_event.then(**uploaded, preprocess=False, api_visibility="private")
    page.canvas.select(on_canvas_clicked, [page.state, page.tool], outputs, api_visibility="private")
    page.point_mark.click(on_point_marked, [page.state, page.tool, page.point_x, page.point_y], outputs, api_name="mark")
    page.new_region.click(on_new_region_clicked, [page.state], outputs, api_name="new_region")
    page.drag_box.change(on_box_dragged, [page.state, page.drag_box], outputs, api_name="drag_box")
    page.tool.change(
        on_tool_changed,
        [page.state, page.tool],
        [page.tool_hint, page.scribble, page.scribble_apply, page.mask_upload, page.canvas],
        api_visibility="private",
    )
    page.scribble_apply.click(on_scribble_applied, [page.state, page.scribble], outputs, api_name="scribble")
    page.mask_upload.upload(
        on_mask_uploaded, [page.state, page.mask_upload], outputs, preprocess=False, api_name="upload_mask"
    )
