"""The annotation canvas: the image, every region's mask and tag, the marks, and the tools.

One ``gr.HTML`` component draws everything in the browser (``canvas.js``): the image once,
then each region as a compact mask (a 1-bit PNG of its box, sent only when it changed),
its tag, and the marks that made it (include / exclude points, box, brush strokes).
Coordinates go to the server in image pixels whatever the zoom, pan or screen density.
The template holds no data at all: the script reads the component's value and writes text
with ``textContent``, so nothing a person or the model wrote is ever parsed as markup or
evaluated as a template.

Every action also has a named API endpoint (``/load_image``, ``/mark``, ``/box``,
``/stroke``, ``/upload_mask``, ``/new_region``, ``/undo``, ``/redo``) for gradio_client.

For other tabs (a video frame, tracked masks): put the image and regions in the session's
workspace (``Workspace.set_image(frame, name=..., video=..., regions={k: mask})``) and return
the wiring's views; ``canvas_value`` draws whatever the workspace holds.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.utils import get_upload_folder, is_in_or_equal
from PIL import Image

from components.common import View, Wiring, payload_path
from components.session import PendingImage, Session
from components.style import ink
from gar_app.errors import InputError
from gar_app.images import mask_box
from gar_app.regions import region_colour

HERE = Path(__file__).resolve().parent
ASSETS = HERE.parent / "assets" / "examples"
TOOLS = {
    "include": "include",
    "include point": "include",
    "exclude": "exclude",
    "exclude point": "exclude",
    "box": "box",
}

TEMPLATE = (HERE / "canvas.html").read_text()  # static: no data, no ${...}; canvas.js fills it in
SCRIPT = (HERE / "canvas.js").read_text()


def example_images() -> list[str]:
    return sorted(str(p) for p in ASSETS.glob("*.jpg"))


@dataclass
class CanvasUI:
    stage: gr.HTML
    image_input: gr.Image  # hidden: examples and /load_image put a file here
    examples: gr.Examples
    new_region: gr.Button
    undo: gr.Button
    redo: gr.Button
    mask_upload: gr.UploadButton
    api: dict  # hidden inputs of the API-only endpoints
    api_button: gr.Button

    @property
    def view(self) -> View:
        return View([self.stage, self.undo, self.redo], render)


def build() -> CanvasUI:
    with gr.Row(elem_classes=["gar-actions"]):
        new_region = gr.Button("New region", elem_id="gar-new-region", size="sm", variant="primary")
        undo = gr.Button("Undo", elem_id="gar-undo", size="sm", interactive=False)
        redo = gr.Button("Redo", elem_id="gar-redo", size="sm", interactive=False)
        mask_upload = gr.UploadButton(
            "Upload mask", file_types=["image"], size="sm", elem_id="gar-mask-upload"
        )
    stage = gr.HTML(
        value=None,
        html_template=TEMPLATE,
        js_on_load=SCRIPT,
        label="Canvas",
        elem_id="gar-canvas-block",
        padding=False,
        apply_default_css=False,
    )
    image_input = gr.Image(type="filepath", visible=False, label="Image")
    examples = gr.Examples(
        example_images(),
        inputs=[image_input],
        label="Examples (CC0 photos)",
        examples_per_page=8,
        elem_id="gar-examples",
    )
    with gr.Group(visible=False):  # inputs of the API-only endpoints (scripts call /mark, /box, /stroke)
        api = {
            "tool": gr.Textbox(label="tool"),
            "x": gr.Number(label="x"),
            "y": gr.Number(label="y"),
            "x2": gr.Number(label="x2"),
            "y2": gr.Number(label="y2"),
            "points": gr.Textbox(label="points"),
            "radius": gr.Number(label="radius"),
            "erase": gr.Checkbox(label="erase"),
        }
        api_button = gr.Button("api")
    return CanvasUI(stage, image_input, examples, new_region, undo, redo, mask_upload, api, api_button)


# ---------------------------------------------------------------- what the browser draws


def _png(mask: np.ndarray) -> str:
    """A 1-bit PNG (transparent outside) as a data URL: a few hundred bytes for most masks."""
    image = Image.fromarray(mask.astype(np.uint8), "P")
    image.putpalette([0, 0, 0, 255, 255, 255])
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0, bits=1, optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _jpeg(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _part(session: Session, kind: str, index: int, mask: np.ndarray | None, keys: set[str]) -> dict | None:
    """A mask cropped to its box, sent only when the browser does not have it yet."""
    if mask is None or not mask.any():
        return None
    box = mask_box(mask)
    crop = np.ascontiguousarray(mask[box[1] : box[3] + 1, box[0] : box[2] + 1])
    digest = hashlib.blake2b(np.packbits(crop).tobytes() + repr((box, crop.shape)).encode(), digest_size=10)
    key = f"{kind}{index}-{digest.hexdigest()}"  # the colour follows the index, so it is part of the key
    keys.add(key)
    part = {"key": key, "box": list(box)}
    if key not in session.sent:
        part["src"] = _png(crop)
        session.sent.add(key)
    return part


def _status(session: Session) -> str:
    ws = session.workspace
    if ws.image is None:
        return "Open an image: drop or paste one here, choose a file, or pick an example."
    marking = ws.marking
    count = len(marking.regions)
    limit = ws.services.prompt_numbers
    parts = [
        f"{ws.info.name} · {ws.image.width}×{ws.image.height}",
        f"{count} region{'s' if count != 1 else ''}" + (f" of at most {limit}" if limit else ""),
    ]
    if marking.corner is not None:
        parts.append(
            f"box corner at ({marking.corner[0]:.0f}, {marking.corner[1]:.0f}): click the opposite corner"
        )
    elif marking.current_region is not None:
        parts.append(f"marks edit {marking.current_region.tag}")
    else:
        try:
            parts.append(f"the next mark starts <Prompt{marking.next_index()}>")
        except InputError:
            parts.append("no tag left for a new region")
    return " · ".join(parts)


def canvas_value(session: Session) -> dict:
    """Everything the canvas draws, with image and mask bytes only where the browser lacks them."""
    ws = session.workspace
    session.renders += 1
    value = {"version": session.renders, "status": _status(session), "image": None, "regions": []}
    if ws.image is None:
        return value
    keys: set[str] = set()
    image_key = f"image-{ws.info.sha256[:20]}"
    keys.add(image_key)
    value["image"] = {"key": image_key, "width": ws.image.width, "height": ws.image.height}
    if image_key not in session.sent:
        value["image"]["src"] = _jpeg(ws.image)
        session.sent.add(image_key)
    marking = ws.marking
    for region in marking.regions:
        prompt = region.prompt
        scribble = None if prompt is None else marking.scribble_of(prompt)
        value["regions"].append(
            {
                "index": region.index,
                "tag": region.tag,
                "colour": region.colour,
                "ink": ink(region.colour),
                "label": list(region.label_point),
                "mask": _part(session, "m", region.index, region.mask, keys),
                "points": [
                    [float(x), float(y), int(label)]
                    for (x, y), label in zip(prompt.points, prompt.labels, strict=True)
                ]
                if prompt
                else [],
                "box": None if prompt is None or prompt.box is None else [float(v) for v in prompt.box],
                "scribble": _part(session, "s", region.index, scribble, keys),
            }
        )
    value["current"] = marking.current
    try:
        next_index = marking.next_index()
        value["next"] = {"index": next_index, "colour": region_colour(next_index)}
    except InputError:
        value["next"] = None
    value["corner"] = None if marking.corner is None else list(marking.corner)
    session.sent &= keys  # the browser drops what it no longer needs, and so do we
    return value


def render(session: Session) -> list:
    marking = session.workspace.marking
    return [
        canvas_value(session),
        gr.update(interactive=marking is not None and marking.can_undo),
        gr.update(interactive=marking is not None and marking.can_redo),
    ]


# ---------------------------------------------------------------- handlers


def _number(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise InputError(f"{name} must be a number of image pixels, not {value!r}")
    return number


def show_image(session: Session, source, name: str, video=None) -> str | None:
    """Show a new image or video frame; with unsaved work, ask first (the ask bar offers both)."""
    ws = session.workspace
    if ws.unsaved or session.tracking_unsaved:
        session.pending_image = PendingImage(source, name, video)
        return None
    ws.set_image(source, name=name, video=video)
    session.pending_image = None
    return None


def switch_image(session: Session) -> str | None:
    """The person chose to drop the unsaved work and open the image they asked for."""
    pending = session.pending_image
    if pending is None:
        return None
    session.workspace.set_image(pending.source, name=pending.name, video=pending.video)
    session.pending_image = None
    return f"Opened {pending.name}; the previous work was discarded."


def keep_image(session: Session) -> str | None:
    session.pending_image = None
    return "Kept the current image and its work."


def load_image(session: Session, upload) -> str | None:
    """``/load_image`` (and the examples): the file from the hidden image input."""
    path = payload_path(upload)
    if path is None:
        return None
    name = upload.get("orig_name") if isinstance(upload, dict) else None
    return show_image(session, path, name or Path(path).name)


def open_uploaded(session: Session, evt: gr.EventData) -> str | None:
    """A file chosen, dropped or pasted on the canvas, already uploaded by the browser."""
    path = str(getattr(evt, "path", "") or "")
    if not path or not is_in_or_equal(path, get_upload_folder()):
        raise InputError("that file was not uploaded through this page; choose it again")
    return show_image(session, path, Path(str(getattr(evt, "name", "") or path)).name)


def resync(session: Session, evt: gr.EventData) -> None:
    """The browser lost images or masks (e.g. a dropped update): send everything again."""
    session.sent.clear()


def mark_point(session: Session, evt: gr.EventData) -> None:
    marking = session.workspace.require_marking()
    marking.add_point(_number(evt.x, "x"), _number(evt.y, "y"), positive=bool(getattr(evt, "positive", True)))


def mark_box(session: Session, evt: gr.EventData) -> None:
    box = getattr(evt, "box", None)
    if not isinstance(box, list) or len(box) != 4:
        raise InputError("a box is four numbers [x1, y1, x2, y2]")
    session.workspace.require_marking().set_box([_number(v, "a box corner") for v in box])


def _stroke(session: Session, points, radius, erase) -> None:
    if (
        not isinstance(points, list)
        or not points
        or not all(isinstance(p, list) and len(p) == 2 for p in points)
    ):
        raise InputError("a stroke is a list of [x, y] points in image pixels")
    line = [[_number(x, "x"), _number(y, "y")] for x, y in points]
    session.workspace.require_marking().add_stroke(
        line, _number(radius, "the brush radius"), erase=bool(erase)
    )


def mark_stroke(session: Session, evt: gr.EventData) -> None:
    _stroke(session, getattr(evt, "points", None), getattr(evt, "radius", None), getattr(evt, "erase", False))


def api_mark(session: Session, tool: str, x: float, y: float) -> None:
    """``/mark``: ``tool`` is include, exclude or box (two calls make a box)."""
    marking = session.workspace.require_marking()
    kind = TOOLS.get(str(tool or "").strip().lower())
    if kind is None:
        raise InputError(f"unknown tool {tool!r}; use include, exclude or box")
    x, y = _number(x, "x"), _number(y, "y")
    if kind == "box":
        marking.box_click(x, y)
    else:
        marking.add_point(x, y, positive=kind == "include")


def api_box(session: Session, x1: float, y1: float, x2: float, y2: float) -> None:
    """``/box``: a box from (x1, y1) to (x2, y2), in image pixels."""
    session.workspace.require_marking().set_box([_number(v, "a box corner") for v in (x1, y1, x2, y2)])


def api_stroke(session: Session, points: str, radius: float, erase: bool) -> None:
    """``/stroke``: ``points`` as JSON ``[[x, y], ...]``; ``erase`` removes from the scribble."""
    try:
        line = json.loads(points or "")
    except ValueError:
        raise InputError("points must be JSON like [[10, 20], [30, 40]]") from None
    _stroke(session, line, radius, erase)


def upload_mask(session: Session, upload) -> str | None:
    path = payload_path(upload)
    if path is None:
        return None
    _region, note = session.workspace.add_mask(path)
    return note


def new_region(session: Session) -> None:
    session.workspace.require_marking().new_region()


def undo(session: Session) -> str | None:
    marking = session.workspace.require_marking()
    return None if marking.undo() else "Nothing to undo."


def redo(session: Session) -> str | None:
    marking = session.workspace.require_marking()
    return None if marking.redo() else "Nothing to redo."


def wire(ui: CanvasUI, wiring: Wiring) -> None:
    raw = {"preprocess": False}  # a broken file reaches our loaders, which say what is wrong
    ui.stage.open_image(**wiring.event(open_uploaded), api_visibility="private")
    ui.stage.mark_point(**wiring.event(mark_point), api_visibility="private")
    ui.stage.mark_box(**wiring.event(mark_box), api_visibility="private")
    ui.stage.mark_stroke(**wiring.event(mark_stroke), api_visibility="private")
    ui.stage.resync(**wiring.event(resync), api_visibility="private")
    ui.image_input.upload(**wiring.event(load_image, [ui.image_input]), **raw, api_name="load_image")
    ui.examples.load_input_event.then(
        **wiring.event(load_image, [ui.image_input]), **raw, api_visibility="private"
    )
    api = ui.api
    ui.api_button.click(**wiring.event(api_mark, [api["tool"], api["x"], api["y"]]), api_name="mark")
    ui.api_button.click(**wiring.event(api_box, [api["x"], api["y"], api["x2"], api["y2"]]), api_name="box")
    ui.api_button.click(
        **wiring.event(api_stroke, [api["points"], api["radius"], api["erase"]]), api_name="stroke"
    )
    ui.mask_upload.upload(**wiring.event(upload_mask, [ui.mask_upload]), **raw, api_name="upload_mask")
    ui.new_region.click(**wiring.event(new_region), api_name="new_region")
    ui.undo.click(**wiring.event(undo), api_name="undo")
    ui.redo.click(**wiring.event(redo), api_name="redo")
