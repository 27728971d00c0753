"""``gar-app serve``: the OpenAI-compatible API on its own (``python app.py --api`` puts it
beside the web UI). Heavy imports (torch, FastAPI, uvicorn) happen when the command runs."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from gar_app.errors import InputError


def add_api_options(parser: argparse.ArgumentParser) -> None:
    """The options that shape the API, shared by ``gar-app serve`` and ``app.py --api``."""
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="require 'Authorization: Bearer KEY' with KEY read from this environment variable",
    )
    parser.add_argument(
        "--allow-dir",
        metavar="DIR",
        help="let image_url / mask_url name files inside DIR (paths relative to it); "
        "without it only data: URLs are read",
    )
    parser.add_argument("--max-body-mb", type=float, default=50, help="largest request body (default 50 MB)")
    parser.add_argument(
        "--max-queue",
        type=int,
        default=16,
        help="requests waiting or running before new ones get 429 (default 16)",
    )
    parser.add_argument(
        "--max-conversations",
        type=int,
        default=8,
        help="conversations held for follow-ups, least recently used dropped first (default 8)",
    )


def api_options(args: argparse.Namespace):
    """``ApiOptions`` from parsed options; a named but unset key variable is an error."""
    from gar_app.serve.app import ApiOptions

    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env, "")
        if not key:
            raise InputError(
                f"--api-key-env {args.api_key_env}: that environment variable is not set or empty"
            )
    if args.allow_dir and not os.path.isdir(args.allow_dir):
        raise InputError(f"--allow-dir {args.allow_dir} is not a folder")
    if args.max_body_mb <= 0 or args.max_queue < 1 or args.max_conversations < 0:
        raise InputError("--max-body-mb and --max-queue must be positive, --max-conversations not negative")
    return ApiOptions(
        api_key=key,
        allow_dir=args.allow_dir,
        max_body_bytes=int(args.max_body_mb * 2**20),
        max_queue=args.max_queue,
        max_conversations=args.max_conversations,
    )


def run_serve(args: argparse.Namespace) -> int:
    options = api_options(args)  # option mistakes first, before seconds of imports and loading
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        import uvicorn

        from gar_app.serve.app import create_server
    except ImportError as error:
        raise InputError(
            f'gar-app serve needs FastAPI and uvicorn ({error}): pip install "gar-app[serve]"'
        ) from None
    from gar_app.cli.options import load_model
    from gar_app.segment import load_segmenter
    from gar_app.workspace import Services

    gar = load_model(args)
    segmenter = load_segmenter(args.sam, device=args.device)
    print(f"boxes are segmented with {segmenter.name}", file=sys.stderr, flush=True)
    server = create_server(Services(segmenter=segmenter, gar=gar), options)
    print(f"serving the API on http://{args.host}:{args.port}/v1", file=sys.stderr, flush=True)
    uvicorn.run(server, host=args.host, port=args.port, log_level="info")
    return 0


def add_serve(commands: argparse._SubParsersAction) -> None:
    from gar_app.cli.options import add_model_options

    parser = commands.add_parser(
        "serve",
        help="serve GAR through an OpenAI-compatible API (/v1/chat/completions)",
        description="Serve GAR over HTTP: POST /v1/chat/completions (OpenAI's format, plus region "
        "content parts), GET /v1/models, GET /v1/stats. See the README for the request format.",
    )
    add_model_options(parser)
    parser.add_argument(
        "--sam",
        help="SAM checkpoint for box regions (default: $GAR_APP_SAM_CHECKPOINT, the cache, else GrabCut)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    add_api_options(parser)
    parser.set_defaults(run=run_serve)
