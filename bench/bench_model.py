"""What a GAR user waits for: where the first turn's time goes, time to first token, decode
tokens/s eager vs static (KV workspace + CUDA graphs), a follow-up turn, and how close
decoding gets to the card's memory-bandwidth limit. Every number comes from one run.

    python bench/bench_model.py                                           # tiny random GAR on the CPU
    python bench/bench_model.py --random-size gar-1b --device cuda        # GAR-1B size, through load_gar
    python bench/bench_model.py --random-size gar-8b --in-memory --device cuda
    python bench/bench_model.py --model /path/to/GAR-1B --device cuda

The bandwidth limit at batch 1 is the card's nominal memory bandwidth over the bytes of all
parameters (every decode step reads the weights once); the share of it a path reaches is
printed. Random weights emit ids the tiny tokenizer cannot spell, so "first text" is not
measured: the first *token* is.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gar_app.devices import DTYPES, default_device, torch_dtype  # noqa: E402
from gar_app.model import GenerationSettings, load_gar  # noqa: E402
from gar_app.model import chat as chat_module  # noqa: E402
from gar_app.model.loading import default_dtype  # noqa: E402
from gar_app.model.tiny import random_gar, write_tiny_gar  # noqa: E402
from gar_app.model.tokens import TokenChooser  # noqa: E402

DEMO = REPO.parent / "shared" / "data" / "seed_demo" / "demo_image_2.jpg"
# Nominal memory bandwidth (bytes/s) of the cards this project is measured on.
BANDWIDTH = {"H200": 4.8e12, "H100": 3.35e12, "A100": 2.0e12, "L40S": 0.864e12, "A10G": 0.6e12}


def demo_inputs() -> tuple[Image.Image, list[np.ndarray]]:
    """The dog demo (2048x1365) with two box regions; a synthetic image of that size without it."""
    if DEMO.is_file():
        image = Image.open(DEMO).convert("RGB")
    else:
        image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1365, 2048, 3), dtype=np.uint8))
    first = np.zeros((image.height, image.width), dtype=bool)
    first[500:1000, 800:1800] = True
    second = np.zeros_like(first)
    second[100:600, 100:700] = True
    return image, [first, second]


class Ticks:
    """Wall time and id of every chosen token (choosing reads the logits, so CUDA is in step)."""

    def __init__(self):
        self.times: list[float] = []
        self.ids: list[int] = []
        ticks = self

        class TimedChooser(TokenChooser):
            def __call__(self, logits):
                token = super().__call__(logits)
                ticks.times.append(time.perf_counter())
                ticks.ids.append(token)
                return token

        chat_module.TokenChooser = TimedChooser

    def turn(self, stream) -> dict:
        self.times, self.ids = [], []
        start = time.perf_counter()
        for _piece in stream:
            pass
        times = self.times
        decode = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
        return {"first_token_s": times[0] - start, "tokens_per_s": decode, "tokens": len(times)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def first_turn_phases(gar, image, masks, settings) -> dict[str, float]:
    """Seconds spent in each stage of a first turn, timed around the model's own methods."""
    spent: dict[str, float] = {}
    originals: dict[tuple[object, str], Callable] = {}

    def timed(owner, name: str, label: str, only_first: bool = False):
        original = getattr(owner, name)
        originals[(owner, name)] = original

        def wrapper(*args, **kwargs):
            if only_first and label in spent:
                return original(*args, **kwargs)
            sync(gar.device)
            start = time.perf_counter()
            result = original(*args, **kwargs)
            sync(gar.device)
            spent[label] = spent.get(label, 0.0) + time.perf_counter() - start
            return result

        setattr(owner, name, wrapper)

    timed(gar.processor, "image_inputs", "tiles + region map (CPU)")
    timed(gar.model, "encode_image", "vision tower + projector")
    timed(gar.model, "embed", "embeddings + RoI replay", only_first=True)
    timed(gar.model, "forward", "prefill (language model)", only_first=True)
    try:
        sync(gar.device)
        start = time.perf_counter()
        chat = gar.chat(image, masks)
        stream = chat.stream_describe(0, GenerationSettings(max_new_tokens=1))
        for _ in stream:
            pass
        sync(gar.device)
        spent["first turn, 1 token (all)"] = time.perf_counter() - start
        spent["_tokens"] = len(chat._ids)
    finally:
        for (owner, name), original in originals.items():
            setattr(owner, name, original)
    return spent


