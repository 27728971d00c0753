"""What several ``gar-app`` commands share: the model options (--model, --device, --dtype,
--decode), the answer options, loading the model, and region prompts given as JSON options.

Nothing heavier than numpy is imported at module level: every ``gar-app`` call imports this.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from gar_app.devices import DTYPES
from gar_app.errors import InputError

OVERLAY_FORMATS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def shown(text: str) -> str:
    """An option's value quoted in a message, cut short when it is long."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def json_list(text: str, name: str, example: str) -> list:
    try:
        value = json.loads(text)
    except ValueError:  # not JSON, or an integer too long to convert
        raise InputError(f"{name} must be JSON, e.g. '{example}'; got {shown(text)}") from None
    if not isinstance(value, list):
        raise InputError(f"{name} must be a JSON list, e.g. '{example}'; got {shown(text)}")
    return value


def is_number(value: object) -> bool:
    """A finite JSON number (JSON allows NaN and Infinity as extensions; a bool is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def parse_prompt_options(args: argparse.Namespace) -> tuple[list, list, list | None]:
    """``--points`` / ``--labels`` / ``--box`` as checked lists, before anything is loaded.

    Points are ``[[x, y], ...]``, labels one 1 (include) or 0 (exclude) per point, the box
    ``[x1, y1, x2, y2]``, all finite numbers in image pixels. Box corners may come in either
    order (the segmenter sorts them); where they fall on the image is checked against it.
    """
    points = json_list(args.points, "--points", "[[100, 200]]") if args.points else []
    if not all(isinstance(p, list) and len(p) == 2 and all(map(is_number, p)) for p in points):
        raise InputError(
            f"--points must be a list of [x, y] pairs of numbers, e.g. '[[100, 200]]'; got {shown(args.points)}"
        )
    labels = json_list(args.labels, "--labels", "[1, 0]") if args.labels else [1] * len(points)
    if not all(label in (0, 1) and not isinstance(label, bool) for label in labels):
        raise InputError(f"--labels must be a list of 1 (include) and 0 (exclude); got {shown(args.labels)}")
    if len(labels) != len(points):
        raise InputError(f"--labels has {len(labels)} entries for {len(points)} points")
    box = json_list(args.box, "--box", "[100, 150, 400, 300]") if args.box else None
    if box is not None and not (len(box) == 4 and all(map(is_number, box))):
        raise InputError(
            f"--box must be four numbers [x1, y1, x2, y2], e.g. '[100, 150, 400, 300]'; got {shown(args.box)}"
        )
    return points, labels, box


def check_output_image(path: str | None) -> None:
    """Fail on an overlay path that cannot be written before any work is done."""
    if path is None:
        return
    target = Path(path)
    if target.suffix.lower() not in OVERLAY_FORMATS:
        raise InputError(f"--output-image {path}: the name must end in {', '.join(OVERLAY_FORMATS)}")
    if not target.parent.is_dir():
        raise InputError(f"--output-image {path}: folder {target.parent} does not exist")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """How a command loads GAR (--model, --device, --dtype, --decode; read by ``load_model``)."""
    from gar_app.model import DEFAULT_MODEL

    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"GAR checkpoint folder or Hub id (default {DEFAULT_MODEL})"
    )
    parser.add_argument("--device", default=None, help="cuda, cpu, mps... (default: best available)")
    parser.add_argument("--dtype", default=None, choices=DTYPES, help="weights dtype")
    parser.add_argument(
        "--decode",
        default="auto",
        choices=["auto", "eager", "static"],
        help="auto: static KV cache + CUDA graphs on CUDA, eager elsewhere (default)",
    )


def add_answer_options(parser: argparse.ArgumentParser) -> None:
    add_model_options(parser)
    parser.add_argument(
        "--max-new-tokens", type=int, default=1024, help="longest answer in tokens (default 1024)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of streaming text")
    parser.add_argument(
        "--logprobs",
        type=int,
        metavar="K",
        help="with --json: each answer token's log-probability and the top K (1-20)",
    )


def load_model(args: argparse.Namespace):
    from gar_app.model import load_gar

    print(f"loading GAR from {args.model} ...", file=sys.stderr, flush=True)
    gar = load_gar(args.model, device=args.device, dtype=args.dtype, decode=args.decode)
    print(f"loaded on {gar.device} ({gar.decode} decoding)", file=sys.stderr, flush=True)
    return gar


def note(message: str) -> None:
    print(f"gar-app: note: {message}", file=sys.stderr, flush=True)
