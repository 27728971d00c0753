"""GARBench items: loading and checking them, their masks and prompts, and the resumable run loop.

The run loop only sees a ``predict(item, image, masks) -> str`` callable, so it is tested
without a model and any model (or a fake) plugs in. Its output is a JSON list of records in
annotation order: the item's fields plus ``model_id``, ``image_path`` (the resolved image, for
the judge) and ``model_output``; or, for an item needing more regions than the model has,
plus ``unsupported`` (the reason) and no ``model_output``. Records are matched to items by
``id``, else ``index`` (an item with neither gets ``index`` = its position). The file is
rewritten atomically after every item, so a killed run loses nothing that finished and a
rerun only predicts what is missing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gar_app.errors import InputError
from gar_app.files import write_json_atomically
from gar_app.images import load_image
from gar_app.progress import progress_bar
from gar_app.rle import rle_to_mask
from gar_app.tags import find_tags, tag

Item = dict[str, Any]
Key = tuple[str, Any]
Predict = Callable[[Item, Image.Image, list[np.ndarray]], str]

SPLITS = ("vqa", "simple", "detailed")
_FIELDS = {
    "vqa": ("image", "mask_rles", "question", "choices", "answer", "type"),
    "simple": ("image", "mask_rles", "question", "answer"),
    "detailed": ("image", "mask_rles", "subject_name", "object_name", "predicate_name"),
}
DETAILED_PROMPT = "Describe <Prompt0> in detail, including the relationship with <Prompt1>."


def read_json_list(path: str | os.PathLike, what: str) -> list[Item]:
    """A JSON file holding a list of objects, or an InputError that says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{what} file {path} is not valid JSON: {error}") from None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise InputError(f"{what} file {path} must hold a JSON list of objects")
    return data


def item_key(item: Item) -> Key:
    """Identity used for resuming: ``id``, else ``index`` (load_items adds one when both are missing)."""
    return ("id", item["id"]) if "id" in item else ("index", item["index"])


def show_key(key: Key) -> str:
    return str(key[1])


def _name(item: Item) -> str:
    return str(item.get("id", item.get("index", "?")))


def load_items(path: str | os.PathLike, split: str) -> list[Item]:
    """The items of one GARBench split, checked up front so a long run never dies on bad data."""
    items = read_json_list(path, "annotations")
    seen: set[Key] = set()
    for position, item in enumerate(items):
        if "id" not in item and "index" not in item:
            item["index"] = position
        key = item_key(item)
        name = f"item {show_key(key)} of {Path(path).name}"
        if not isinstance(key[1], (str, int)) or isinstance(key[1], bool):
            raise InputError(f"{name}: {key[0]} must be a string or an integer")
        if key in seen:
            raise InputError(f"{Path(path).name}: two items have {key[0]} {show_key(key)}")
        seen.add(key)
        missing = [name_ for name_ in _FIELDS[split] if name_ not in item]
        if missing:
            raise InputError(f"{name} is not a GARBench-{split} item: missing {', '.join(missing)}")
        if split == "vqa" and not (
            isinstance(item["choices"], list) and all(isinstance(c, str) for c in item["choices"])
        ):
            raise InputError(f"{name}: choices must be a list of strings")
        rles = item["mask_rles"]
        if not isinstance(rles, list) or not rles or not all(isinstance(r, dict) for r in rles):
            raise InputError(f"{name}: mask_rles must be a non-empty list of COCO RLE objects")
        highest = max(find_tags(_text(item)), default=-1)
        if highest >= len(rles):
            raise InputError(f"{name} mentions {tag(highest)} but has only {len(rles)} masks")
    return items


def _text(item: Item) -> str:
    parts = [item.get("question", ""), *item.get("choices", []), item.get("answer", "")]
    return " ".join(part for part in parts if isinstance(part, str))


def regions_needed(item: Item) -> int:
    """How many ``<PromptK>`` tokens the model must have for this item (all its masks are passed)."""
    highest = max(find_tags(_text(item)), default=-1)
    return max(len(item["mask_rles"]), highest + 1)


def resolve_image(item: Item, images_dir: str | os.PathLike) -> Path:
    """``image`` is relative to the benchmark folder (``images/x.png``); accept that folder or the images one."""
    folder = Path(images_dir)
    relative = Path(item["image"])
    for candidate in (folder / relative, folder / relative.name):
        if candidate.is_file():
            return candidate
    raise InputError(f"image {item['image']} of item {_name(item)} not found under {folder}")


