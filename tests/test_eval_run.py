"""``gar-app eval run``: items, masks, prompts and the resumable run loop, with a fake predictor.

The loop is tested with plain functions in place of GAR; one test runs the real tiny
checkpoint end to end. The items are the project's own GARBench-form sample
(``garbench_sample.py``); one test checks it keeps the form of the shared sample.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import eval_cli, shared_data
from garbench_sample import own_garbench

from gar_app.errors import InputError
from gar_app.eval.garbench import (
    DETAILED_PROMPT,
    build_prompt,
    decode_masks,
    load_items,
    model_predictor,
    regions_needed,
    run_split,
)

# pycocotools decode calls np.array(copy=False), deprecated under numpy 2; not ours to fix

ROOT = Path(__file__).resolve().parents[1]
UNSUPPORTED_AT_5 = {"vqa_340": 7, "vqa_375": 6, "vqa_408": 9}


def sample(split: str = "vqa") -> Path:
    return own_garbench() / f"{split}_sample.json"


def form(item: dict) -> tuple:
    """What the tests rely on: id, fields, question type, number of regions and of choices."""
    return item["id"], sorted(item), item.get("type"), len(item["mask_rles"]), len(item.get("choices", ()))


@pytest.mark.parametrize("split", ["vqa", "simple", "detailed"])
def test_the_own_sample_has_the_shared_samples_form(split):
    shared = json.loads(shared_data("garbench", f"{split}_sample.json").read_text())
    ours = json.loads(sample(split).read_text())
    assert [form(item) for item in ours] == [form(item) for item in shared]
    assert load_items(sample(split), split) and load_items(
        shared_data("garbench", f"{split}_sample.json"), split
    )


class Recorder:
    """A fake predictor: answers the item's answer (or 'A'), remembers what it saw, can fail at call N."""

    def __init__(self, fail_at: int | None = None, error: BaseException | None = None):
        self.calls: list[str] = []
        self.fail_at, self.error = fail_at, error

    def __call__(self, item, image, masks):
        if len(self.calls) + 1 == self.fail_at:
            raise self.error
        assert len(masks) == len(item["mask_rles"])
        assert all(m.dtype == bool and m.shape == (image.height, image.width) and m.any() for m in masks)
        self.calls.append(item["id"])
        return item.get("answer", "A")


def run(out: Path, predict, max_regions: int = 5):
    items = load_items(sample(), "vqa")
    return run_split(
        items,
        predict,
        out,
        images_dir=own_garbench(),
        max_regions=max_regions,
        model_id="fake",
        progress=False,
    )


def test_whole_sample_every_item_predicted_or_listed_unsupported(tmp_path):
    out = tmp_path / "preds.json"
    predict = Recorder()
    report = run(out, predict)
    records = json.loads(out.read_text())
    assert [r["id"] for r in records] == [item["id"] for item in json.loads(sample().read_text())]
    assert report.total == 16 and report.predicted == 13 and report.already_done == 0
    assert dict(report.unsupported) == {
        k: f"needs {n} regions, model supports 5" for k, n in UNSUPPORTED_AT_5.items()
    }
    for r in records:
        assert ("model_output" in r) != ("unsupported" in r)
        assert r["model_id"] == "fake"
        assert ("unsupported" in r) == (r["id"] in UNSUPPORTED_AT_5)
    assert not list(tmp_path.glob(".*tmp")), "temporary files left behind"


def test_second_run_does_no_work(tmp_path):
    out = tmp_path / "preds.json"
    run(out, Recorder())
    before = out.stat().st_mtime_ns, out.read_bytes()
    report = run(out, Recorder(fail_at=1, error=AssertionError("the model was called again")))
    assert (report.predicted, report.already_done, len(report.unsupported)) == (0, 13, 3)
    assert (out.stat().st_mtime_ns, out.read_bytes()) == before


def test_interrupted_run_keeps_finished_items_and_resumes(tmp_path):
    out = tmp_path / "preds.json"
    with pytest.raises(KeyboardInterrupt):
        run(out, Recorder(fail_at=5, error=KeyboardInterrupt()))
    saved = [r["id"] for r in json.loads(out.read_text()) if "model_output" in r]
    assert len(saved) == 4
    again = Recorder()
    report = run(out, again)
    assert report.already_done == 4 and report.predicted == 9 and not set(again.calls) & set(saved)
    assert sum("model_output" in r for r in json.loads(out.read_text())) == 13


