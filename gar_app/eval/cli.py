"""``gar-app eval run|score`` (being written)."""

from __future__ import annotations

import argparse


def add_eval(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("eval", help="run or score GARBench")
    parser.set_defaults(run=lambda args: parser.print_help())
