"""Reading and writing the project's JSON documents: checks that name the JSON path of what
is wrong (``regions[2].mask``), integers bounded before Python converts them, and the
indented writer both document kinds use."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from gar_app.errors import InputError

MAX_DIGITS = 30  # longest integer an import may hold (pixel counts, indices, seeds)
COLOUR = re.compile(r"#[0-9a-fA-F]{6}")  # "#rrggbb"
Point = tuple[float, float]


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def bad(problem: str) -> InputError:
    return InputError(f"not a valid GAR App export: {problem}")


KINDS: dict[str, tuple[str, Any]] = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "int": ("an integer", is_int),
    "number": ("a number", lambda v: (is_int(v) or isinstance(v, float)) and math.isfinite(v)),
    "list": ("a list", lambda v: isinstance(v, list)),
    "dict": ("an object", lambda v: isinstance(v, dict)),
}


def get(obj: dict, key: str, kind: str, where: str, optional: bool = False) -> Any:
    if key not in obj:
        raise bad(f"{where} has no '{key}'")
    value = obj[key]
    if value is None and optional:
        return None
    what, check = KINDS[kind]
    if not check(value):
        raise bad(
            f"{where}.{key} must be {what}{' or null' if optional else ''}, not {json.dumps(value)[:40]}"
        )
    return value


def point_list(values: list, where: str, size: int | None = None) -> list[Point]:
    for i, p in enumerate(values):
        if not (isinstance(p, list) and len(p) == (size or 2) and all(KINDS["number"][1](v) for v in p)):
            raise bad(f"{where}[{i}] must be a list of {size or 2} numbers")
    return [tuple(p) for p in values]  # type: ignore[misc]


def dump(value: Any, level: int = 0) -> str:
    """Indented JSON that keeps lists without objects (points, boxes, tags) on one line."""
    pad, end = "  " * (level + 1), "  " * level
    if isinstance(value, dict) and value:
        items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {dump(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{end}}}"
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return "[\n" + ",\n".join(pad + dump(v, level + 1) for v in value) + f"\n{end}]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def parse_int(digits: str) -> int:
    """No number in the format needs more than ``MAX_DIGITS`` digits; longer ones are refused
    before Python converts them (slow, and beyond 4300 digits an unexplained ValueError)."""
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise bad(
            f"it holds a number with {len(digits.lstrip('-'))} digits (at most {MAX_DIGITS} make sense)"
        )
    return int(digits)


def parse_json(text: str | bytes) -> Any:
    """An export file's JSON (image or video form), or one ``InputError`` sentence."""
    try:
        return json.loads(text, parse_int=parse_int)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"not a valid GAR App export: the file is not JSON ({error})") from None
    except RecursionError:
        raise InputError("not a valid GAR App export: the JSON is nested too deeply") from None


def as_number(value: Any) -> int | float:
    """Plain int/float (numpy scalars from the UI would not serialise)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"expected a number, got {value!r}")
    return int(value) if isinstance(value, int | np.integer) else float(value)


def as_point(value: Any) -> Point:
    x, y = value
    return (as_number(x), as_number(y))