KILLER = """
import os, signal, sys
from gar_app.eval.garbench import load_items, run_split
calls = []
def predict(item, image, masks):
    calls.append(item["id"])
    if len(calls) == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
    return "A"
run_split(load_items(sys.argv[1], "vqa"), predict, sys.argv[2], images_dir=os.path.dirname(sys.argv[1]),
          max_regions=5, progress=False)
"""


def test_killed_process_leaves_a_valid_file_and_resumes(tmp_path):
    out = tmp_path / "preds.json"
    done = subprocess.run([sys.executable, "-c", KILLER, str(sample()), str(out), "7"], cwd=ROOT, timeout=60)
    assert done.returncode == -9
    finished = [r["id"] for r in json.loads(out.read_text()) if "model_output" in r]
    assert len(finished) == 6
    again = Recorder()
    report = run(out, again)
    assert report.already_done == 6 and report.predicted == 7 and not set(again.calls) & set(finished)


def test_a_bigger_model_runs_every_item(tmp_path):
    report = run(tmp_path / "preds.json", Recorder(), max_regions=9)
    assert report.predicted == 16 and not report.unsupported


def test_out_file_from_other_annotations_or_model_is_refused(tmp_path):
    out = tmp_path / "preds.json"
    out.write_text(json.dumps([{"id": "elsewhere", "model_output": "A"}]))
    with pytest.raises(InputError, match="not in these annotations"):
        run(out, Recorder())
    out.write_text(json.dumps([{"id": "vqa_7", "model_output": "A", "model_id": "other"}]))
    with pytest.raises(InputError, match="predictions of other"):
        run(out, Recorder())
    out.write_text("[{")
    with pytest.raises(InputError, match="not valid JSON"):
        run(out, Recorder())


def test_resume_key_falls_back_to_index_then_position(tmp_path):
    items = json.loads(sample().read_text())[:3]
    for item in items:
        del item["id"]
    items[1]["index"] = 41
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(items))
    loaded = load_items(path, "vqa")
    assert [item["index"] for item in loaded] == [0, 41, 2]
    items.append(dict(items[0], index=41))
    path.write_text(json.dumps(items))
    with pytest.raises(InputError, match="two items have index 41"):
        load_items(path, "vqa")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda item: item.pop("answer"), "missing answer"),
        (lambda item: item.update(mask_rles=[]), "non-empty list"),
        (lambda item: item.update(question=item["question"] + " <Prompt7>"), "mentions <Prompt7>"),
    ],
)
def test_malformed_items_are_refused_before_any_work(tmp_path, change, message):
    items = json.loads(sample().read_text())
    change(items[2])
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(items))
    with pytest.raises(InputError, match=message):
        load_items(path, "vqa")


def test_masks_decode_to_image_sized_bools_with_str_or_bytes_counts():
    item = load_items(sample(), "vqa")[0]
    height, width = item["mask_rles"][0]["size"]
    masks = decode_masks(item, (width, height))
    as_bytes = dict(item, mask_rles=[dict(r, counts=r["counts"].encode()) for r in item["mask_rles"]])
    assert all(
        np.array_equal(a, b) for a, b in zip(masks, decode_masks(as_bytes, (width, height)), strict=True)
    )
    assert len(masks) == 3 and all(m.dtype == bool and m.shape == (height, width) and m.any() for m in masks)
    with pytest.raises(InputError, match="mask 0 is"):
        decode_masks(item, (width + 1, height))


def test_prompts_follow_the_paper():
    vqa = load_items(sample(), "vqa")[0]
    joined = build_prompt(vqa, "vqa", multiple_choice=lambda q, c: q + "|" + "|".join(c))
    assert joined == vqa["question"] + "|" + "|".join(vqa["choices"])
    simple = load_items(sample("simple"), "simple")[0]
    assert build_prompt(simple, "simple") == simple["question"]
    detailed = load_items(sample("detailed"), "detailed")[0]
    assert build_prompt(detailed, "detailed") == DETAILED_PROMPT
    assert DETAILED_PROMPT == "Describe <Prompt0> in detail, including the relationship with <Prompt1>."
    assert regions_needed(detailed) == 2


