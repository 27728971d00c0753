"""``gar-app track``: the JSON it writes, what it says on stderr, and its one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from gar_app.cli import main
from gar_app.rle import rle_to_mask


def track(capsys, *argv: str) -> tuple[int, str]:
    code = main(["track", *argv])
    return code, capsys.readouterr().err


def test_box_on_a_frame_tracked_with_the_fallback(shape_clip, tmp_path, capsys):
    path, synthetic = shape_clip
    out = tmp_path / "tracks.json"
    # the orange shape's box on frame 6; x1 < x2 and y1 < y2 are x and y, as everywhere in the app
    ys, xs = np.nonzero(synthetic.truth[6])
    box = [int(xs.min()) - 3, int(ys.min()) - 3, int(xs.max()) + 4, int(ys.max()) + 4]
    code, err = track(
        capsys,
        "--video",
        str(path),
        "--frame",
        "6",
        "--box",
        json.dumps(box),
        "--fps",
        "6",
        "--out",
        str(out),
    )
    assert code == 0, err
    assert "classical OpenCV tracker" in err and "--sam2" in err
    assert "tracking: 100%" in err and "23/23 [" in err, err  # the progress bar, finished
    document = json.loads(out.read_text())
    assert document["video"] == {"name": "shapes.mp4", "width": 192, "height": 144, "fps": 12.0, "frames": 24}
    (region,) = document["regions"]
    assert set(region) == {"tag", "frames"} and region["tag"] == "<Prompt0>"
    assert [f["index"] for f in region["frames"]] == list(range(0, 48, 2))
    assert [f["time"] for f in region["frames"]] == pytest.approx([i / 12 for i in range(0, 48, 2)])
    masks = {f["index"]: f["mask"] for f in region["frames"]}
    marked = rle_to_mask(masks[6])
    assert (marked & synthetic.truth[6]).sum() / (
        marked | synthetic.truth[6]
    ).sum() >= 0.8  # GrabCut in the box
    assert masks[24] is None  # the shape is out of the picture then
    later = rle_to_mask(masks[40])
    assert (later & synthetic.truth[40]).sum() / (later | synthetic.truth[40]).sum() >= 0.75


def test_mask_file_and_a_frame_between_samples(shape_clip, tmp_path, capsys):
    path, synthetic = shape_clip
    mask = tmp_path / "mask.png"
    Image.fromarray(synthetic.companion[7].astype(np.uint8) * 255).save(mask)
    out = tmp_path / "tracks.json"
    code, err = track(
        capsys,
        "--video",
        str(path),
        "--frame",
        "7",
        "--mask",
        str(mask),
        "--max-frames",
        "4",
        "--out",
        str(out),
        "--no-progress",
    )
    assert code == 0, err
    assert "frame 7 is not among the processed frames; marking frame 0" in err  # samples: 0, 16, 31, 47
    assert "tracking:" not in err and "%|" not in err  # no progress bar
    frames = json.loads(out.read_text())["regions"][0]["frames"]
    assert [f["index"] for f in frames] == [0, 16, 31, 47] and all(f["mask"] for f in frames)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "say which region"),
        (["--box", "[0, 0, 5, 5]", "--mask", "m.png"], "not both"),
        (["--box", "[0, 0, 5]"], "four numbers"),
        (["--box", "[500, 500, 600, 600]"], "outside the 192x144 image"),
        (["--points", "[[10, 10]]", "--labels", "[1, 0]"], "labels"),
        (["--box", "[0, 0, 5, 5]", "--fps", "0"], "frame rate cap"),
        (["--box", "[0, 0, 5, 5]", "--frame", "-1"], "--frame"),
        (["--box", "[0, 0, 5, 5]", "--sam2", "/nowhere/sam2"], "SAM 2"),
        (["--box", "[0, 0, 5, 5]", "--preview", "p.mp4"], "WebM"),
    ],
)
def test_mistakes_are_one_line_errors(shape_clip, tmp_path, capsys, argv, message):
    code, err = track(capsys, "--video", str(shape_clip[0]), *argv, "--out", str(tmp_path / "x.json"))
    assert code == 2 and message in err and "Traceback" not in err
    assert err.strip().count("\n") <= 3 and err.strip().splitlines()[-1].startswith("gar-app: error:")
    assert not (tmp_path / "x.json").exists()


def test_unreadable_video(tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    code, err = track(capsys, "--video", str(bad), "--box", "[0, 0, 5, 5]", "--out", str(tmp_path / "x.json"))
    assert code == 2 and "cannot read video bad.mp4" in err


def test_building_the_track_command_imports_nothing_heavy():
    import subprocess
    import sys

    from conftest import REPO

    code = (
        "import argparse, sys; from gar_app.cli.track import add_track; "
        "add_track(argparse.ArgumentParser().add_subparsers()); "
        "print(sorted(m for m in ('cv2', 'torch', 'transformers', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    assert out.strip() == "[]"


def test_an_output_folder_that_does_not_exist_is_refused_before_tracking(shape_clip, tmp_path, capsys):
    code, err = track(
        capsys,
        "--video",
        str(shape_clip[0]),
        "--box",
        "[0, 0, 5, 5]",
        "--out",
        str(tmp_path / "no" / "x.json"),
    )
    assert code == 2 and "does not exist" in err and "tracking [" not in err
