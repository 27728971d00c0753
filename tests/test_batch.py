"""``gar-app batch`` on a synthetic COCO set made here: 20 noise images, 21 regions given as
polygons, compressed RLE and uncompressed RLE. The local run is killed with SIGKILL in the
middle and resumed; its captions are checked against the library and against Ray's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from api_helpers import noise_image
from conftest import REPO
from helpers import wait_until
from PIL import Image
from pycocotools import mask as mask_utils

from gar_app.cli import main
from gar_app.model import GenerationSettings

TOKENS = 3
SIZES = [(40, 56), (48, 64), (56, 40), (64, 64)]


def make_coco(folder, count: int = 20) -> dict:
    """COCO instances over ``count`` images; image 0 has two regions, the rest one each."""
    images_dir = folder / "images"
    images_dir.mkdir(parents=True)
    images, annotations = [], []
    for i in range(count):
        height, width = SIZES[i % len(SIZES)]
        Image.fromarray(noise_image(100 + i, height, width)).save(images_dir / f"img{i:02d}.png")
        images.append({"id": 1000 + i, "file_name": f"img{i:02d}.png", "height": height, "width": width})
        for j in range(2 if i == 0 else 1):
            x0, y0 = 3 + 2 * (i % 5) + 20 * j, 4 + (i % 7)
            x1, y1 = x0 + 12 + i % 9, y0 + 14 + i % 6
            kind = (i + j) % 3
            if kind == 0:  # a polygon (a quadrilateral with a slanted side)
                segmentation = [[x0, y0, x1, y0 + 2, x1 - 3, y1, x0, y1]]
            else:
                mask = np.zeros((height, width), np.uint8)
                mask[y0:y1, x0:x1] = 1
                rle = mask_utils.encode(np.asfortranarray(mask))
                if kind == 1:  # compressed RLE, counts as text
                    segmentation = {"size": [height, width], "counts": rle["counts"].decode()}
                else:  # uncompressed RLE (iscrowd style), counts as a list
                    flat = mask.T.reshape(-1)
                    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
                    segmentation = {
                        "size": [height, width],
                        "counts": np.diff(np.concatenate([[0], changes])).tolist(),
                    }
            annotations.append(
                {
                    "id": 10 * i + j + 1,
                    "image_id": 1000 + i,
                    "segmentation": segmentation,
                    "category_id": 1,
                    "iscrowd": int(kind == 2),
                }
            )
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}
    (folder / "instances.json").write_text(json.dumps(coco))
    return coco


def reference_mask(annotation: dict, image: dict) -> np.ndarray:
    """The region decoded by pycocotools directly (not by the code under test)."""
    height, width = image["height"], image["width"]
    segmentation = annotation["segmentation"]
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode()}
    return mask_utils.decode(rle).astype(bool)


def batch_args(folder, tiny_gar_dir, out, *extra) -> list[str]:
    return [
        "batch",
        "--coco",
        str(folder / "instances.json"),
        "--images",
        str(folder / "images"),
        "--out",
        str(out),
        "--model",
        str(tiny_gar_dir),
        "--device",
        "cpu",
        "--dtype",
        "fp32",
        "--max-new-tokens",
        str(TOKENS),
        *extra,
    ]


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def by_annotation(records: list[dict]) -> dict:
    ids = [r["annotation_id"] for r in records]
    assert len(ids) == len(set(ids)), "an annotation was captioned twice"
    return {r["annotation_id"]: r for r in records}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("coco")
    return folder, make_coco(folder)


@pytest.fixture(scope="module")
def killed_and_resumed(dataset, tiny_gar_dir):
    """A local run in its own process, killed with SIGKILL after its third caption, then run
    again to the end: (lines written before the kill, the final records by annotation)."""
    folder, _coco = dataset
    out = folder / "local.jsonl"
    command = [sys.executable, "-m", "gar_app.cli", *batch_args(folder, tiny_gar_dir, out)]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def third_caption_written() -> bool:
        assert process.poll() is None, "the run ended before it could be killed"
        return out.exists() and out.read_bytes().count(b"\n") >= 3

    try:
        wait_until(third_caption_written, "the run has written three captions", timeout=600)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    before_kill = out.read_bytes().count(b"\n")
    assert main(batch_args(folder, tiny_gar_dir, out)) == 0
    return before_kill, read_lines(out)


@pytest.fixture(scope="module")
def local_run(killed_and_resumed):
    return by_annotation(killed_and_resumed[1])


@pytest.mark.slow  # the killed and resumed run in its own process
def test_killed_run_resumes_and_captions_every_region_exactly_once(dataset, killed_and_resumed):
    _folder, coco = dataset
    before_kill, records = killed_and_resumed
    assert 3 <= before_kill < len(coco["annotations"])  # killed in the middle
    assert sorted(r["annotation_id"] for r in records) == sorted(a["id"] for a in coco["annotations"])


@pytest.mark.slow  # the killed and resumed run in its own process
def test_every_region_is_captioned_once_as_the_library_captions_it(dataset, local_run, tiny_gar):
    folder, coco = dataset
    assert len(coco["images"]) >= 20
    assert set(local_run) == {a["id"] for a in coco["annotations"]}
    images = {image["id"]: image for image in coco["images"]}
    settings = GenerationSettings(max_new_tokens=TOKENS)
    for annotation in coco["annotations"][:4]:  # polygon, RLE text, RLE list; both regions of image 0
        image = images[annotation["image_id"]]
        picture = Image.open(folder / "images" / image["file_name"])
        expected = tiny_gar.describe(picture, reference_mask(annotation, image), settings)
        record = local_run[annotation["id"]]
        assert (record["image_id"], record["caption"]) == (annotation["image_id"], expected)
    assert len({r["caption"] for r in local_run.values()}) > 5  # the captions tell regions apart


@pytest.mark.slow
def test_ray_gives_the_same_captions_as_local(dataset, local_run, tiny_gar_dir):
    """A local Ray cluster (this machine's CPUs, two actors) over the same items."""
    folder, _coco = dataset
    out = folder / "ray.jsonl"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "gar_app.cli",
            *batch_args(folder, tiny_gar_dir, out, "--ray", "--workers", "2"),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert by_annotation(read_lines(out)) == local_run


@pytest.mark.slow  # the killed and resumed run in its own process
def test_a_torn_last_line_is_dropped_and_its_region_redone(dataset, local_run, tiny_gar_dir, capsys):
    folder, coco = dataset
    lines = [json.dumps(r) + "\n" for r in local_run.values()]
    out = folder / "torn.jsonl"
    out.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # a write cut off by a crash
    assert main(batch_args(folder, tiny_gar_dir, out)) == 0
    assert f"{len(lines) - 1} of {len(lines)} regions already in" in capsys.readouterr().err
    assert out.read_text().count("\n") == len(lines)
    assert by_annotation(read_lines(out)) == local_run


@pytest.mark.slow  # the killed and resumed run in its own process
def test_merge_writes_the_captions_into_the_coco_file(dataset, local_run, tiny_gar_dir):
    folder, coco = dataset
    out = folder / "merge.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in local_run.values()))
    merged_path = folder / "captioned.json"
    assert (
        main([*batch_args(folder, "no-such-model", out), "--merge-into", str(merged_path)]) == 0
    )  # nothing to do
    merged = json.loads(merged_path.read_text())
    assert [a["caption"] for a in merged["annotations"]] == [
        local_run[a["id"]]["caption"] for a in coco["annotations"]
    ]
    assert [{k: v for k, v in a.items() if k != "caption"} for a in merged["annotations"]] == coco[
        "annotations"
    ]
    assert merged["images"] == coco["images"] and merged["categories"] == coco["categories"]


def test_question_per_image_about_all_its_regions(tmp_path, tiny_gar_dir, tiny_gar):
    coco = make_coco(tmp_path, count=3)
    out = tmp_path / "answers.jsonl"
    question = "How are {regions} related?"
    assert main([*batch_args(tmp_path, tiny_gar_dir, out), "--question", question]) == 0
    records = read_lines(out)
    assert [r["image_id"] for r in records] == [image["id"] for image in coco["images"]]
    first = records[0]
    assert first["question"] == question and first["annotation_ids"] == [1, 2]
    image = coco["images"][0]
    masks = [reference_mask(a, image) for a in coco["annotations"][:2]]
    expected = tiny_gar.chat(Image.open(tmp_path / "images" / image["file_name"]), masks).ask(
        "How are <Prompt0> and <Prompt1> related?", GenerationSettings(max_new_tokens=TOKENS)
    )
    assert first["answer"] == expected
    assert (
        main([*batch_args(tmp_path, tiny_gar_dir, out), "--question", question]) == 0
    )  # all done: nothing added
    assert len(read_lines(out)) == 3


def test_a_missing_image_is_reported_not_written_and_done_on_the_next_run(tmp_path, tiny_gar_dir, capsys):
    coco = make_coco(tmp_path, count=2)
    missing = tmp_path / "images" / coco["images"][1]["file_name"]
    missing.rename(tmp_path / "away.png")
    out = tmp_path / "out.jsonl"
    assert main(batch_args(tmp_path, tiny_gar_dir, out)) == 1
    assert "1 of 3 items failed" in capsys.readouterr().err
    assert sorted(r["annotation_id"] for r in read_lines(out)) == [1, 2]
    (tmp_path / "away.png").rename(missing)
    assert main(batch_args(tmp_path, tiny_gar_dir, out)) == 0
    assert sorted(r["annotation_id"] for r in read_lines(out)) == [1, 2, 11]


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--workers", "2"], "add --ray"), (["--question", "What is this?"], "mentions no region")],
)
def test_option_mistakes_are_one_line_errors(dataset, tiny_gar_dir, tmp_path, capsys, extra, message):
    folder, _coco = dataset
    assert main([*batch_args(folder, tiny_gar_dir, tmp_path / "x.jsonl"), *extra]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("gar-app: error:") and message in error and "\n" not in error


def test_a_file_that_is_not_coco_is_refused(tmp_path, tiny_gar_dir, capsys):
    (tmp_path / "instances.json").write_text('{"images": []}')
    (tmp_path / "images").mkdir()
    assert main(batch_args(tmp_path, tiny_gar_dir, tmp_path / "x.jsonl")) == 2
    assert "not a COCO instances file" in capsys.readouterr().err


def test_progress_is_drawn_on_stderr_unless_turned_off(dataset, local_run, tiny_gar_dir, capsys):
    folder, _coco = dataset
    out = folder / "progress.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in local_run.values()))  # all done: no model needed
    count = len(local_run)
    assert main(batch_args(folder, "no-such-model", out)) == 0
    captured = capsys.readouterr()
    assert "batch: 100%" in captured.err and f"{count}/{count} [" in captured.err and captured.out == ""
    assert main([*batch_args(folder, "no-such-model", out), "--no-progress"]) == 0
    assert "batch:" not in capsys.readouterr().err
