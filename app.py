"""GAR App in the browser: mark regions, see them in colour, chat with GAR, export JSON.

    python app.py [--model ID_OR_DIR] [--sam CHECKPOINT] [--device DEV] [--host H] [--port P] [--share]
                  [--auth USER:PASS] [--max-file-size 50mb] [--queue-size 64] [--session-ttl 3600]
                  [--sam2 ID_OR_DIR] [--api [--api-key-env VAR] [--allow-dir DIR]] [--mcp]

Without GAR weights the app still starts, in annotation mode (segment, caption by hand,
export), and says so on the page.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import gradio as gr

from components import (
    ask_bar,
    canvas,
    chat,
    export_panel,
    mcp_tools,
    regions_panel,
    status,
    tracking,
    tracking_panel,
    video_input,
)
from components.common import Wiring
from components.memory import limit_arenas
from components.session import close_session
from components.style import css
from gar_app.cli.serve import add_api_options, api_options
from gar_app.devices import DTYPES
from gar_app.errors import GarAppError
from gar_app.model import DEFAULT_MODEL
from gar_app.workspace import Services

log = logging.getLogger("gar_app.app")

SESSION_TTL_S = 3600  # a session idle this long is freed (its tab may still be open)
EXPORT_CACHE = (1800, 3600)  # every 30 min, delete Gradio's cached uploads and exports older than 1 h


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


def build_demo(services: Services, session_ttl: float = SESSION_TTL_S) -> gr.Blocks:
    with gr.Blocks(title="GAR App — talk about regions", delete_cache=EXPORT_CACHE) as demo:
        state = gr.State(None, time_to_live=session_ttl, delete_callback=close_session)
        with gr.Row(elem_classes=["gar-header"], equal_height=True):
            status.build(services)
            export_ui = export_panel.build()
        ask_ui = ask_bar.build()  # fixed at the bottom of the window while it asks
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=320), gr.Tabs(selected="image") as left_tabs:
                with gr.Tab("Image", id="image"):
                    canvas_ui = canvas.build()
                    tracking_ui = tracking_panel.build(services)
                with gr.Tab("Video", id="video"):
                    video_ui = video_input.build()
            with gr.Column(scale=2, min_width=300):
                notice = gr.HTML("", js_on_load=None, elem_id="gar-notice", padding=False, label="Notice")
                with gr.Tabs():
                    with gr.Tab("Regions", id="regions"):
                        regions_ui = regions_panel.build(services)
                    with gr.Tab("Chat", id="chat"):
                        chat_ui = chat.build(services)

        wiring = Wiring(services, state, notice, [canvas_ui.view, regions_ui.view, chat_ui.view, ask_ui.view])
        canvas.wire(canvas_ui, wiring)
        regions_panel.wire(regions_ui, wiring, chat_ui.settings)
        chat.wire(chat_ui, wiring, [chat_ui.view, regions_ui.view, ask_ui.view])
        export_panel.wire(export_ui, wiring, [ask_ui.view])
        ask_bar.wire(ask_ui, wiring)
        video_input.wire(video_ui, wiring, left_tabs)
        tracking_panel.wire(tracking_ui, wiring, canvas_ui.stage, video_ui, left_tabs, chat_ui.settings)

        def free_closed_tab(request: gr.Request) -> None:
            """The tab closed: free its session now, not an hour later (Gradio's default)."""
            holder = getattr(demo, "state_holder", None)
            if holder is not None and request is not None and request.session_hash:
                holder.delete_state(request.session_hash)

        demo.unload(free_closed_tab)
    return demo


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """``USER:PASS`` (from --auth or $GAR_APP_AUTH) for Gradio's login page."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise SystemExit("--auth must look like USER:PASS")
    return user, password


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Start the GAR App web UI.")
    parser.add_argument(
        "--model",
        default=os.environ.get("GAR_APP_MODEL", DEFAULT_MODEL),
        help=f"GAR checkpoint folder or Hub id (default {DEFAULT_MODEL})",
    )
    parser.add_argument("--no-model", action="store_true", help="annotation mode: no GAR model at all")
    parser.add_argument(
        "--sam", default=None, help="SAM checkpoint (.pth); default $GAR_APP_SAM_CHECKPOINT or cache"
    )
    parser.add_argument("--no-sam-download", action="store_true", help="never download SAM weights")
    parser.add_argument(
        "--sam2",
        default=os.environ.get("GAR_APP_SAM2"),
        help="SAM 2 video checkpoint (Hub id or folder) for tracking; default $GAR_APP_SAM2, "
        "else the classical OpenCV tracker",
    )
    parser.add_argument("--device", default=None, help="cuda, cpu, mps (default: best available)")
    parser.add_argument("--dtype", default=None, choices=DTYPES)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    parser.add_argument("--concurrency", type=int, default=4, help="sessions served at once (model calls: 1)")
    parser.add_argument(
        "--max-live-chats",
        type=int,
        default=8,
        help="conversations that keep their KV cache between turns (the rest recompute)",
    )
    parser.add_argument(
        "--auth",
        default=os.environ.get("GAR_APP_AUTH"),
        help="USER:PASS to require a login (default $GAR_APP_AUTH; none)",
    )
    parser.add_argument(
        "--max-file-size",
        default=os.environ.get("GAR_APP_MAX_FILE_SIZE", "50mb"),
        help="largest upload, e.g. 50mb (default 50mb)",
    )
    parser.add_argument(
        "--queue-size",
        type=int,
        default=int(os.environ.get("GAR_APP_QUEUE_SIZE", 64)),
        help="events that may wait in the queue; more are turned away (default 64)",
    )
    parser.add_argument(
        "--session-ttl",
        type=float,
        default=SESSION_TTL_S,
        help=f"seconds an idle session is kept (default {SESSION_TTL_S})",
    )
    parser.add_argument(
        "--api", action="store_true", help="also serve the OpenAI-compatible API at /v1 (as gar-app serve)"
    )
    parser.add_argument(
        "--mcp", action="store_true", help="also serve describe_region and ask_about_regions as MCP tools"
    )
    add_api_options(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    limit_arenas()  # before any worker thread: see components/memory.py
    args = parse_args(argv)
    auth = parse_auth(args.auth)
    try:
        options = api_options(args) if args.api else None
    except GarAppError as error:
        sys.exit(f"app.py: error: {error}")
    services = load_services(
        None if args.no_model else args.model, args.sam, args.device, args.dtype, not args.no_sam_download
    )
    services.max_live_chats = args.max_live_chats
    services.tracker = tracking.app_tracker(args.sam2, args.device, args.dtype)
    print(status.status_text(services), file=sys.stderr, flush=True)
    demo = build_demo(services, session_ttl=args.session_ttl)
    if args.mcp:
        mcp_tools.attach(demo, services)
    routes = []
    if options is not None:
        from gar_app.serve.app import api_mount

        routes.append(api_mount(services, options))
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.queue_size)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        css=css(),
        show_error=True,
        auth=auth,
        max_file_size=args.max_file_size,
        mcp_server=args.mcp,
        app_kwargs={"routes": routes},
    )


if __name__ == "__main__":
    main()
