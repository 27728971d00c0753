"""``gar-app project``: a folder of images annotated in place — status, export, import and
describe-all from the command line (``gar_app.project`` does the work)."""

from __future__ import annotations

import argparse
import json
import sys

from gar_app.cli.options import add_model_options, load_model, note

FORMATS = ("coco", "train", "hf", "gar")
SHOWN_PROBLEMS = 20


def _open(args: argparse.Namespace):
    from gar_app.project import open_project

    return open_project(args.dir, store=args.store)


def _tell(report, what: str) -> None:
    print(f"{what}: {report.images} image(s), {report.regions} region(s)", file=sys.stderr)
    for line in report.left_out[:SHOWN_PROBLEMS]:
        note(f"left out {line}")
    if len(report.left_out) > SHOWN_PROBLEMS:
        note(f"... and {len(report.left_out) - SHOWN_PROBLEMS} more left out")


def run_status(args: argparse.Namespace) -> int:
    with _open(args) as project:
        project.probe()
        counts = project.store.counts()
    if args.json:
        print(json.dumps({**counts.to_dict(), "uncaptioned": counts.regions - counts.captioned}))
        return 0
    share = f" ({100 * counts.done / counts.total:.0f}%)" if counts.total else ""
    print(f"{args.dir}: {counts.done} of {counts.total} done{share}")
    print(
        f"  {counts.images} image(s), {counts.videos} video(s); {counts.annotated} annotated; "
        f"{counts.regions} region(s), {counts.captioned} captioned"
    )
    print(
        f"  new {counts.new}, in progress {counts.in_progress}, done {counts.done}, skipped {counts.skipped}; "
        f"failed {counts.failed}, changed on disk {counts.changed}, missing {counts.missing}; "
        f"{counts.not_images} other file(s) skipped"
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gar_app.errors import InputError
    from gar_app.project.exchange import EXPORTS

    out = Path(args.out)
    if not out.parent.is_dir():
        raise InputError(f"--out {args.out}: folder {out.parent} does not exist")
    if args.format in ("coco", "train") and out.is_dir():
        raise InputError(f"--out {args.out} is a folder; --format {args.format} writes one file")
    with _open(args) as project:
        report = EXPORTS[args.format](project, out)
    _tell(report, f"wrote {out}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gar_app.project import owner_id
    from gar_app.project.exchange import import_coco

    with _open(args) as project:
        report = import_coco(project, Path(args.coco), owner_id("gar-app project import"), args.replace)
    _tell(report, f"imported from {args.coco}")
    return 0


def run_describe(args: argparse.Namespace) -> int:
    from gar_app.model.settings import GenerationSettings
    from gar_app.progress import progress_bar
    from gar_app.project.describe_all import DescribeAll

    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    with _open(args) as project:
        todo = project.store.count_to_describe(args.redo_model_captions)
        if not todo:
            print(f"{args.dir}: every region has a caption; nothing to describe", file=sys.stderr)
            return 0
        gar = load_model(args)
        job = DescribeAll(
            project, gar, settings, redo_model_captions=args.redo_model_captions, instruction=args.prompt
        )
        with progress_bar(what="describing", unit="region", total=todo, shown=not args.no_progress) as bar:

            def report(progress) -> None:
                bar.n = progress.done + progress.skipped + progress.failed
                bar.set_postfix_str(progress.current or "", refresh=False)
                bar.refresh()

            progress = job.run(report)
    print(
        f"described {progress.done} region(s); {progress.skipped} skipped (changed meanwhile, a person's "
        f"caption, or open elsewhere), {progress.failed} failed",
        file=sys.stderr,
    )
    for line in progress.errors:
        note(line)
    return 1 if progress.failed else 0


def add_project(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "project",
        help="a folder of images annotated in place: status, export, import, describe all",
        description="A project is a folder of images (and videos) whose annotations live in a store, "
        "DIR/.gar-project/ by default (--store PATH when DIR is read-only).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help: str, run) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help, description=help)
        sub.add_argument("dir", metavar="DIR", help="the project folder")
        sub.add_argument("--store", metavar="PATH", help="the store folder (default DIR/.gar-project)")
        sub.set_defaults(run=run)
        return sub

    status = action("status", "count images, annotations and captions", run_status)
    status.add_argument("--json", action="store_true", help="print the counts as one JSON object")

    export = action(
        "export",
        "write the whole project as COCO, training records, a dataset or gar-app/1 files",
        run_export,
    )
    export.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        help="coco: one instances file; train: GAR "
        "training records; hf: a datasets folder; gar: one *.gar.json per image",
    )
    export.add_argument("--out", required=True, help="the file (coco, train) or new folder (hf, gar)")

    imported = action(
        "import", "seed regions from a COCO instances file (RLE or polygons, captions)", run_import
    )
    imported.add_argument("--coco", required=True, help="COCO instances JSON; file_name relative to DIR")
    imported.add_argument(
        "--replace", action="store_true", help="replace the regions of images that have some"
    )

    describe = action(
        "describe", "caption every region without one (resumable; Ctrl+C keeps what is done)", run_describe
    )
    add_model_options(describe)
    describe.add_argument(
        "--max-new-tokens", type=int, default=1024, help="longest caption in tokens (default 1024)"
    )
    describe.add_argument("--prompt", help="instruction instead of 'Describe this masked region in detail.'")
    describe.add_argument("--no-progress", action="store_true", help="no progress bar")
    describe.add_argument(
        "--redo-model-captions",
        action="store_true",
        help="also redo captions a model wrote that no person edited or accepted",
    )