def conversation(gar, ticks: Ticks, image, masks, settings, repeats: int) -> dict:
    """First turn (describe), a follow-up on the session's cache, and the same follow-up in a
    session that recomputes everything each turn; ``repeats`` times; medians and the tokens."""
    follow_up = "How does <Prompt1> relate to <Prompt0>?"
    runs = {"first": [], "follow-up": [], "recomputed": []}
    tokens = {}
    for _ in range(repeats):
        chat = gar.chat(image, masks)
        runs["first"].append(ticks.turn(chat.stream_describe(0, settings)))
        tokens["first"] = ticks.ids
        runs["follow-up"].append(ticks.turn(chat.stream(follow_up, settings)))
        tokens["follow-up"] = ticks.ids
        scratch = gar.chat(image, masks, reuse_cache=False)
        ticks.turn(scratch.stream_describe(0, settings))
        runs["recomputed"].append(ticks.turn(scratch.stream(follow_up, settings)))
    summary = {
        kind: {key: statistics.median(run[key] for run in kind_runs) for key in kind_runs[0]}
        for kind, kind_runs in runs.items()
    }
    return {"summary": summary, "tokens": tokens, "length": len(chat._ids)}


def graph_step_seconds(decoder, position: int, repeats: int = 200) -> float:
    """One decode step as the GPU runs it: the captured graph replayed alone, no Python loop."""
    graph, _logits = decoder._graphs[decoder._bucket(position)]
    decoder._position.fill_(position)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        graph.replay()
    torch.cuda.synchronize()
    decoder._owner = None  # the replays wrote into the workspace: no conversation may trust it now
    return (time.perf_counter() - start) / repeats


def step_variants(gar, position: int) -> dict[str, float]:
    """Graph step time of the static decoder's other designs, to show why the default is it."""
    from gar_app.model.static_decode import StaticDecoder

    times = {}
    for label, options in (("unfused element-wise ops", {"fuse": False}),):
        decoder = StaticDecoder(gar.model, **options)
        decoder.warm_up()
        times[label] = graph_step_seconds(decoder, position)
        del decoder
        torch.cuda.empty_cache()
    return times


def agreement(a: list[int], b: list[int]) -> str:
    if a == b:
        return f"identical ({len(a)} tokens)"
    same = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"DIFFERENT from token {same} of {max(len(a), len(b))}"


