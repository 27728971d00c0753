"""Bad options and oversized input through ``gar-app``: one ``gar-app: error:`` line, exit 2, no traceback,
and nothing heavy done first."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, write_blank_png
from PIL import Image

from gar_app.cli import main

FAST = ["--max-new-tokens", "4", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("no_ambient_sam")


@pytest.fixture()
def files(tmp_path) -> dict[str, str]:
    """A 120x80 picture with a bright square, its mask, and the same mask at half size."""
    pixels = np.full((80, 120, 3), 90, np.uint8)
    pixels[20:60, 30:70] = (230, 200, 40)
    Image.fromarray(pixels).save(tmp_path / "image.png")
    mask = np.zeros((80, 120), np.uint8)
    mask[20:60, 30:70] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    Image.fromarray(mask[::2, ::2]).save(tmp_path / "half.png")
    Image.fromarray(np.full((80, 80), 255, np.uint8)).save(tmp_path / "square.png")
    return {name: str(tmp_path / f"{name}.png") for name in ("image", "mask", "half", "square")}


def run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gar-app: error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--box", '["a", "b", "c", "d"]', "--box must be four numbers [x1, y1, x2, y2]"),
        ("--box", "[10, 10, 50]", "--box must be four numbers"),
        ("--box", "[10, 10, 50, 50, 60]", "--box must be four numbers"),
        ("--box", "[NaN, 10, 50, 50]", "--box must be four numbers"),
        ("--box", "[10, 10, 50, Infinity]", "--box must be four numbers"),
        ("--box", "[10, 10, 50, 1e999]", "--box must be four numbers"),
        ("--box", "[true, 10, 50, 50]", "--box must be four numbers"),
        ("--box", '{"x": 1}', "--box must be a JSON list"),
        ("--box", "[10, 10, 10, 50]", "the box [10, 10, 10, 50] has zero area"),
        ("--box", "[500, 500, 900, 900]", "the box [500, 500, 900, 900] lies outside the 120x80 image"),
        ("--points", "[[1]]", "--points must be a list of [x, y] pairs of numbers"),
        ("--points", "[10, 20]", "--points must be a list of [x, y] pairs"),
        ("--points", '[["a", 1]]', "--points must be a list of [x, y] pairs"),
        ("--points", "[[1, 2], [3]]", "--points must be a list of [x, y] pairs"),
        (
            "--points",
            "[[1, 2" + "0" * 5000 + "]]",
            "--points must be JSON, e.g. '[[100, 200]]'; got '[[1, 20000",
        ),
        ("--points", "[[1, 2]", "--points must be JSON"),
        ("--points", "[[500.5, 20]]", "point (500.5, 20) is outside the 120x80 image"),
        ("--points", "[]", "no prompt: click a point, drag a box"),
    ],
)
def test_malformed_sam_prompts(capsys, files, option, value, message):
    code, _out, err = run(
        capsys, "describe", "--image", files["image"], option, value, "--model", "/no/model", *FAST
    )
    assert message in one_error_line(code, err)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("[2]", "--labels must be a list of 1 (include) and 0 (exclude)"),
        ('["1"]', "--labels must be a list of 1"),
        ("[true]", "--labels must be a list of 1"),
        ("[1, 0]", "--labels has 2 entries for 1 points"),
    ],
)
def test_malformed_labels(capsys, files, labels, message):
    code, _out, err = run(
        capsys,
        "describe",
        "--image",
        files["image"],
        "--points",
        "[[40, 30]]",
        "--labels",
        labels,
        "--model",
        "/x",
    )
    assert message in one_error_line(code, err)


def test_box_corners_in_either_order_give_the_same_region(capsys, files, tiny_gar_dir):
    """A box dragged up-left ([x2, y2, x1, y1]) is the same box: the segmenter sorts its corners."""
    regions = []
    for box in ("[25, 15, 75, 65]", "[75, 65, 25, 15]", "[25, 65, 75, 15]"):
        code, out, err = run(
            capsys,
            "describe",
            "--image",
            files["image"],
            "--box",
            box,
            "--model",
            tiny_gar_dir,
            "--json",
            *FAST,
        )
        assert code == 0, err
        regions.append(json.loads(out.strip().splitlines()[-1])["regions"])
    assert regions[0] == regions[1] == regions[2]
    x1, y1, x2, y2 = regions[0][0]["box"]
    assert 25 <= x1 <= x2 <= 75 and 15 <= y1 <= y2 <= 65


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing/overlay.png", "folder"),
        ("overlay.xyz", "the name must end in .png"),
        ("overlay", "must end in"),
    ],
)
def test_overlay_path_is_checked_before_anything_is_loaded(capsys, files, tmp_path, name, message):
    target = tmp_path / name
    code, _out, err = run(
        capsys,
        "describe",
        "--image",
        files["image"],
        "--mask",
        files["mask"],
        "--output-image",
        target,
        "--model",
        "/no/such/model",
        *FAST,
    )
    line = one_error_line(code, err)  # not "no checkpoint folder": the model was never tried
    assert message in line and str(target) in line
    assert not target.exists()


def test_mask_of_another_aspect_ratio_is_refused(capsys, files):
    code, _out, err = run(
        capsys, "describe", "--image", files["image"], "--mask", files["square"], "--model", "/x"
    )
    line = one_error_line(code, err)
    assert "mask square.png is 80x80 but the image is 120x80: another aspect ratio" in line


def test_mask_of_another_size_is_fitted_and_the_cli_says_so(capsys, files, tiny_gar_dir):
    outputs = {}
    for mask in ("mask", "half"):
        code, out, err = run(
            capsys,
            "describe",
            "--image",
            files["image"],
            "--mask",
            files[mask],
            "--model",
            tiny_gar_dir,
            "--json",
            *FAST,
        )
        assert code == 0, err
        outputs[mask] = json.loads(out.strip().splitlines()[-1])
        notes = [line for line in err.splitlines() if line.startswith("gar-app: note:")]
        assert notes == (
            []
            if mask == "mask"
            else [
                "gar-app: note: mask half.png is 60x40, the image 120x80: scaled to fit (same aspect ratio)"
            ]
        )
    assert outputs["half"]["regions"] == outputs["mask"]["regions"]


def test_eval_run_refuses_an_unknown_dtype(capsys, tmp_path):
    code, _out, err = run(
        capsys,
        "eval",
        "run",
        "--split",
        "vqa",
        "--annotations",
        tmp_path / "a.json",
        "--out",
        tmp_path / "p.json",
        "--dtype",
        "foo",
    )
    assert "argument --dtype: invalid choice: 'foo'" in one_error_line(code, err)


@pytest.mark.parametrize(
    "url", ["not a url", "localhost:8000", "ftp://judge/v1", "http://", "http://host:port/v1"]
)
def test_eval_score_refuses_a_judge_url_that_is_not_one(capsys, tmp_path, url):
    code, _out, err = run(
        capsys, "eval", "score", "simple", tmp_path / "preds.json", "--judge-url", url, "--judge-model", "m"
    )
    assert (
        f"--judge-url must be an http:// or https:// URL such as http://localhost:8000/v1, not {url!r}"
        in (one_error_line(code, err))
    )


# Runs the command as its own child and reports that child's peak RSS. The extra process is
# needed because a child keeps its parent's high-water mark across fork and exec: measured
# straight from pytest (1.5 GB with the test models loaded), any command would look that big.
MEASURE = """
import json, os, subprocess, sys
child = subprocess.Popen([sys.executable, "-m", "gar_app.cli", *sys.argv[2:]])
_pid, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump({"code": os.waitstatus_to_exitcode(status), "peak_kb": usage.ru_maxrss}, out)
"""


def test_a_huge_png_is_refused_quickly_and_in_little_memory(tmp_path, files):
    """The issue's case: a 15000x15000 PNG (0.7 MB on disk, 675 MB decoded, 6.5 GB peak before)."""
    big = write_blank_png(tmp_path / "big.png", 15000, 15000)
    Image.fromarray(np.full((150, 150), 255, np.uint8)).save(tmp_path / "big_mask.png")  # same aspect ratio
    report = tmp_path / "peak.json"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURE,
            str(report),
            "describe",
            "--image",
            str(big),
            "--mask",
            str(tmp_path / "big_mask.png"),
            "--model",
            str(tmp_path / "no-model"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
    )
    measured = json.loads(report.read_text())
    line = one_error_line(measured["code"], result.stderr)
    assert (
        "big.png has 225.0 megapixels, more than the 50 megapixels this app accepts" in line
        and result.stdout == ""
    )
    peak_mb = measured["peak_kb"] / 1024  # kilobytes on Linux
    assert peak_mb < 1536, f"peak RSS {peak_mb:.0f} MB"
