"""The ``gar-app`` command: describe and ask about regions, make tiny checkpoints, run GARBench.

Every failure a user can cause (missing file, bad mask, unknown tag, offline hub) ends with
one ``gar-app: error: ...`` line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from gar_app.errors import GarAppError


def build_parser() -> argparse.ArgumentParser:
    from gar_app.batch.cli import add_batch
    from gar_app.commands import add_ask, add_describe, add_tiny
    from gar_app.eval.cli import add_eval
    from gar_app.serve.cli import add_serve

    parser = argparse.ArgumentParser(
        prog="gar-app",
        description="Describe regions of an image and answer questions about them with GAR.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_describe(commands)
    add_ask(commands)
    add_tiny(commands)
    add_eval(commands)
    add_serve(commands)
    add_batch(commands)
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