def build(args):
    dtype = torch_dtype(args.dtype) or default_dtype(args.device)
    started = time.perf_counter()
    if args.model is None and args.in_memory:
        gar = random_gar(args.random_size, device=args.device, dtype=dtype, decode="eager")
        print(f"random {args.random_size} model built in memory in {time.perf_counter() - started:.1f} s")
        return gar, None
    work = tempfile.TemporaryDirectory()
    model = args.model
    if model is None:
        save = torch.bfloat16 if args.random_size != "tiny" else torch.float32
        model = write_tiny_gar(
            Path(work.name) / args.random_size, preset=args.random_size, dtype=save, device=args.device
        )
        print(f"random {args.random_size} checkpoint written in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    gar = load_gar(model, device=args.device, dtype=dtype, decode="eager")
    print(f"load_gar: {time.perf_counter() - started:.2f} s")
    return gar, work


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="checkpoint folder or Hub id (default: a random checkpoint)")
    parser.add_argument("--random-size", default="tiny", choices=["tiny", "gar-1b", "gar-8b"])
    parser.add_argument(
        "--in-memory", action="store_true", help="build the random model without a checkpoint"
    )
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--dtype", default=None, choices=DTYPES)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="eager,static", help="decode paths to compare")
    parser.add_argument(
        "--bandwidth", type=float, help="card memory bandwidth in TB/s (default: known cards)"
    )
    parser.add_argument(
        "--variants", action="store_true", help="also time the static decoder's other designs"
    )
    args = parser.parse_args()

    gar, work = build(args)
    device = gar.device
    param_bytes = sum(p.numel() * p.element_size() for p in gar.model.parameters())
    card = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(
        f"{card}; torch {torch.__version__}; {param_bytes / 1e9:.2f} GB of parameters "
        f"({sum(p.numel() for p in gar.model.parameters()) / 1e9:.2f} B, {gar.model.dtype}); "
        f"prefill attention {gar.config.mllm_config._attn_implementation}"
    )
    image, masks = demo_inputs()
    settings = GenerationSettings(max_new_tokens=args.new_tokens)

    gar.set_decode("eager")
    first_turn_phases(gar, image, masks, settings)  # warm-up: kernels, allocator
    phases = first_turn_phases(gar, image, masks, settings)
    length = phases.pop("_tokens")
    print(f"\nfirst turn of a {image.width}x{image.height} image ({length} tokens), where the time goes:")
    for label, seconds in phases.items():
        print(f"  {label:28s} {seconds * 1000:8.1f} ms")

    ticks = Ticks()
    results = {}
    for mode in args.modes.split(","):
        warm = gar.set_decode(mode)
        if mode == "static":
            print(
                f"\nstatic decoding: workspace of {gar._decoder.capacity} tokens, "
                f"{len(gar._decoder.buckets()) if gar._decoder.uses_graphs else 0} CUDA graphs captured in {warm:.2f} s "
                "(once per process, at load)"
            )
        conversation(gar, ticks, image, masks, settings, 1)  # warm-up
        results[mode] = conversation(gar, ticks, image, masks, settings, args.repeats)
        if mode == "static" and gar._decoder.uses_graphs:
            results["graph step"] = graph_step_seconds(gar._decoder, results[mode]["length"])
            if args.variants:
                results["variants"] = step_variants(gar, results[mode]["length"])

    bandwidth = (
        (args.bandwidth * 1e12)
        if args.bandwidth
        else next((value for name, value in BANDWIDTH.items() if name in card), None)
    )
    limit = bandwidth / param_bytes if bandwidth else None
    print(
        f"\nmedian of {args.repeats} runs, at most {args.new_tokens} new tokens"
        + (
            f"; bandwidth limit {limit:.0f} tokens/s ({bandwidth / 1e12:.2f} TB/s over {param_bytes / 1e9:.2f} GB)"
            if limit
            else ""
        )
    )
    step = results.pop("graph step", None)
    variants = results.pop("variants", {})
    for mode, result in results.items():
        for kind, row in result["summary"].items():
            share = f"  {row['tokens_per_s'] / limit * 100:5.1f}% of the limit" if limit else ""
            print(
                f"  {mode:6s} {kind:10s} first token {row['first_token_s'] * 1000:8.1f} ms   "
                f"decode {row['tokens_per_s']:8.1f} tokens/s ({row['tokens']:.0f} tokens){share}"
            )
    if step:
        share = f", {1 / step / limit * 100:.1f}% of the limit" if limit else ""
        print(
            f"  static step alone (graph replay at {results['static']['length']} tokens of context): "
            f"{step * 1000:.3f} ms = {1 / step:.0f} tokens/s{share}; the rest of each step is the Python loop"
        )
        for label, seconds in variants.items():
            print(f"    other design, {label}: {seconds * 1000:.3f} ms")
    for mode, result in results.items():
        cached, recomputed = result["summary"]["follow-up"], result["summary"]["recomputed"]
        print(
            f"  {mode:6s} follow-up with the session's cache vs recomputed: "
            f"{recomputed['first_token_s'] / cached['first_token_s']:.1f}x faster to the first token"
        )
    if {"eager", "static"} <= results.keys():
        for kind in ("first", "follow-up"):
            speed = (
                results["static"]["summary"][kind]["tokens_per_s"]
                / results["eager"]["summary"][kind]["tokens_per_s"]
            )
            print(
                f"  {kind:10s} static vs eager: {speed:.1f}x tokens/s; greedy tokens "
                f"{agreement(results['eager']['tokens'][kind], results['static']['tokens'][kind])}"
            )
    if work is not None:
        work.cleanup()


if __name__ == "__main__":
    main()
