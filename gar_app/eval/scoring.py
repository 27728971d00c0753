"""Scores of GARBench prediction files, as tables and as JSON.

VQA is exact match, case-insensitive (surrounding whitespace ignored), as in the paper. Items
that ``eval run`` marked ``unsupported`` (more regions than the model has) are not scored
as wrong: totals cover the items that have a ``model_output``, and the unsupported ones are
listed beside them, so a score of an incomplete run cannot pass for a full-benchmark one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gar_app.errors import InputError

Record = dict[str, Any]
SCORE_FIELDS = {
    "vqa": ("answer", "type"),
    "simple": ("image", "mask_rles", "question", "answer"),
    "detailed": ("image", "mask_rles", "subject_name", "object_name", "predicate_name"),
}


def record_name(record: Record, position: int) -> str:
    """How a record is named in reports: its ``id``, else its ``index``, else its position."""
    for key in ("id", "index"):
        if key in record:
            return str(record[key])
    return f"#{position}"


@dataclass
class Tally:
    correct: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float:
        return round(self.correct / self.total * 100, 1) if self.total else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {"correct": self.correct, "total": self.total, "accuracy": self.accuracy}


@dataclass
class Scorable:
    records: list[tuple[str, Record]] = field(default_factory=list)  # (name, record) with a model_output
    unsupported: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)


def scorable(records: list[Record], split: str) -> Scorable:
    """Separate predictions from unsupported items; a record with neither is a broken file."""
    result = Scorable()
    for position, record in enumerate(records):
        name = record_name(record, position)
        if "model_output" not in record:
            if "unsupported" not in record:
                raise InputError(
                    f"record {name} has neither model_output nor unsupported; is this a predictions file?"
                )
            result.unsupported.append((name, str(record["unsupported"])))
            continue
        missing = [key for key in SCORE_FIELDS[split] if key not in record]
        if missing:
            raise InputError(
                f"record {name} cannot be scored as GARBench-{split}: missing {', '.join(missing)}"
            )
        result.records.append((name, record))
    return result


@dataclass
class VqaScore:
    overall: Tally
    by_type: dict[str, Tally]
    unsupported: list[tuple[str, str]]


def is_exact_match(output: Any, answer: Any) -> bool:
    return str(output).strip().lower() == str(answer).strip().lower()


def score_vqa(records: list[Record]) -> VqaScore:
    found = scorable(records, "vqa")
    overall, by_type = Tally(), {}
    for _, record in found.records:
        hit = is_exact_match(record["model_output"], record["answer"])
        for tally in (overall, by_type.setdefault(str(record["type"]), Tally())):
            tally.correct += hit
            tally.total += 1
    return VqaScore(overall, dict(sorted(by_type.items())), found.unsupported)


def vqa_json(score: VqaScore) -> dict[str, Any]:
    """The documented shape; ``unsupported`` is added only when some items were not scored."""
    result: dict[str, Any] = {
        "overall": score.overall.as_dict(),
        "by_type": {name: tally.as_dict() for name, tally in score.by_type.items()},
    }
    if score.unsupported:
        result["unsupported"] = [{"item": name, "reason": reason} for name, reason in score.unsupported]
    return result


def _table(rows: list[tuple[str, Tally]]) -> list[str]:
    width = max(len("type"), *(len(name) for name, _ in rows))
    lines = [f"{'type':<{width}}  {'correct':>7}  {'total':>5}  {'accuracy':>8}"]
    lines += [f"{name:<{width}}  {t.correct:>7}  {t.total:>5}  {t.accuracy:>8.1f}" for name, t in rows]
    return lines


def unsupported_lines(unsupported: list[tuple[str, str]]) -> list[str]:
    if not unsupported:
        return []
    head = f"unsupported: {len(unsupported)} items not scored (not counted in the totals above):"
    return [head, *(f"  {name}: {reason}" for name, reason in unsupported)]


def format_vqa(score: VqaScore) -> str:
    rows = [*score.by_type.items(), ("overall", score.overall)]
    return "\n".join(_table(rows) + unsupported_lines(score.unsupported))


@dataclass
class CaptionScore:
    split: str
    judge_model: str
    verdicts: list[tuple[str, bool]]
    judge_errors: list[tuple[str, str]]
    unsupported: list[tuple[str, str]]

    @property
    def overall(self) -> Tally:
        return Tally(sum(verdict for _, verdict in self.verdicts), len(self.verdicts))


def caption_json(score: CaptionScore) -> dict[str, Any]:
    result: dict[str, Any] = {
        "overall": score.overall.as_dict(),
        "judge_model": score.judge_model,
        "judge_errors": [{"item": name, "error": error} for name, error in score.judge_errors],
        "verdicts": {name: verdict for name, verdict in score.verdicts},
    }
    if score.unsupported:
        result["unsupported"] = [{"item": name, "reason": reason} for name, reason in score.unsupported]
    return result


def format_caption(score: CaptionScore) -> str:
    lines = _table([(f"{score.split} (judge {score.judge_model})", score.overall)])
    lines.append(f"judge errors: {len(score.judge_errors)} (no verdict, not counted; rerun to retry them)")
    lines += [f"  {name}: {error}" for name, error in score.judge_errors]
    return "\n".join(lines + unsupported_lines(score.unsupported))
