"""``gar-app ask``: a question (or GAR's multiple-choice prompt) about several regions."""

from __future__ import annotations

import argparse

from gar_app.cli.answers import emit, print_json, settings_from, tokens_json
from gar_app.cli.options import add_answer_options, load_model, note
from gar_app.errors import InputError


def run_ask(args: argparse.Namespace) -> int:
    from gar_app.images import load_image, load_mask
    from gar_app.tags import tag

    image = load_image(args.image)
    masks = [load_mask(path, size=image.size, notify=note) for path in args.masks]
    for index, (path, mask) in enumerate(zip(args.masks, masks, strict=True)):
        if not mask.any():
            raise InputError(f"mask {path} ({tag(index)}) is empty")
    from gar_app.model import multiple_choice_question  # torch: after the input checks

    settings = settings_from(args)
    question = multiple_choice_question(args.question, args.choices) if args.choices else args.question
    gar = load_model(args)
    if len(masks) > gar.prompt_numbers:
        raise InputError(
            f"{len(masks)} masks given, but this model tells apart at most {gar.prompt_numbers} regions"
        )
    session = gar.chat(image, masks)
    text = emit(session.stream(question, settings), args.json)
    if args.json:
        print_json(args, text, dict(enumerate(masks)), question=question, **tokens_json(session))
    return 0


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
    add_answer_options(parser)
    parser.set_defaults(run=run_ask)
