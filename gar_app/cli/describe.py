"""``gar-app describe``: describe one region, from a mask or from SAM points / a box."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

import numpy as np

from gar_app.cli.answers import emit, print_json, settings_from, tokens_json
from gar_app.cli.options import add_answer_options, check_output_image, load_model, note, parse_prompt_options
from gar_app.errors import InputError


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
        mask = load_mask(args.mask, size=image.size, notify=note)
    elif args.points or args.box:
        mask, extra = _segment_mask(args, image, marks)
    else:
        raise InputError(
            "say which region to describe: --mask FILE, --points '[[x,y]]' or --box '[x1,y1,x2,y2]'"
        )
    if not mask.any():
        raise InputError("the region is empty (no pixel of the mask is set)")
    settings = settings_from(args)  # torch: only once the input is known to be good
    if args.output_image:  # drawn as the tag GAR will see: <Prompt1>
        from gar_app.model.processing import SINGLE_REGION_INDEX

        _save_overlay(args.output_image, image, {SINGLE_REGION_INDEX: mask})
    gar = load_model(args)
    session = gar.describe_chat(image, mask)  # the released single-region input: <Prompt1>
    text = emit(session.stream_describe(None, settings, instruction=args.prompt), args.json)
    if args.json:
        print_json(args, text, session.masks, **extra, **tokens_json(session))
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
    add_answer_options(parser)
    parser.set_defaults(run=run_describe)
