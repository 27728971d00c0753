"""Export the session as JSON (ours and GAR's training format) and import it back."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from components import tracking
from components.common import View, Wiring, payload_path
from components.session import Session
from gar_app.errors import InputError
from gar_app.formats.document import from_dict, to_json
from gar_app.formats.jsonio import parse_json
from gar_app.formats.training import to_training_records
from gar_app.formats.video_document import is_video_document, video_from_dict, video_to_json
from gar_app.images import check_file_size


@dataclass
class ExportUI:
    export: gr.Button
    import_file: gr.UploadButton
    files: gr.File

    @property
    def view(self) -> View:
        return View([self.files], render)


def build() -> ExportUI:
    with gr.Column(min_width=240, elem_classes=["gar-export"]):
        with gr.Row(elem_classes=["gar-actions"]):
            export_button = gr.Button("Export JSON", size="sm", elem_id="gar-export", min_width=110)
            import_file = gr.UploadButton(
                "Import JSON", file_types=[".json"], file_count="single", size="sm", min_width=110
            )
        files = gr.File(label="Downloads", file_count="multiple", interactive=False, visible=False, height=80)
    return ExportUI(export_button, import_file, files)


def render(session: Session) -> list:
    return [gr.update(value=session.export_paths or None, visible=bool(session.export_paths))]


def file_stem(name: str) -> str:
    """A file name from an image name: its stem with anything unusual replaced."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._")[:80] or "image"


def export_files(session: Session) -> str:
    """``/export``: the session as ``NAME.gar.json`` and GAR's training format ``NAME.train.json``
    (while a video is tracked: its video form, ``NAME.tracks.gar.json``)."""
    if session.tracking is not None:
        return export_tracks(session)
    ws = session.workspace
    document = ws.document()
    folder = session.exports()
    stem = file_stem(document.image.name)
    saved = folder / f"{stem}.gar.json"
    saved.write_text(to_json(document))
    training = folder / f"{stem}.train.json"
    training.write_text(json.dumps(to_training_records(document), indent=1, ensure_ascii=False))
    session.export_paths = [str(saved), str(training)]
    ws.mark_saved()
    return f"Exported {len(document.regions)} region(s) and {len(document.dialogue)} turn(s)."


def export_tracks(session: Session) -> str:
    """Export JSON while a video is tracked: its ``gar-app/1`` video form."""
    video = session.tracking
    document = video.document()
    saved = session.exports() / f"{file_stem(video.name)}.tracks.gar.json"
    saved.write_text(video_to_json(document))
    session.export_paths = [str(saved)]
    video.mark_saved()
    note = f"Exported {len(document.regions)} tracked region(s) over {document.frames} frames."
    if pending := video.pending_frames:
        note += f" {pending} frames still wait for Propagate: the export has their masks from before."
    return note


def import_file(session: Session, upload) -> str:
    """``/import``: restore an exported session on the image (or tracked video) it was made on."""
    path = payload_path(upload)
    if not path:
        raise InputError("no file was uploaded")
    check_file_size(path, f"the file {Path(path).name}")
    data = parse_json(Path(path).read_bytes())
    if is_video_document(data):
        return tracking.import_video(session, video_from_dict(data))
    ws = session.workspace
    ws.require_image()
    ws.restore(from_dict(data))
    return f"Imported {len(ws.regions)} region(s) and {len(ws.conversation.turns)} turn(s)."


def wire(ui: ExportUI, wiring: Wiring, views: list[View]) -> None:
    ui.export.click(**wiring.event(export_files, views=[ui.view, *views]), api_name="export")
    ui.import_file.upload(**wiring.event(import_file, [ui.import_file]), preprocess=False, api_name="import")
