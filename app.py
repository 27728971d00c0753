"""GAR App in the browser: mark regions, see them in colour, chat with GAR, export JSON.

    python app.py [--model ID_OR_DIR] [--sam CHECKPOINT] [--device DEV] [--host H] [--port P] [--share]
                  [--api [--api-key-env VAR] [--allow-dir DIR]] [--mcp]

Without GAR weights the app still starts, in annotation mode (segment, caption by hand,
export), and says so on the page.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import gradio as gr

from components import canvas, chat, export_panel, mcp_tools, regions_panel, status, video_input
from components.page import Page
from components.style import css
from gar_app.errors import GarAppError
from gar_app.model.loading import DEFAULT_MODEL
from gar_app.serve.cli import add_api_options, api_options
from gar_app.workspace import Services

log = logging.getLogger("gar_app.app")


def load_services(
    model: str | None = DEFAULT_MODEL,
    sam: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    sam_download: bool = True,
) -> Services:
    """The model and segmenter every session shares; a missing model means annotation mode."""
    from gar_app.segment import load_segmenter

    segmenter = load_segmenter(sam, device=device, allow_download=sam_download)
    if not model:
        return Services(segmenter=segmenter, gar_problem="started with --no-model")
    try:
        from gar_app.model import load_gar

        log.info("loading GAR from %s", model)
        gar = load_gar(model, device=device, dtype=dtype)
    except GarAppError as error:
        log.warning("no GAR model: %s", error)
        return Services(segmenter=segmenter, gar_problem=str(error))
    return Services(segmenter=segmenter, gar=gar)


def build_demo(services: Services) -> gr.Blocks:
    page = Page(services=services)
    with gr.Blocks(title="GAR App — talk about regions") as demo:
        page.state = gr.State(None)
        gr.Markdown("# GAR App\nMark regions on an image, then let **GAR (Grasp Any Region)** describe them and "
                    "answer questions about them. Regions are `<Prompt0>` (red), `<Prompt1>` (green), "
                    "`<Prompt2>` (blue), …")
        status.build(page, services)
        page.notice = gr.Markdown("", elem_classes=["gar-notice-area"])
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                with gr.Tab("Image"):
                    canvas.build(page)
                with gr.Tab("Video"):
                    video_input.build(page)
            with gr.Column(scale=2):
                regions_panel.build(page)
                chat.build(page)
                export_panel.build(page)
        for module in (canvas, regions_panel, chat, export_panel, video_input):
            module.wire(page)
        demo.load(None, None, None, js=canvas.DRAG_JS)
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Start the GAR App web UI.")
    parser.add_argument("--model", default=os.environ.get("GAR_APP_MODEL", DEFAULT_MODEL),
                        help=f"GAR checkpoint folder or Hub id (default {DEFAULT_MODEL})")
    parser.add_argument("--no-model", action="store_true", help="annotation mode: no GAR model at all")
    parser.add_argument("--sam", default=None, help="SAM checkpoint (.pth); default $GAR_APP_SAM_CHECKPOINT or cache")
    parser.add_argument("--no-sam-download", action="store_true", help="never download SAM weights")
    parser.add_argument("--device", default=None, help="cuda, cpu, mps (default: best available)")
    parser.add_argument("--dtype", default=None, choices=["bf16", "fp16", "fp32"])
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    parser.add_argument("--concurrency", type=int, default=4, help="sessions served at once (model calls: 1)")
    parser.add_argument("--max-live-chats", type=int, default=8,
                        help="conversations that keep their KV cache between turns (the rest recompute)")
    parser.add_argument("--api", action="store_true", help="also serve the OpenAI-compatible API at /v1 (as gar-app serve)")
    parser.add_argument("--mcp", action="store_true", help="also serve describe_region and ask_about_regions as MCP tools")
    add_api_options(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        options = api_options(args) if args.api else None
    except GarAppError as error:
        sys.exit(f"app.py: error: {error}")
    services = load_services(
        None if args.no_model else args.model, args.sam, args.device, args.dtype, not args.no_sam_download
    )
    services.max_live_chats = args.max_live_chats
    print(status.status_text(services).replace("**", ""), file=sys.stderr, flush=True)
    demo = build_demo(services)
    if args.mcp:
        mcp_tools.attach(demo, services)
    routes = []
    if options is not None:
        from gar_app.serve.app import api_mount

        routes.append(api_mount(services, options))
    demo.queue(default_concurrency_limit=args.concurrency)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, css=css(), show_error=True,
                mcp_server=args.mcp, app_kwargs={"routes": routes})


if __name__ == "__main__":
    main()
