"""``gar-app tiny``: tiny random checkpoints (GAR, SAM, SAM 2) for tests and benchmarks."""

from __future__ import annotations

import argparse

from gar_app.errors import InputError


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