def decode_masks(item: Item, size: tuple[int, int]) -> list[np.ndarray]:
    """Boolean HxW masks from the item's COCO RLEs; ``size`` is the image's (width, height)."""
    width, height = size
    return [
        rle_to_mask(rle, f"item {_name(item)}: mask {number}", (height, width))
        for number, rle in enumerate(item["mask_rles"])
    ]


def build_prompt(
    item: Item, split: str, multiple_choice: Callable[[str, list[str]], str] | None = None
) -> str:
    """The paper's prompt: multiple choice (VQA), the item's question (Simple), the fixed Detailed one."""
    if split == "vqa":
        if multiple_choice is None:
            from gar_app.model.processing import multiple_choice_question as multiple_choice
        return multiple_choice(item["question"], list(item["choices"]))
    if split == "simple":
        return item["question"]
    return DETAILED_PROMPT


def model_predictor(gar: Any, split: str, settings: Any, multiple_choice: Callable | None = None) -> Predict:
    """Wrap a loaded GAR (``gar.chat(image, masks).ask(prompt, settings=...)``) as a ``Predict``."""

    def predict(item: Item, image: Image.Image, masks: list[np.ndarray]) -> str:
        session = gar.chat(image, masks)
        return session.ask(build_prompt(item, split, multiple_choice), settings=settings)

    return predict


@dataclass
class RunReport:
    total: int = 0
    predicted: int = 0
    already_done: int = 0
    unsupported: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)


def read_records(out_path: Path) -> list[Item]:
    """Records of an earlier run, or none when the output does not exist yet."""
    return read_json_list(out_path, "output") if out_path.exists() else []


def write_records(out_path: Path, records: Iterable[Item]) -> None:
    """Write the records atomically: a reader or a kill never sees half a file."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomically(out_path, list(records))


def remaining(items: list[Item], previous: list[Item], model_id: str) -> int:
    """Items a run would still have to look at; 0 lets the CLI skip loading the model at all.

    A record made by another model counts as remaining, so the run loop gets to refuse the mix.
    """
    records = {item_key(record): record for record in previous if "id" in record or "index" in record}
    left = 0
    for item in items:
        record = records.get(item_key(item), {})
        same_model = record.get("model_id", model_id) == model_id
        left += not (same_model and ("model_output" in record or "unsupported" in record))
    return left


def _check_previous(previous: list[Item], keys: set[Key], model_id: str | None, out_path: Path) -> None:
    for record in previous:
        if ("id" not in record and "index" not in record) or item_key(record) not in keys:
            raise InputError(
                f"{out_path} holds records that are not in these annotations; choose another --out"
            )
        earlier = record.get("model_id")
        if model_id is not None and earlier is not None and earlier != model_id:
            raise InputError(
                f"{out_path} holds predictions of {earlier}, not {model_id}; choose another --out"
            )


def run_split(
    items: list[Item],
    predict: Predict,
    out_path: str | os.PathLike,
    *,
    images_dir: str | os.PathLike,
    max_regions: int,
    model_id: str | None = None,
    progress: bool = True,
) -> RunReport:
    """Predict every item not yet in ``out_path``; unsupported items are recorded, never dropped."""
    out_path = Path(out_path)
    order = [item_key(item) for item in items]
    previous = read_records(out_path)
    _check_previous(previous, set(order), model_id, out_path)
    records = {item_key(record): record for record in previous}
    extra = {"model_id": model_id} if model_id is not None else {}
    report = RunReport(total=len(items))
    todo: list[tuple[Item, Path]] = []
    changed = not out_path.exists()
    for item in items:
        key, needed = item_key(item), regions_needed(item)
        if "model_output" in records.get(key, {}):
            report.already_done += 1
        elif needed > max_regions:
            reason = f"needs {needed} regions, model supports {max_regions}"
            record = {**item, **extra, "unsupported": reason}
            changed = changed or records.get(key) != record
            records[key] = record
            report.unsupported.append((show_key(key), reason))
        else:
            todo.append((item, resolve_image(item, images_dir)))  # a wrong --images fails before any work

    def save() -> None:
        write_records(out_path, (records[k] for k in order if k in records))

    if changed:
        save()
    for item, image_path in progress_bar(todo, what="GARBench", unit="item", shown=progress):
        image = load_image(image_path)
        output = predict(item, image, decode_masks(item, image.size))
        record = {**item, **extra, "image_path": str(image_path.resolve()), "model_output": str(output)}
        records[item_key(item)] = record
        report.predicted += 1
        save()
    return report
