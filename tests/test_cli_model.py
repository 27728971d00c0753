"""``gar-app describe`` / ``ask`` end to end on the tiny checkpoint, and their errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, decode_rles
from garbench_sample import garbench_items, own_garbench
from PIL import Image

from gar_app.cli import main
from gar_app.images import load_image, load_mask, mask_box

FAST = ["--max-new-tokens", "8", "--device", "cpu"]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory, scene3):
    """The rocket photo and three region masks as files (see conftest.scene3)."""
    folder = tmp_path_factory.mktemp("scene")
    image, masks = scene3
    image.save(folder / "rocket.png")
    paths = []
    for k, mask in enumerate(masks):
        paths.append(folder / f"mask{k}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(paths[-1])
    return folder / "rocket.png", paths


def test_describe_streams_text_and_json(capsys, tiny_gar_dir, scene_files):
    image, (mask, *_others) = scene_files
    code, out, err = run_cli(
        capsys, "describe", "--image", image, "--mask", mask, "--model", tiny_gar_dir, *FAST
    )
    assert code == 0 and out.strip(), err
    streamed = out.strip()
    code, out, err = run_cli(
        capsys, "describe", "--image", image, "--mask", mask, "--model", tiny_gar_dir, "--json", *FAST
    )
    assert code == 0, err
    doc = _json(out)
    truth = load_mask(mask, size=load_image(image).size)
    assert doc["model"] == str(tiny_gar_dir) and doc["text"] == streamed
    # the released single-region input: the region is <Prompt1>
    assert doc["regions"] == [{"tag": "<Prompt1>", "box": list(mask_box(truth)), "area": int(truth.sum())}]
    assert "tokens" not in doc


def test_ask_multiple_choice_with_three_regions(capsys, tiny_gar_dir, scene_files):
    image, masks = scene_files
    code, out, err = run_cli(
        capsys,
        "ask",
        "--image",
        image,
        "--masks",
        *masks,
        "--question",
        "What is the relationship between <Prompt0>, <Prompt1>, and <Prompt2>?",
        "--choices",
        "A. <Prompt0> is using <Prompt2> to point at <Prompt1>",
        "B. <Prompt0> has hit <Prompt1>",
        "--model",
        tiny_gar_dir,
        "--json",
        *FAST,
    )
    assert code == 0, err
    doc = _json(out)
    assert [r["tag"] for r in doc["regions"]] == ["<Prompt0>", "<Prompt1>", "<Prompt2>"]
    for region, path in zip(doc["regions"], masks, strict=True):
        assert region["box"] == list(mask_box(np.asarray(Image.open(path).convert("L")) > 0))
    assert doc["question"] == (
        "Question: What is the relationship between <Prompt0>, <Prompt1>, and <Prompt2>?\nOptions:\n"
        "A. <Prompt0> is using <Prompt2> to point at <Prompt1>\nB. <Prompt0> has hit <Prompt1>\n"
        "Answer with the correct option's letter directly."
    )


@pytest.mark.parametrize("command", ["describe", "ask"])
def test_logprobs_in_the_json_document(capsys, tiny_gar_dir, scene_files, command):
    image, masks = scene_files
    region = (
        ["--mask", masks[0]] if command == "describe" else ["--masks", *masks, "--question", "<Prompt2>?"]
    )
    code, out, err = run_cli(
        capsys,
        command,
        "--image",
        image,
        *region,
        "--model",
        tiny_gar_dir,
        "--json",
        "--logprobs",
        "3",
        *FAST,
    )
    assert code == 0, err
    doc = _json(out)
    tokens = doc["tokens"]
    assert 1 <= len(tokens) <= 8
    spelled = "".join(t["text"] for t in tokens)  # control tokens included; the answer hides them
    assert re.sub(r"<\|[a-z_0-9]+\|>", "", spelled).strip() == doc["text"]
    for token in tokens:
        assert set(token) == {"id", "text", "logprob", "top"}
        assert [set(t) for t in token["top"]] == [{"id", "text", "logprob"}] * 3
        values = [t["logprob"] for t in token["top"]]
        assert values == sorted(values, reverse=True) and values[0] <= 0
        assert token["top"][0]["id"] == token["id"] and token["top"][0]["logprob"] == token["logprob"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--json", "--logprobs", "0"], "--logprobs must be between 1 and 20, not 0"),
        (["--json", "--logprobs", "21"], "--logprobs must be between 1 and 20, not 21"),
        (["--logprobs", "5"], "--logprobs needs --json"),
    ],
)
def test_logprobs_out_of_range_is_one_clear_line(capsys, tiny_gar_dir, scene_files, extra, message):
    image, masks = scene_files
    code, _out, err = run_cli(
        capsys, "describe", "--image", image, "--mask", masks[0], "--model", tiny_gar_dir, *extra
    )
    assert code == 2 and f"gar-app: error: {message}" in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("split", ["vqa", "simple", "detailed"])
def test_ask_runs_on_every_garbench_sample_item(capsys, tmp_path, tiny_gar10_dir, split):
    for item in garbench_items(split):
        image = own_garbench() / item["image"]
        paths = []
        for k, mask in enumerate(decode_rles(item)):
            paths.append(tmp_path / f"{item['id']}_{k}.png")
            Image.fromarray(mask.astype(np.uint8) * 255).save(paths[-1])
        question = (
            item.get("question") or "Describe <Prompt0> in detail, including the relationship with <Prompt1>."
        )
        extra = ["--choices", *item["choices"]] if split == "vqa" else []
        code, out, err = run_cli(
            capsys,
            "ask",
            "--image",
            image,
            "--masks",
            *paths,
            "--question",
            question,
            *extra,
            "--model",
            tiny_gar10_dir,
            "--json",
            *FAST,
        )
        assert code == 0, f"{item['id']}: {err}"
        doc = _json(out)
        assert len(doc["regions"]) == len(item["mask_rles"]), item["id"]


@pytest.fixture()
def inputs(tmp_path):
    image = tmp_path / "image.png"
    Image.fromarray(np.full((60, 80, 3), 120, dtype=np.uint8)).save(image)
    mask = np.zeros((60, 80), dtype=np.uint8)
    mask[10:30, 20:50] = 255
    good = tmp_path / "mask.png"
    Image.fromarray(mask).save(good)
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros_like(mask)).save(empty)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    return {
        "image": image,
        "mask": good,
        "empty": empty,
        "corrupt": corrupt,
        "missing": tmp_path / "nope.png",
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["describe", "--image", "{missing}", "--mask", "{mask}"], "Image file not found"),
        (["describe", "--image", "{corrupt}", "--mask", "{mask}"], "not a valid image"),
        (["describe", "--image", "{image}", "--mask", "{empty}"], "region is empty"),
        (
            ["ask", "--image", "{image}", "--masks", "{mask}", "{empty}", "--question", "<Prompt1>?"],
            "is empty",
        ),
        (
            ["ask", "--image", "{image}", "--masks", *["{mask}"] * 6, "--question", "<Prompt0>?"],
            "at most 5 regions",
        ),
        (
            ["ask", "--image", "{image}", "--masks", "{mask}", "--question", "Is <Prompt3> red?"],
            "no such region",
        ),
        (["describe", "--image", "{image}"], "say which region"),
        (
            ["describe", "--image", "{image}", "--mask", "{mask}", "--model", "{missing}"],
            "no checkpoint folder",
        ),
    ],
)
def test_bad_input_is_one_clear_line(capsys, tiny_gar_dir, inputs, argv, message):
    argv = [a.format(**inputs) for a in argv]
    if "--model" not in argv:
        argv += ["--model", str(tiny_gar_dir)]
    code, out, err = run_cli(capsys, *argv, *FAST)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("gar-app: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


@pytest.mark.slow  # loads the model in its own process
def test_real_process_exits_nonzero_without_traceback(inputs, tiny_gar_dir):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gar_app.cli",
            "ask",
            "--image",
            str(inputs["image"]),
            "--masks",
            str(inputs["mask"]),
            "--question",
            "What about <Prompt4>?",
            "--model",
            str(tiny_gar_dir),
            *FAST,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "gar-app: error: <Prompt4> is mentioned but there is no such region" in result.stderr


def test_offline_default_model_says_how_to_point_at_a_folder(capsys, inputs, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _out, err = run_cli(capsys, "describe", "--image", inputs["image"], "--mask", inputs["mask"], *FAST)
    assert code == 2
    assert "cannot fetch HaochenWang/GAR-1B" in err and "--model DIR" in err


def test_tiny_gar_command_writes_a_loadable_checkpoint(capsys, tmp_path):
    from gar_app.model import load_gar

    code, out, _err = run_cli(
        capsys, "tiny", "gar", tmp_path / "tiny", "--prompt-numbers", "3", "--max-num-tiles", "4"
    )
    assert code == 0 and out.strip() == str(tmp_path / "tiny")
    files = {p.name for p in (tmp_path / "tiny").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"} <= files
    assert sum(p.stat().st_size for p in (tmp_path / "tiny").iterdir()) < 5_000_000
    gar = load_gar(tmp_path / "tiny", device="cpu")
    assert gar.prompt_numbers == 3
    assert gar.processor.tokenizer.convert_tokens_to_ids(
        "<Prompt2>"
    ) >= gar.processor.tokenizer.convert_tokens_to_ids("<|eot_id|>"), (
        "region tokens come after the base vocabulary"
    )


def test_app_command_line_options():
    result = subprocess.run(
        [sys.executable, "app.py", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0
    for option in ("--model", "--sam", "--device", "--host", "--port", "--share", "--no-model"):
        assert option in result.stdout
