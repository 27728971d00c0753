"""How long ``gar-app`` commands that need no model take to answer, against ``python -c pass``.

    python bench/bench_startup.py [--repeats 5]

Every command runs in a fresh interpreter (the same one running this script); the table
shows the median wall time, its ratio to an empty interpreter measured in the same run,
and the process's peak memory. ``python -X importtime -m gar_app.cli --help`` shows where
the remaining import time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one run of ``argv``."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, _status, usage = os.wait4(process.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        predictions = Path(folder) / "preds.json"
        records = [{"id": k, "model_output": "A", "answer": "AB"[k % 2], "type": "color"} for k in range(400)]
        predictions.write_text(json.dumps(records))
        cli = [sys.executable, "-m", "gar_app.cli"]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "gar-app --help": [*cli, "--help"],
            "gar-app eval --help": [*cli, "eval", "--help"],
            "gar-app eval score vqa (400 records)": [*cli, "eval", "score", "vqa", str(predictions)],
        }
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.repeats):  # interleaved, so a busy moment hits every command alike
            for name, argv in commands.items():
                runs[name].append(timed(argv))
    base = statistics.median(seconds for seconds, _ in runs["python -c pass"])
    print(f"median of {args.repeats} runs each, {sys.executable}")
    print(f"{'command':40s} {'wall':>8s} {'x python':>9s} {'peak RSS':>9s}")
    for name, results in runs.items():
        seconds = statistics.median(s for s, _ in results)
        memory = max(m for _, m in results)
        print(f"{name:40s} {seconds * 1000:6.0f} ms {seconds / base:8.1f}x {memory:6.0f} MB")


if __name__ == "__main__":
    main()
