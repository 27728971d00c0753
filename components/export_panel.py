"""Export the session as JSON (ours and GAR's training format) and import it back."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import gradio as gr

from components.common import payload_path, ui_action
from components.page import Page, as_outputs, chat_messages, refresh_regions
from gar_app import export
from gar_app.errors import InputError


def build(page: Page) -> None:
    with gr.Row():
        page.export = gr.Button("Export JSON")
        page.import_file = gr.UploadButton("Import JSON", file_types=[".json"], file_count="single")
    page.export_files = gr.File(label="Downloads", file_count="multiple", interactive=False, visible=False)


def wire(page: Page) -> None:
    @ui_action(page)
    def on_export_clicked(state):
        ws = page.workspace(state)
        document = ws.document()
        folder = Path(tempfile.mkdtemp(prefix="gar-export-"))
        stem = Path(document.image.name).stem or "image"
        session = folder / f"{stem}.gar.json"
        session.write_text(export.to_json(document))
        training = folder / f"{stem}.train.json"
        training.write_text(json.dumps(export.to_training_records(document), indent=1, ensure_ascii=False))
        return {page.export_files: gr.update(value=[str(session), str(training)], visible=True)}

    @ui_action(page)
    def on_import_uploaded(state, file):
        ws = page.workspace(state)
        path = payload_path(file)
        if not path:
            raise InputError("No file was uploaded.")
        ws.require_image()
        ws.restore(export.read_document(path))
        return as_outputs(page, refresh_regions(ws)) | {page.chatbot: chat_messages(ws)}

    page.export.click(on_export_clicked, [page.state], [page.export_files, page.notice], api_name="export")
    page.import_file.upload(
        on_import_uploaded, [page.state, page.import_file], page.outputs(page.chatbot), api_name="import"
    )
