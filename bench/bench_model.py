"""What a GAR user waits for: load, time to first text, tokens/s, and a follow-up turn.

Every number comes from one run; the ratio printed last compares a follow-up turn that
reuses the session's vision features and KV cache with recomputing the conversation.

    python bench/bench_model.py                                   # tiny random GAR on the CPU
    python bench/bench_model.py --random-size gar-1b --device cuda --dtype bf16
    python bench/bench_model.py --model /path/to/GAR-1B --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gar_app.model import GenerationSettings, load_gar  # noqa: E402
from gar_app.model.tiny import write_tiny_gar  # noqa: E402

DEMO = REPO.parent / "shared" / "data" / "seed_demo" / "demo_image_2.jpg"


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


class Clock:
    """Times each language-model step (the lm_head runs once per step), synchronising CUDA."""

    def __init__(self, gar):
        self.device = gar.device
        self.steps: list[float] = []
        self.start = 0.0
        gar.model.mllm.lm_head.register_forward_hook(self._tick)

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def _tick(self, *_):
        self.steps.append(self.now())

    def begin(self) -> None:
        self.steps = []
        self.start = self.now()


def timed_turn(clock: Clock, pieces) -> dict:
    """Consume a stream; report time to first token and text, and decode speed."""
    clock.begin()
    first_text = None
    for piece in pieces:
        if first_text is None and piece:
            first_text = clock.now() - clock.start
    end = clock.now()
    steps = clock.steps
    decode = (len(steps) - 1) / (steps[-1] - steps[0]) if len(steps) > 1 and steps[-1] > steps[0] else float("nan")
    return {
        "first_token_s": steps[0] - clock.start if steps else float("nan"),
        "first_text_s": first_text if first_text is not None else float("nan"),
        "total_s": end - clock.start,
        "tokens": len(steps),
        "tokens_per_s": decode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint folder or Hub id (default: a random checkpoint)")
    parser.add_argument("--random-size", default="tiny", choices=["tiny", "gar-1b"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, choices=["bf16", "fp16", "fp32"])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    work = tempfile.TemporaryDirectory()
    model = args.model
    if model is None:
        started = time.perf_counter()
        save_dtype = torch.bfloat16 if args.random_size != "tiny" else torch.float32
        model = write_tiny_gar(
            Path(work.name) / args.random_size, preset=args.random_size, dtype=save_dtype, device=args.device
        )
        print(f"random {args.random_size} checkpoint written in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    gar = load_gar(model, device=args.device, dtype=args.dtype)
    load_s = time.perf_counter() - started
    params = sum(p.numel() for p in gar.model.parameters()) / 1e9
    print(f"model: {model}  ({params:.2f} B parameters, {gar.model.dtype}, {gar.device}, "
          f"attention {gar.config.mllm_config._attn_implementation})")
    print(f"load: {load_s:.2f} s")
    if gar.device.type == "cuda":
        print(f"gpu: {torch.cuda.get_device_name()}")

    image, masks = demo_inputs()
    clock = Clock(gar)
    settings = GenerationSettings(max_new_tokens=args.new_tokens)
    follow_up = "How does <Prompt1> relate to <Prompt0>?"
    runs: dict[str, list[dict]] = {"first": [], "cached": [], "scratch": []}
    for _ in range(args.repeats):
        session = gar.chat(image, masks)
        runs["first"].append(timed_turn(clock, session.stream_describe(0, settings)))
        runs["cached"].append(timed_turn(clock, session.stream(follow_up, settings)))
        scratch = gar.chat(image, masks, reuse_cache=False)
        for _piece in scratch.stream_describe(0, settings):
            pass
        runs["scratch"].append(timed_turn(clock, scratch.stream(follow_up, settings)))
    prompt_tokens = len(session._ids)

    def median(kind: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[kind])

    cols, rows = gar.processor.tile_grid(image.size)
    tiles = cols * rows + 1  # and the thumbnail
    print(f"image {image.width}x{image.height}: {tiles} tiles, conversation {prompt_tokens} tokens; "
          f"median of {args.repeats} runs, {args.new_tokens} new tokens at most")
    for kind, label in (("first", "first turn (describe)"), ("cached", "follow-up, cached"),
                        ("scratch", "follow-up, recomputed")):
        print(f"{label:24s} first token {median(kind, 'first_token_s') * 1000:8.1f} ms   "
              f"first text {median(kind, 'first_text_s') * 1000:8.1f} ms   "
              f"total {median(kind, 'total_s') * 1000:8.1f} ms   "
              f"decode {median(kind, 'tokens_per_s'):7.1f} tokens/s")
    ratio = median("scratch", "first_token_s") / median("cached", "first_token_s")
    total_ratio = median("scratch", "total_s") / median("cached", "total_s")
    print(f"follow-up: cached session vs recomputing from scratch: {ratio:.1f}x faster to first token, "
          f"{total_ratio:.1f}x faster overall")
    work.cleanup()


if __name__ == "__main__":
    main()
