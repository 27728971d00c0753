"""``gar-app describe`` from SAM prompts: segment, save the overlay, describe (on the project's
own rocket photo, 640x427)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import EXAMPLES
from PIL import Image

from gar_app.cli import main
from gar_app.regions import REGION_COLOURS, hex_to_rgb

FAST = ["--max-new-tokens", "6", "--device", "cpu"]
ROCKET = EXAMPLES / "rocket.jpg"
ROCKET_BOX = "[290, 120, 360, 410]"


pytestmark = pytest.mark.usefixtures("no_ambient_sam")


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_box_without_sam_uses_the_fallback_and_says_so(capsys, tmp_path, tiny_gar_dir):
    overlay = tmp_path / "vis.png"
    code, out, err = _run(
        capsys,
        "describe",
        "--image",
        ROCKET,
        "--box",
        ROCKET_BOX,
        "--output-image",
        overlay,
        "--model",
        tiny_gar_dir,
        "--json",
        *FAST,
    )
    assert code == 0, err
    assert "segmenting with GrabCut fallback" in err
    doc = json.loads(out.strip().splitlines()[-1])
    assert doc["segmenter"].startswith("GrabCut fallback")
    x1, y1, x2, y2 = doc["regions"][0]["box"]
    assert 290 <= x1 <= x2 <= 360 and 120 <= y1 <= y2 <= 410, "the mask stays inside the box"
    drawn = np.asarray(Image.open(overlay).convert("RGB"))
    original = np.asarray(Image.open(ROCKET).convert("RGB"))
    assert drawn.shape == original.shape
    changed = np.any(drawn != original, axis=-1)
    assert changed[120:411, 290:361].mean() > 0.05 and not changed[:100, :250].any()
    assert doc["regions"][0]["tag"] == "<Prompt1>"  # the released single-region input
    green = np.array(hex_to_rgb(REGION_COLOURS[1]))
    tinted = drawn[changed].astype(int) - original[changed].astype(int)
    assert (tinted[:, 1] > 0).mean() > 0.5 and green[1] == 255  # drawn in <Prompt1>'s green


def test_points_with_tiny_sam(capsys, tmp_path, tiny_gar_dir, tiny_sam_path):
    code, out, err = _run(
        capsys,
        "describe",
        "--image",
        ROCKET,
        "--points",
        "[[320, 250], [322, 350]]",
        "--labels",
        "[1, 1]",
        "--sam",
        tiny_sam_path,
        "--model",
        tiny_gar_dir,
        "--json",
        *FAST,
    )
    assert code == 0, err
    doc = json.loads(out.strip().splitlines()[-1])
    assert doc["segmenter"].startswith("SAM") and str(tiny_sam_path) in doc["segmenter"]
    assert doc["regions"][0]["area"] > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--points", "[[99999, 5]]"], "point (99999, 5) is outside the 640x427 image"),
        (["--box", "[10, 10, 10, 50]"], "box"),
        (["--points", "not json"], "--points must be JSON"),
        (["--points", "[[1, 2]]", "--labels", "[1, 0]"], "--labels has 2 entries for 1 points"),
        (["--box", "[1, 2, 3, 4]", "--mask", "x.png"], "not both"),
        (["--points", "[[1, 2]]", "--sam", "/no/such/sam.pth"], "sam.pth"),
    ],
)
def test_bad_sam_prompts_are_one_clear_line(capsys, tiny_gar_dir, argv, message):
    code, _out, err = _run(capsys, "describe", "--image", ROCKET, *argv, "--model", tiny_gar_dir, *FAST)
    assert code == 2, err
    assert message in err and "Traceback" not in err


def test_tiny_sam_command_writes_a_loadable_checkpoint(capsys, tmp_path):
    from gar_app.segment import SamSegmenter, load_segmenter

    target = tmp_path / "sam.pth"
    code, out, _err = _run(capsys, "tiny", "sam", target)
    assert code == 0 and out.strip() == str(target)
    assert isinstance(load_segmenter(target, device="cpu"), SamSegmenter)
