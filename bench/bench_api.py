"""What an API client waits for: a new conversation, and a follow-up the server still holds
against the same follow-up recomputed (the server holds no conversation).

Both servers run in this process on loopback and share one model; requests go through the
``openai`` client with streaming, so "first text" is what a user would see first.

    python bench/bench_api.py                                   # tiny random GAR on the CPU
    python bench/bench_api.py --random-size gar-1b --device cuda --dtype bf16
    python bench/bench_api.py --model /path/to/GAR-1B --device cuda
"""

from __future__ import annotations

import argparse
import base64
import io
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_model import demo_inputs  # noqa: E402

from gar_app.devices import DTYPES, default_device  # noqa: E402
from gar_app.model import load_gar  # noqa: E402
from gar_app.model.tiny import write_tiny_gar  # noqa: E402
from gar_app.rle import mask_to_rle  # noqa: E402
from gar_app.segment import GrabCutSegmenter  # noqa: E402
from gar_app.serve.app import ApiOptions, create_server  # noqa: E402
from gar_app.workspace import Services  # noqa: E402


def start(services: Services, options: ApiOptions):
    import openai
    import uvicorn

    app = create_server(services, options)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0), app


def timed(client, messages, tokens: int) -> tuple[str, float, float]:
    """(answer, seconds to first text, seconds in all) of one streamed request."""
    started = time.perf_counter()
    first = None
    pieces = []
    for chunk in client.chat.completions.create(
        model=None, messages=messages, max_tokens=tokens, stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            first = first or time.perf_counter() - started
            pieces.append(chunk.choices[0].delta.content)
    return "".join(pieces), first or float("nan"), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="checkpoint folder or Hub id (default: a random checkpoint)")
    parser.add_argument("--random-size", default="tiny", choices=["tiny", "gar-1b"])
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--dtype", default=None, choices=DTYPES)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    work = tempfile.TemporaryDirectory()
    model = args.model or write_tiny_gar(
        Path(work.name) / args.random_size,
        preset=args.random_size,
        device=args.device,
        dtype=torch.bfloat16 if args.random_size != "tiny" else torch.float32,
    )
    gar = load_gar(model, device=args.device, dtype=args.dtype)
    services = Services(segmenter=GrabCutSegmenter(), gar=gar)
    holding, held_app = start(services, ApiOptions())
    forgetting, _ = start(services, ApiOptions(max_conversations=0))

    image, masks = demo_inputs()
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    regions = [{"type": "region", "tag": f"<Prompt{k}>", "mask": mask_to_rle(m)} for k, m in enumerate(masks)]
    first_question = {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": url}},
            *regions,
            {"type": "text", "text": "What is <Prompt0> doing?"},
        ],
    }
    timed(holding, [first_question], 2)  # warm-up

    runs: dict[str, list[tuple[float, float]]] = {"new": [], "held": [], "recomputed": []}
    for repeat in range(args.repeats):
        question = {
            **first_question,
            "content": [
                *first_question["content"][:-1],
                {"type": "text", "text": f"({repeat}) What is <Prompt0> doing?"},
            ],
        }
        answer, *new = timed(holding, [question], args.new_tokens)
        runs["new"].append(new)
        follow_up = [
            question,
            {"role": "assistant", "content": answer},
            {"role": "user", "content": "How does <Prompt1> relate to <Prompt0>?"},
        ]
        runs["recomputed"].append(timed(forgetting, follow_up, args.new_tokens)[1:])
        runs["held"].append(timed(holding, follow_up, args.new_tokens)[1:])
    stats = held_app.state.gar_api.engine.stats()

    def median(kind: str, which: int) -> float:
        return statistics.median(run[which] for run in runs[kind])

    print(
        f"model: {model} on {gar.device} ({gar.model.dtype}); image {image.width}x{image.height}, "
        f"2 regions; median of {args.repeats}, {args.new_tokens} new tokens at most, streamed"
    )
    for kind, label in (
        ("new", "new conversation"),
        ("held", "follow-up, held"),
        ("recomputed", "follow-up, recomputed"),
    ):
        print(
            f"{label:24s} first text {median(kind, 0) * 1000:8.1f} ms   total {median(kind, 1) * 1000:8.1f} ms"
        )
    print(f"held conversations reused: {stats['conversations']['reused']} of {2 * args.repeats + 1} requests")
    print(
        f"follow-up held vs recomputed: {median('recomputed', 0) / median('held', 0):.1f}x faster to first text, "
        f"{median('recomputed', 1) / median('held', 1):.1f}x faster overall; "
        f"vs a new conversation: {median('new', 1) / median('held', 1):.1f}x faster overall"
    )
    work.cleanup()


if __name__ == "__main__":
    main()
