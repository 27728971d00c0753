"""``gar-app batch``: caption every region of a COCO instances file (or answer a question per
image), resumably, in this process or on Ray."""

from __future__ import annotations

import argparse
import sys

from gar_app.errors import InputError


def _merge(data: dict, records: list[dict]) -> dict:
    """The COCO document with each annotation's caption (and each image's answers)."""
    captions = {r["annotation_id"]: r["caption"] for r in records if "caption" in r}
    answers: dict = {}
    for record in records:
        if "answer" in record:
            answers.setdefault(record["image_id"], []).append(
                {
                    "question": record["question"],
                    "answer": record["answer"],
                    "annotation_ids": record["annotation_ids"],
                }
            )
    merged = dict(data)
    merged["annotations"] = [
        {**a, "caption": captions[a["id"]]} if a["id"] in captions else a for a in data["annotations"]
    ]
    merged["images"] = [
        {**i, "answers": answers[i["id"]]} if i["id"] in answers else i for i in data["images"]
    ]
    return merged


def run_batch(args: argparse.Namespace) -> int:
    from gar_app.batch import coco
    from gar_app.batch.journal import Journal
    from gar_app.batch.worker import BatchOptions
    from gar_app.files import write_json_atomically
    from gar_app.progress import progress_bar

    if args.workers is not None and args.ray is None:
        raise InputError("--workers sets the number of Ray workers; add --ray (local mode runs one process)")
    if args.max_new_tokens < 1:
        raise InputError("--max-new-tokens must be at least 1")
    data = coco.read_coco(args.coco)
    if args.question is None:
        items, unit = coco.caption_items(data, args.images), "region"
    else:
        items, unit = coco.question_items(data, args.images, args.question), "image"
    options = BatchOptions(args.model, args.device, args.dtype, args.decode, args.max_new_tokens, args.prompt)
    failures: list[tuple[str, str]] = []
    with Journal(args.out, coco.result_key) as journal:
        todo = [item for item in items if item["key"] not in journal.done]
        print(
            f"{len(items) - len(todo)} of {len(items)} {unit}s already in {args.out}; {len(todo)} to do",
            file=sys.stderr,
            flush=True,
        )
        if args.ray is None:
            from gar_app.batch.local import results
        else:
            from functools import partial

            from gar_app.batch.ray_runner import results as ray_results

            results = partial(ray_results, address=args.ray or None, workers=args.workers)
        with progress_bar(
            what="batch", unit=unit, total=len(items), done=len(items) - len(todo), shown=not args.no_progress
        ) as progress:
            for result in results(todo, options):
                if "error" in result:
                    failures.append((result["key"], result["error"]))
                else:
                    journal.write(result["record"])
                progress.update(1)
        if args.merge_into:
            write_json_atomically(args.merge_into, _merge(data, journal.records))
            print(f"wrote {args.merge_into}", file=sys.stderr)
    if failures:
        for key, error in failures[:5]:
            print(f"gar-app: item {key} failed: {error}", file=sys.stderr)
        print(
            f"gar-app: {len(failures)} of {len(todo)} items failed (not written); fix them and rerun to do just those",
            file=sys.stderr,
        )
        return 1
    return 0


def add_batch(commands: argparse._SubParsersAction) -> None:
    from gar_app.cli.options import add_model_options

    parser = commands.add_parser(
        "batch",
        help="caption every region of a COCO dataset (resumable; optionally on Ray)",
        description="Caption every annotation of a COCO instances file (RLE or polygon masks), or answer "
        "--question per image about all its regions. Results go to --out as JSON Lines, one per item, "
        "written whole and synced; a rerun skips the finished items.",
    )
    parser.add_argument("--coco", required=True, help="COCO instances JSON")
    parser.add_argument("--images", required=True, help="folder the file_name of each image is relative to")
    parser.add_argument(
        "--out", required=True, help="output JSON Lines (appended to; finished items are skipped)"
    )
    parser.add_argument(
        "--question",
        help="ask this per image instead of captioning; {regions} becomes all of "
        "the image's regions (<Prompt0>, <Prompt1> and <Prompt2>)",
    )
    parser.add_argument(
        "--merge-into",
        metavar="OUT_JSON",
        help="also write the COCO file with a caption on each annotation (answers on each image)",
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run on Ray Data: a local cluster, or the cluster at ADDRESS (e.g. auto)",
    )
    parser.add_argument(
        "--workers", type=int, help="Ray workers, each loading the model once (default: one per GPU, else 1)"
    )
    add_model_options(parser)
    parser.add_argument(
        "--max-new-tokens", type=int, default=1024, help="longest caption in tokens (default 1024)"
    )
    parser.add_argument("--prompt", help="instruction instead of 'Describe this masked region in detail.'")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_batch)
