"""``gar-app eval run|score``: run a GAR checkpoint on GARBench and score prediction files.

The model code is imported only inside ``eval run``, so scoring works (and starts fast)
without torch weights, and a missing model package is one clear error, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gar_app.devices import DTYPES
from gar_app.errors import GarAppError, InputError
from gar_app.eval import scoring
from gar_app.eval.garbench import (
    SPLITS,
    RunReport,
    load_items,
    model_predictor,
    read_json_list,
    read_records,
    remaining,
    run_split,
)
from gar_app.eval.judge import JudgeClient, check_url, judge_records
from gar_app.model import DEFAULT_MODEL


def add_eval(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "eval",
        help="run GAR on GARBench or score predictions",
        description="Run a GAR checkpoint on GARBench, or score a predictions file.",
    )
    actions = parser.add_subparsers(dest="eval_action", metavar="ACTION", required=True)

    run = actions.add_parser(
        "run",
        help="predict every item of a split (resumable)",
        description="Predict every item of a GARBench split with greedy decoding. Items "
        "already in --out are skipped, so an interrupted run resumes where it stopped.",
    )
    run.add_argument("--split", choices=SPLITS, required=True)
    run.add_argument(
        "--annotations", type=Path, required=True, metavar="FILE", help="the split's JSON list of items"
    )
    run.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        help="folder the items' image paths are relative to (default: the annotations file's folder)",
    )
    run.add_argument("--model", default=DEFAULT_MODEL, metavar="ID_OR_DIR", help=f"default: {DEFAULT_MODEL}")
    run.add_argument("--device", help="torch device (default: the model loader's choice)")
    run.add_argument("--dtype", choices=DTYPES, help="weights dtype (default: the model loader's choice)")
    run.add_argument(
        "--max-new-tokens", type=int, metavar="N", help="answer length limit (default: the paper's 1024)"
    )
    run.add_argument("--out", type=Path, required=True, metavar="PREDS.json")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(run=run_command)

    score = actions.add_parser(
        "score",
        help="score a predictions file",
        description="VQA: exact match against `answer`. Simple / Detailed: an LLM judge "
        "behind any OpenAI-compatible chat endpoint answers True or False per item.",
    )
    score.add_argument("split", choices=SPLITS)
    score.add_argument("predictions", type=Path, metavar="PREDS.json")
    score.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    judge = score.add_argument_group("judge (simple, detailed)")
    judge.add_argument(
        "--judge-url", metavar="URL", help="e.g. http://localhost:8000/v1 or https://api.openai.com/v1"
    )
    judge.add_argument("--judge-model", metavar="NAME")
    judge.add_argument(
        "--judge-key-env",
        metavar="VAR",
        help="env var holding the API key (default: OPENAI_API_KEY, optional)",
    )
    judge.add_argument(
        "--judge-timeout", type=float, default=60.0, metavar="S", help="seconds per request (default 60)"
    )
    judge.add_argument(
        "--judge-attempts", type=int, default=4, metavar="N", help="tries per item (default 4)"
    )
    judge.add_argument(
        "--judge-backoff",
        type=float,
        default=2.0,
        metavar="S",
        help="first retry delay, doubling (default 2)",
    )
    judge.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        help="benchmark folder (default: image paths recorded by eval run)",
    )
    judge.add_argument("--no-progress", action="store_true", help="no progress bar")
    score.set_defaults(run=score_command)


def run_command(args: argparse.Namespace) -> int:
    items = load_items(args.annotations, args.split)
    if args.out.resolve() == args.annotations.resolve():
        raise InputError("--out must not be the annotations file")
    images = args.images if args.images is not None else args.annotations.parent
    previous = read_records(args.out)
    if not remaining(items, previous, args.model):
        unsupported = sum("model_output" not in record for record in previous)
        print(f"nothing to do: all {len(items)} items are in {args.out} ({unsupported} of them unsupported)")
        return 0
    try:
        from gar_app.model import GenerationSettings, load_gar
    except ImportError as error:
        raise GarAppError(
            f"the GAR model code cannot be imported ({error}); check the installation"
        ) from None
    gar = load_gar(args.model, device=args.device, dtype=args.dtype)
    limit = {} if args.max_new_tokens is None else {"max_new_tokens": args.max_new_tokens}
    predict = model_predictor(gar, args.split, GenerationSettings(**limit))
    try:
        report = run_split(
            items,
            predict,
            args.out,
            images_dir=images,
            max_regions=gar.prompt_numbers,
            model_id=gar.model_id,
            progress=not args.no_progress,
        )
    except KeyboardInterrupt:
        finished = sum("model_output" in record for record in read_records(args.out))
        print(
            f"{finished} finished items are saved in {args.out}; run the same command to resume",
            file=sys.stderr,
        )
        raise
    print(format_run_report(report, args.split, args.out))
    return 0


def format_run_report(report: RunReport, split: str, out: Path) -> str:
    lines = [
        f"GARBench-{split}: {report.total} items: {report.predicted} predicted now, "
        f"{report.already_done} already in {out}, {len(report.unsupported)} unsupported"
    ]
    if report.unsupported:
        lines.append("unsupported (recorded in the output without model_output, not predicted):")
        lines += [f"  {name}: {reason}" for name, reason in report.unsupported]
    return "\n".join(lines)


def score_command(args: argparse.Namespace) -> int:
    client = None if args.split == "vqa" else _judge_client(args)  # option mistakes before any work
    records = read_json_list(args.predictions, "predictions")
    if client is None:
        result = scoring.score_vqa(records)
        print(json.dumps(scoring.vqa_json(result)) if args.json else scoring.format_vqa(result))
        return 0
    found = scoring.scorable(records, args.split)
    verdicts, errors = judge_records(
        found.records, args.split, client, images_dir=args.images, progress=not args.no_progress
    )
    caption = scoring.CaptionScore(
        args.split, args.judge_model, verdicts, errors, found.unsupported, found.duplicates
    )
    print(json.dumps(scoring.caption_json(caption)) if args.json else scoring.format_caption(caption))
    return 0


def _judge_client(args: argparse.Namespace) -> JudgeClient:
    if not args.judge_url or not args.judge_model:
        raise InputError(f"scoring {args.split} needs an LLM judge: pass --judge-url and --judge-model")
    check_url(args.judge_url)
    if args.judge_attempts < 1 or args.judge_timeout <= 0 or args.judge_backoff < 0:
        raise InputError(
            "--judge-attempts must be at least 1, --judge-timeout positive, --judge-backoff not negative"
        )
    key_env = args.judge_key_env or "OPENAI_API_KEY"
    api_key = os.environ.get(key_env)
    if args.judge_key_env and not api_key:
        raise InputError(f"environment variable {key_env} (from --judge-key-env) is not set")
    return JudgeClient(
        args.judge_url,
        args.judge_model,
        api_key=api_key,
        timeout=args.judge_timeout,
        attempts=args.judge_attempts,
        backoff=args.judge_backoff,
    )
