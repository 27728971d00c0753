"""The region commands of ``gar-app``: describe, ask, and tiny checkpoints for tests."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from gar_app.errors import InputError

# The weight dtypes ``load_gar`` takes by name.
DTYPES = ("bf16", "fp16", "fp32")
OVERLAY_FORMATS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _shown(text: str) -> str:
    """An option's value quoted in a message, cut short when it is long."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _json_list(text: str, name: str, example: str) -> list:
    try:
        value = json.loads(text)
    except ValueError:  # not JSON, or an integer too long to convert
        raise InputError(f"{name} must be JSON, e.g. '{example}'; got {_shown(text)}") from None
    if not isinstance(value, list):
        raise InputError(f"{name} must be a JSON list, e.g. '{example}'; got {_shown(text)}")
    return value


def _is_number(value: object) -> bool:
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
    points = _json_list(args.points, "--points", "[[100, 200]]") if args.points else []
    if not all(isinstance(p, list) and len(p) == 2 and all(map(_is_number, p)) for p in points):
        raise InputError(
            f"--points must be a list of [x, y] pairs of numbers, e.g. '[[100, 200]]'; got {_shown(args.points)}"
        )
    labels = _json_list(args.labels, "--labels", "[1, 0]") if args.labels else [1] * len(points)
    if not all(label in (0, 1) and not isinstance(label, bool) for label in labels):
        raise InputError(f"--labels must be a list of 1 (include) and 0 (exclude); got {_shown(args.labels)}")
    if len(labels) != len(points):
        raise InputError(f"--labels has {len(labels)} entries for {len(points)} points")
    box = _json_list(args.box, "--box", "[100, 150, 400, 300]") if args.box else None
    if box is not None and not (len(box) == 4 and all(map(_is_number, box))):
        raise InputError(
            f"--box must be four numbers [x1, y1, x2, y2], e.g. '[100, 150, 400, 300]'; got {_shown(args.box)}"
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


def _add_model_options(parser: argparse.ArgumentParser) -> None:
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


def _emit(pieces: Iterable[str], as_json: bool) -> str:
    """Stream pieces to stdout as they come (or collect them quietly for --json)."""
    text = []
    for piece in pieces:
        text.append(piece)
        if not as_json:
            sys.stdout.write(piece)
            sys.stdout.flush()
    if not as_json:
        sys.stdout.write("\n")
    return "".join(text)


def _regions_json(masks: Mapping[int, np.ndarray]) -> list[dict]:
    from gar_app.images import mask_box
    from gar_app.tags import tag

    return [
        {"tag": tag(k), "box": list(mask_box(m)) if m.any() else None, "area": int(m.sum())}
        for k, m in sorted(masks.items())
    ]


def _print_json(args: argparse.Namespace, text: str, masks: Mapping[int, np.ndarray], **extra) -> None:
    document = {
        "text": text,
        "model": str(args.model),
        "image": str(args.image),
        "regions": _regions_json(masks),
    }
    document.update(extra)
    print(json.dumps(document, ensure_ascii=False))


def _note(message: str) -> None:
    print(f"gar-app: note: {message}", file=sys.stderr, flush=True)


def _segment_mask(
    args: argparse.Namespace, image, marks: tuple[list, list, list | None]
) -> tuple[np.ndarray, dict]:
    """Turn --points/--labels/--box into a mask with SAM (or the fallback), saying which."""
    from gar_app.segment import check_prompt, load_segmenter

    points, labels, box = marks
    check_prompt(image.width, image.height, points or None, labels or None, box)  # before loading SAM
    segmenter = load_segmenter(args.sam, device=args.device)
    print(f"segmenting with {segmenter.name}", file=sys.stderr, flush=True)
    segmenter.set_image(image)
    result = segmenter.segment(points=points or None, labels=labels or None, box=box)
    return result.mask, {"segmenter": segmenter.name, "score": round(float(result.score), 4)}


def _save_overlay(path: str, image, masks: Mapping[int, np.ndarray]) -> None:
    from PIL import Image

    from gar_app.regions import RegionSet, render_overlay

    regions = RegionSet()
    for index, mask in masks.items():
        regions.add(mask=mask, source="mask", index=index)
    Image.fromarray(render_overlay(image, regions)).save(path)
    print(f"overlay saved to {path}", file=sys.stderr)


def run_describe(args: argparse.Namespace) -> int:
    from gar_app.images import load_image, load_mask

    check_output_image(args.output_image)
    if args.mask and (args.points or args.box):
        raise InputError("give either --mask or SAM prompts (--points / --box), not both")
    marks = parse_prompt_options(args)
    image = load_image(args.image)
    extra: dict = {}
    if args.mask:
        mask = load_mask(args.mask, size=image.size, notify=_note)
    elif args.points or args.box:
        mask, extra = _segment_mask(args, image, marks)
    else:
        raise InputError(
            "say which region to describe: --mask FILE, --points '[[x,y]]' or --box '[x1,y1,x2,y2]'"
        )
    if not mask.any():
        raise InputError("the region is empty (no pixel of the mask is set)")
    settings = _settings(args)  # torch: only once the input is known to be good
    if args.output_image:  # drawn as the tag GAR will see: <Prompt1>
        from gar_app.model.processing import SINGLE_REGION_INDEX

        _save_overlay(args.output_image, image, {SINGLE_REGION_INDEX: mask})
    gar = load_model(args)
    session = gar.describe_chat(image, mask)  # the released single-region input: <Prompt1>
    text = _emit(session.stream_describe(None, settings, instruction=args.prompt), args.json)
    if args.json:
        _print_json(args, text, session.masks, **extra, **_tokens_json(session))
    return 0


def _settings(args: argparse.Namespace):
    """Decoding settings from the options; --logprobs only makes sense in the JSON document."""
    from gar_app.model import GenerationSettings
    from gar_app.model.generation import MAX_LOGPROBS

    if args.logprobs is not None:
        if not args.json:
            raise InputError("--logprobs needs --json (the log-probabilities are part of the JSON document)")
        if not 1 <= args.logprobs <= MAX_LOGPROBS:
            raise InputError(f"--logprobs must be between 1 and {MAX_LOGPROBS}, not {args.logprobs}")
    return GenerationSettings(max_new_tokens=args.max_new_tokens, logprobs=args.logprobs or 0)


def _tokens_json(session) -> dict:
    """``{"tokens": [...]}`` of the last answer when log-probabilities were asked for."""
    answer = session.turns[-1]
    if not (answer.settings or {}).get("logprobs"):
        return {}
    return {"tokens": [token.to_dict() for token in answer.tokens]}


def run_ask(args: argparse.Namespace) -> int:
    from gar_app.images import load_image, load_mask
    from gar_app.tags import tag

    image = load_image(args.image)
    masks = [load_mask(path, size=image.size, notify=_note) for path in args.masks]
    for index, (path, mask) in enumerate(zip(args.masks, masks, strict=True)):
        if not mask.any():
            raise InputError(f"mask {path} ({tag(index)}) is empty")
    from gar_app.model import multiple_choice_question  # torch: after the input checks

    settings = _settings(args)
    question = multiple_choice_question(args.question, args.choices) if args.choices else args.question
    gar = load_model(args)
    if len(masks) > gar.prompt_numbers:
        raise InputError(
            f"{len(masks)} masks given, but this model tells apart at most {gar.prompt_numbers} regions"
        )
    session = gar.chat(image, masks)
    text = _emit(session.stream(question, settings), args.json)
    if args.json:
        _print_json(args, text, dict(enumerate(masks)), question=question, **_tokens_json(session))
    return 0


def run_tiny(args: argparse.Namespace) -> int:
    sizes = {"gar": ("tiny", "gar-1b", "gar-8b"), "sam": ("tiny",), "sam2": ("tiny", "hiera-tiny")}[args.kind]
    if args.size not in sizes:
        raise InputError(f"--size {args.size} is not a size of {args.kind}; use one of {', '.join(sizes)}")
    if args.kind == "gar":
        from gar_app.model.tiny import write_tiny_gar

        path = write_tiny_gar(
            args.out,
            seed=args.seed,
            prompt_numbers=args.prompt_numbers,
            max_num_tiles=args.max_num_tiles,
            preset=args.size,
        )
    elif args.kind == "sam2":
        from gar_app.tracking.tiny import write_tiny_sam2

        path = write_tiny_sam2(args.out, size=args.size, seed=args.seed)
    else:
        from gar_app.segment.tiny import write_tiny_sam

        path = write_tiny_sam(args.out, seed=args.seed)
    print(path)
    return 0


def add_describe(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "describe",
        help="describe one region (from a mask, or from SAM points / box)",
        description="Describe one region of an image. The region comes from --mask, or SAM "
        "segments it from --points/--labels or --box (GrabCut fallback without SAM weights).",
    )
    parser.add_argument("--image", required=True, help="image file")
    parser.add_argument("--mask", help="mask image (any non-zero pixel is inside)")
    parser.add_argument("--points", help="SAM points as JSON, e.g. '[[1172, 812], [1572, 800]]'")
    parser.add_argument("--labels", help="1 (include) / 0 (exclude) per point, JSON; default all 1")
    parser.add_argument("--box", help="SAM box as JSON [x1, y1, x2, y2]")
    parser.add_argument("--sam", help="SAM checkpoint (.pth); default: $GAR_APP_SAM_CHECKPOINT or the cache")
    parser.add_argument("--output-image", help="save the colour overlay of the region here (PNG)")
    parser.add_argument("--prompt", help="instruction instead of 'Describe this masked region in detail.'")
    _add_model_options(parser)
    parser.set_defaults(run=run_describe)


def add_ask(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "ask",
        help="ask about several regions (<Prompt0>, <Prompt1>, ... in mask order)",
        description="Ask a question about regions. The masks are <Prompt0>, <Prompt1>, ... in order; "
        "with --choices it becomes GAR's multiple-choice prompt.",
    )
    parser.add_argument("--image", required=True, help="image file")
    parser.add_argument("--masks", nargs="+", required=True, help="mask files, <Prompt0> first")
    parser.add_argument(
        "--question", required=True, help="the question; name regions as <Prompt0>, <Prompt1>..."
    )
    parser.add_argument("--choices", nargs="+", help='options like "A. <Prompt0>" "B. <Prompt1>"')
    _add_model_options(parser)
    parser.set_defaults(run=run_ask)


def add_tiny(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("tiny", help="write a tiny random checkpoint (for tests and benchmarks)")
    parser.add_argument(
        "kind",
        choices=["gar", "sam", "sam2"],
        help="gar: a GAR checkpoint folder; sam: a SAM .pth file; sam2: a SAM 2 video checkpoint folder",
    )
    parser.add_argument("out", help="output folder (gar, sam2) or file (sam)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--prompt-numbers", type=int, default=5, help="regions the tiny GAR supports (gar only)"
    )
    parser.add_argument("--max-num-tiles", type=int, default=36, help="PerceptionLM's tile limit (gar only)")
    parser.add_argument(
        "--size",
        default="tiny",
        choices=["tiny", "gar-1b", "gar-8b", "hiera-tiny"],
        help="gar-1b / gar-8b: random weights at the real sizes (gar, for benchmarks); "
        "hiera-tiny: at SAM 2.1 hiera-tiny's (sam2)",
    )
    parser.set_defaults(run=run_tiny)
