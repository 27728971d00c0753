"""``gar-app`` commands that need no model import no model libraries (so they answer in about a second).

Each command runs in a fresh interpreter that reports which modules it imported; the timings
themselves are measured by ``bench/bench_startup.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, write_blank_png
from PIL import Image

HEAVY = {"torch", "torchvision", "transformers", "timm", "gradio", "cv2", "segment_anything"}
DRIVER = """
import json, os, sys
from gar_app.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
with open(os.environ["MODULES_OUT"], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def imported(tmp_path, *argv: str) -> tuple[int, set[str], str]:
    """Exit code of ``gar-app ARGV``, the top-level packages it imported, and its output."""
    report = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "MODULES_OUT": str(report)},
    )
    assert "Traceback" not in result.stderr, result.stderr
    data = json.loads(report.read_text())
    return data["code"], {name.split(".")[0] for name in data["modules"]}, result.stdout


@pytest.fixture()
def predictions(tmp_path) -> str:
    path = tmp_path / "preds.json"
    records = [{"id": f"q{k}", "model_output": "A", "answer": "AB"[k % 2], "type": "color"} for k in range(4)]
    path.write_text(json.dumps(records))
    return str(path)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["eval", "--help"],
        ["eval", "score", "--help"],
        ["eval", "run", "--help"],
        ["describe", "--help"],
        ["tiny", "--help"],
        ["project", "--help"],
        ["project", "describe", "--help"],
    ],
)
def test_help_imports_no_model_library(tmp_path, argv):
    code, modules, out = imported(tmp_path, *argv)
    assert code == 0 and out.startswith("usage: gar-app")
    assert modules & HEAVY == set()


def test_eval_score_imports_no_model_library(tmp_path, predictions):
    code, modules, out = imported(tmp_path, "eval", "score", "vqa", predictions, "--json")
    assert code == 0 and json.loads(out)["overall"] == {"correct": 2, "total": 4, "accuracy": 50.0}
    assert modules & HEAVY == set()


def test_bad_input_is_refused_before_the_model_libraries_load(tmp_path):
    """An oversized image is refused in well under a second: torch (seconds, 800 MB) is never imported."""
    big = write_blank_png(tmp_path / "big.png", 15000, 15000)
    Image.fromarray(np.full((150, 150), 255, np.uint8)).save(tmp_path / "mask.png")
    for command in (["describe", "--mask"], ["ask", "--question", "What is <Prompt0>?", "--masks"]):
        code, modules, _out = imported(tmp_path, *command, str(tmp_path / "mask.png"), "--image", str(big))
        assert code == 2
        assert modules & HEAVY == set()
