"""Scores of GARBench prediction files, as tables and as JSON.

VQA is exact match, case-insensitive (surrounding whitespace ignored), as in the paper. Items
that ``eval run`` marked ``unsupported`` (more regions than the model has) are not scored
as wrong: totals cover the items that have a ``model_output``, and the unsupported ones are
listed beside them, so a score of an incomplete run cannot pass for a full-benchmark one.

A record is one item, named by ``id`` (else ``index``): a record repeated with the same
prediction and reference (say, two runs' files concatenated) is counted once and listed as
a duplicate; the same item with a different prediction or reference is refused, since no
rule could say which one to score. A file with nothing to score is an error, not 0/0.
"""

from __future__ import annotations

import json
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
    duplicates: list[str] = field(default_factory=list)  # names of repeated records, counted once


def _identity(record: Record) -> str | None:
    for key in ("id", "index"):
        if key in record:
            return json.dumps([key, record[key]], sort_keys=True)
    return None


def _scored_part(record: Record, split: str) -> list:
    return [record.get(key) for key in ("model_output", "unsupported", *SCORE_FIELDS[split])]


def scorable(records: list[Record], split: str) -> Scorable:
    """Separate predictions from unsupported items and repeats; a record with neither a
    prediction nor a reason, a conflicting repeat, or nothing to score is a broken file."""
    result = Scorable()
    seen: dict[str, Record] = {}
    for position, record in enumerate(records):
        name = record_name(record, position)
        identity = _identity(record)
        if identity is not None and identity in seen:
            if _scored_part(seen[identity], split) != _scored_part(record, split):
                raise InputError(
                    f"item {name} appears twice with different predictions or references; "
                    "keep one record per item"
                )
            result.duplicates.append(name)
            continue
        if identity is not None:
            seen[identity] = record
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
    if not result.records:
        unsupported = f" ({len(result.unsupported)} unsupported)" if result.unsupported else ""
        raise InputError(f"nothing to score: {len(records)} records and no model_output{unsupported}")
    return result


@dataclass
class VqaScore:
    overall: Tally
    by_type: dict[str, Tally]
    unsupported: list[tuple[str, str]]
    duplicates: list[str] = field(default_factory=list)


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
    return VqaScore(overall, dict(sorted(by_type.items())), found.unsupported, found.duplicates)


def vqa_json(score: VqaScore) -> dict[str, Any]:
    """The documented shape; ``unsupported`` and ``duplicates`` are added only when there are some."""
    result: dict[str, Any] = {
        "overall": score.overall.as_dict(),
        "by_type": {name: tally.as_dict() for name, tally in score.by_type.items()},
    }
    return _extras(result, score.unsupported, score.duplicates)


def _extras(
    result: dict[str, Any], unsupported: list[tuple[str, str]], duplicates: list[str]
) -> dict[str, Any]:
    if unsupported:
        result["unsupported"] = [{"item": name, "reason": reason} for name, reason in unsupported]
    if duplicates:
        result["duplicates"] = list(duplicates)
    return result


def _table(rows: list[tuple[str, Tally]]) -> list[str]:
    width = max(len("type"), *(len(name) for name, _ in rows))
    lines = [f"{'type':<{width}}  {'correct':>7}  {'total':>5}  {'accuracy':>8}"]
    lines += [f"{name:<{width}}  {t.correct:>7}  {t.total:>5}  {t.accuracy:>8.1f}" for name, t in rows]
    return lines


def footnotes(unsupported: list[tuple[str, str]], duplicates: list[str]) -> list[str]:
    """What the totals leave out, said under the table."""
    lines = []
    if unsupported:
        lines.append(f"unsupported: {len(unsupported)} items not scored (not counted in the totals above):")
        lines += [f"  {name}: {reason}" for name, reason in unsupported]
    if duplicates:
        lines.append(
            f"duplicates: {len(duplicates)} records repeat an earlier one and were counted once: "
            + ", ".join(duplicates)
        )
    return lines


def format_vqa(score: VqaScore) -> str:
    rows = [*score.by_type.items(), ("overall", score.overall)]
    return "\n".join(_table(rows) + footnotes(score.unsupported, score.duplicates))


@dataclass
class CaptionScore:
    split: str
    judge_model: str
    verdicts: list[tuple[str, bool]]
    judge_errors: list[tuple[str, str]]
    unsupported: list[tuple[str, str]]
    duplicates: list[str] = field(default_factory=list)

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
    return _extras(result, score.unsupported, score.duplicates)


def format_caption(score: CaptionScore) -> str:
    lines = _table([(f"{score.split} (judge {score.judge_model})", score.overall)])
    lines.append(f"judge errors: {len(score.judge_errors)} (no verdict, not counted; rerun to retry them)")
    lines += [f"  {name}: {error}" for name, error in score.judge_errors]
    return "\n".join(lines + footnotes(score.unsupported, score.duplicates))
