"""The ``gar-app`` command: describe and ask about regions, make tiny checkpoints, run GARBench.

Every failure a user can cause (missing file, bad mask, unknown tag, bad option, offline
hub) ends with one ``gar-app: error: ...`` line on stderr and exit code 2, never a traceback.

One module per sub-command in this package (``options.py`` holds what several share).
Adding a sub-command: write ``add_<name>(commands)`` in ``gar_app/cli/<name>.py`` and
list it in ``SUBCOMMANDS``. ``add_<name>`` only declares arguments and sets ``run=`` to a
function; that function imports what the work needs (torch, transformers, gradio, cv2, the
model) inside its body. The module itself imports nothing heavier than numpy and PIL at
top level, because every ``gar-app`` call (``--help`` included) imports every registration
module: ``tests/test_startup.py`` fails when one of them pulls in torch, transformers,
gradio or cv2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gar_app.errors import GarAppError

# "module:function" of each sub-command's registration, in the order --help lists them.
SUBCOMMANDS = (
    "gar_app.cli.describe:add_describe",
    "gar_app.cli.ask:add_ask",
    "gar_app.cli.tiny:add_tiny",
    "gar_app.cli.eval:add_eval",
    "gar_app.cli.track:add_track",
    "gar_app.cli.serve:add_serve",
    "gar_app.cli.batch:add_batch",
    "gar_app.cli.project:add_project",
)


class Parser(argparse.ArgumentParser):
    """Option errors as one ``gar-app: error: ...`` line (exit 2), like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"gar-app: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gar-app",
        description="Describe regions of an image and answer questions about them with GAR.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for entry in SUBCOMMANDS:
        module, function = entry.split(":")
        getattr(importlib.import_module(module), function)(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except GarAppError as error:
        print(f"gar-app: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gar-app: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
