"""``gar-app eval score vqa``: the paper's numbers from the published predictions, and the edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import eval_cli, shared_data

from gar_app.errors import GarAppError, InputError
from gar_app.eval.scoring import format_vqa, score_vqa, vqa_json

GARBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "garbench"
GAR_1B_BY_TYPE = {
    "color": (34, 69),
    "texture/pattern": (17, 29),
    "mirror": (36, 61),
    "ordering": (13, 64),
    "material": (14, 36),
    "shape": (32, 64),
    "relation": (57, 101),
}


def official(name: str) -> Path:
    return shared_data("garbench", name)


def test_gar_1b_official_predictions_give_the_paper_table(capsys):
    assert eval_cli(["eval", "score", "vqa", str(official("official_gar_1b_vqa.json")), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["overall"] == {"correct": 203, "total": 424, "accuracy": 47.9}
    assert {name: (t["correct"], t["total"]) for name, t in result["by_type"].items()} == GAR_1B_BY_TYPE
    assert list(result["by_type"]) == sorted(GAR_1B_BY_TYPE)
    assert set(result) == {"overall", "by_type"}


def test_gar_8b_official_predictions_give_the_paper_number(capsys):
    assert eval_cli(["eval", "score", "vqa", str(official("official_gar_8b_vqa.json")), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"] == {"correct": 245, "total": 424, "accuracy": 57.8}


def test_table_has_a_row_per_type_sorted_then_overall(capsys):
    eval_cli(["eval", "score", "vqa", str(official("official_gar_1b_vqa.json"))])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["type", "correct", "total", "accuracy"]
    assert [line.split()[0] for line in lines[1:]] == [*sorted(GAR_1B_BY_TYPE), "overall"]
    assert lines[-1].split() == ["overall", "203", "424", "47.9"]
    assert lines[1].split() == ["color", "34", "69", "49.3"]


def record(output: str, answer: str, kind: str = "color", **extra) -> dict:
    return {"model_output": output, "answer": answer, "type": kind, **extra}


def test_exact_match_is_case_insensitive_and_accuracy_has_one_decimal():
    score = score_vqa([record("a", "A"), record(" B\n", "b"), record("A.", "A"), record("C", "A", "shape")])
    assert score.overall.as_dict() == {"correct": 2, "total": 4, "accuracy": 50.0}
    assert score.by_type["color"].as_dict() == {"correct": 2, "total": 3, "accuracy": 66.7}
    assert score_vqa([record("A", "A"), record("B", "A"), record("B", "A")]).overall.accuracy == 33.3


def test_unsupported_items_are_reported_apart_not_counted_wrong(capsys):
    records = [
        record("A", "A", id="q1"),
        {"id": "q2", "answer": "B", "type": "relation", "unsupported": "needs 9 regions, model supports 5"},
    ]
    score = score_vqa(records)
    assert score.overall.as_dict() == {"correct": 1, "total": 1, "accuracy": 100.0}
    assert "relation" not in score.by_type
    assert vqa_json(score)["unsupported"] == [{"item": "q2", "reason": "needs 9 regions, model supports 5"}]
    text = format_vqa(score)
    assert "unsupported: 1 items not scored" in text and "q2: needs 9 regions, model supports 5" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("{not json", "not valid JSON"),
        ('{"a": 1}', "JSON list of objects"),
        ('[{"answer": "A", "type": "color"}]', "neither model_output nor unsupported"),
        ('[{"model_output": "A", "type": "color"}]', "missing answer"),
    ],
)
def test_bad_prediction_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "preds.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message):
        eval_cli(["eval", "score", "vqa", str(path)])


def test_caption_scoring_without_a_judge_is_a_user_error(tmp_path):
    path = tmp_path / "preds.json"
    path.write_text("[]")
    with pytest.raises(GarAppError, match="--judge-url and --judge-model"):
        eval_cli(["eval", "score", "simple", str(path)])


def test_gar_app_main_prints_one_error_line(tmp_path, capsys):
    from gar_app.cli import main

    assert main(["eval", "score", "vqa", str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def _write(tmp_path, records) -> str:
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(records))
    return str(path)


def test_a_repeated_record_is_counted_once_and_listed(tmp_path, capsys):
    q1, q2 = record("A", "A", id="q1"), record("B", "A", id="q2", image_path="/run1/x.png")
    again = {**q2, "image_path": "/run2/x.png"}  # the same item from a second run's file: same prediction
    path = _write(tmp_path, [q1, q2, again, q1])
    assert eval_cli(["eval", "score", "vqa", path, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["overall"] == {"correct": 1, "total": 2, "accuracy": 50.0}
    assert result["duplicates"] == ["q2", "q1"]
    assert eval_cli(["eval", "score", "vqa", path]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[-2].split() == ["overall", "1", "2", "50.0"]
    assert (
        table.splitlines()[-1] == "duplicates: 2 records repeat an earlier one and were counted once: q2, q1"
    )


def test_records_named_by_index_are_deduplicated_too():
    score = score_vqa([record("A", "A", index=0), record("A", "A", index=0), record("A", "A", index=1)])
    assert score.overall.total == 2 and score.duplicates == ["0"]
    assert score_vqa([record("A", "A", id=0), record("A", "A", index=0)]).overall.total == 2, (
        "id 0 is not index 0"
    )


@pytest.mark.parametrize("change", [{"model_output": "B"}, {"answer": "B"}, {"type": "shape"}])
def test_the_same_item_with_another_prediction_is_refused(tmp_path, change):
    first = record("A", "A", id="q1")
    with pytest.raises(InputError, match="item q1 appears twice with different predictions or references"):
        eval_cli(["eval", "score", "vqa", _write(tmp_path, [first, {**first, **change}])])


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "nothing to score: 0 records and no model_output"),
        (
            [{"id": "q", "answer": "A", "type": "color", "unsupported": "needs 9 regions"}],
            r"nothing to score: 1 records and no model_output \(1 unsupported\)",
        ),
    ],
)
def test_nothing_to_score_is_an_error_not_zero_of_zero(tmp_path, capsys, records, message):
    from gar_app.cli import main

    path = _write(tmp_path, records)
    with pytest.raises(InputError, match=message):
        eval_cli(["eval", "score", "vqa", path])
    assert main(["eval", "score", "vqa", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gar-app: error: nothing to score") and err.count("\n") == 1