def test_vqa_prompt_uses_the_models_multiple_choice_wording():
    try:
        from gar_app.model.processing import multiple_choice_question  # noqa: F401
    except ImportError as error:
        pytest.skip(f"gar_app.model.processing cannot be imported yet: {error}")
    item = {"question": "Which is red?", "choices": ["A. <Prompt0>", "B. <Prompt1>"]}
    assert build_prompt(item, "vqa") == (
        "Question: Which is red?\nOptions:\nA. <Prompt0>\nB. <Prompt1>\nAnswer with the correct option's letter directly."
    )


def test_model_predictor_asks_one_fresh_session_per_item():
    asked = []

    class Session:
        def ask(self, text, settings=None):
            asked.append((text, settings))
            return "B"

    gar = types.SimpleNamespace(chat=lambda image, masks: Session())
    predict = model_predictor(gar, "detailed", settings="greedy")
    assert predict({"subject_name": "x"}, None, []) == "B"
    assert asked == [(DETAILED_PROMPT, "greedy")]


def fake_model_module(calls: list[str]) -> types.ModuleType:
    """Stands in for ``gar_app.model`` so the CLI wiring is tested without weights."""

    class Gar:
        prompt_numbers = 5

        def __init__(self, model_id: str):
            self.model_id = model_id

        def chat(self, image, masks):
            return types.SimpleNamespace(ask=lambda text, settings=None: calls.append(text) or "A")

    module = types.ModuleType("gar_app.model")
    module.DEFAULT_MODEL = "HaochenWang/GAR-1B"  # read by the CLI's options when first imported
    module.GenerationSettings = lambda **limits: "greedy"
    module.load_gar = lambda model, device=None, dtype=None: calls.append(f"load {model}") or Gar(model)
    return module


def test_cli_run_then_rerun_without_loading_the_model(tmp_path, monkeypatch, capsys):
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "gar_app.model", fake_model_module(calls))
    out = tmp_path / "p.json"
    argv = ["eval", "run", "--split", "simple", "--annotations", str(sample("simple")), "--out", str(out)]
    argv += ["--model", "fake/gar", "--no-progress"]
    assert eval_cli(argv) == 0
    questions = [item["question"] for item in json.loads(sample("simple").read_text())]
    assert calls == ["load fake/gar", *questions]
    assert "4 predicted now, 0 already in" in capsys.readouterr().out
    records = json.loads(out.read_text())
    assert all(Path(r["image_path"]).is_file() and r["model_id"] == "fake/gar" for r in records)
    calls.clear()
    assert eval_cli(argv) == 0
    assert calls == [] and "nothing to do" in capsys.readouterr().out
    with pytest.raises(InputError, match="holds predictions of fake/gar, not other/gar"):
        eval_cli([*argv, "--model", "other/gar"])
    assert calls == ["load other/gar"] and json.loads(out.read_text()) == records


def test_cli_refuses_to_overwrite_the_annotations(tmp_path):
    with pytest.raises(InputError, match="must not be the annotations"):
        eval_cli(["eval", "run", "--split", "vqa", "--annotations", str(sample()), "--out", str(sample())])


@pytest.mark.slow
def test_tiny_checkpoint_runs_the_whole_vqa_sample(tmp_path, capsys, request):
    from gar_app.cli import main

    checkpoint = request.getfixturevalue("tiny_gar_dir")  # conftest: write_tiny_gar(..., max_num_tiles=4)
    supports = json.loads((Path(checkpoint) / "config.json").read_text())["prompt_numbers"]
    out = tmp_path / "preds.json"
    argv = ["eval", "run", "--split", "vqa", "--no-progress", "--device", "cpu", "--max-new-tokens", "4"]
    argv += ["--model", str(checkpoint), "--annotations", str(sample())]
    argv += ["--images", str(own_garbench()), "--out", str(out)]
    assert main(argv) == 0
    records = json.loads(out.read_text())
    assert [r["id"] for r in records] == [item["id"] for item in json.loads(sample().read_text())]
    for r in records:
        needed = len(r["mask_rles"])
        if needed > supports:
            assert (
                r["unsupported"] == f"needs {needed} regions, model supports {supports}"
                and "model_output" not in r
            )
        else:
            assert isinstance(r["model_output"], str) and "unsupported" not in r
    assert f"{sum('unsupported' in r for r in records)} unsupported" in capsys.readouterr().out
    before = out.read_bytes()
    assert main(argv) == 0
    assert "nothing to do" in capsys.readouterr().out and out.read_bytes() == before
