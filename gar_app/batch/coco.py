"""COCO instances files: images, annotations, and their region masks.

Work items are plain JSON-able dicts, so the same item runs in this process or travels to a
Ray worker unchanged. A caption item is one annotation; a question item is one image with
all its annotations, in file order, as ``<Prompt0>``, ``<Prompt1>``, ...
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from gar_app.errors import InputError
from gar_app.rle import rle_to_mask
from gar_app.tags import check_text, tag

REGIONS_PLACEHOLDER = "{regions}"


def read_coco(path: str | os.PathLike) -> dict[str, Any]:
    """The instances file as a dict, checked for what batch captioning relies on."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"COCO file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read {path} as COCO JSON: {error}") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        raise InputError(f"{path} is not a COCO instances file (it needs 'images' and 'annotations' lists)")
    images: dict[int, dict] = {}
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not all(k in image for k in ("id", "file_name", "width", "height")):
            raise InputError(f"{path}: images[{i}] needs id, file_name, width and height")
        if image["id"] in images:
            raise InputError(f"{path}: image id {image['id']} appears twice")
        images[image["id"]] = image
    seen: set = set()
    for i, annotation in enumerate(data["annotations"]):
        if not isinstance(annotation, dict) or not all(
            k in annotation for k in ("id", "image_id", "segmentation")
        ):
            raise InputError(f"{path}: annotations[{i}] needs id, image_id and segmentation")
        if annotation["id"] in seen:
            raise InputError(f"{path}: annotation id {annotation['id']} appears twice")
        seen.add(annotation["id"])
        if annotation["image_id"] not in images:
            raise InputError(
                f"{path}: annotation {annotation['id']} refers to image {annotation['image_id']}, "
                "which is not in 'images'"
            )
    return data


def segmentation_mask(
    segmentation: Any, height: int, width: int, where: str = "the segmentation"
) -> np.ndarray:
    """A boolean H x W mask from a COCO segmentation: RLE (compressed or not) or polygons."""
    if isinstance(segmentation, dict):
        return rle_to_mask(segmentation, where, (height, width))
    valid = (
        isinstance(segmentation, list)
        and segmentation
        and all(
            isinstance(p, list)
            and len(p) >= 6
            and len(p) % 2 == 0
            and all(isinstance(v, int | float) for v in p)
            for p in segmentation
        )
    )
    if not valid:
        raise InputError("a segmentation is RLE {size, counts} or a list of polygons [x1, y1, x2, y2, ...]")
    from pycocotools import mask as mask_utils

    rle = mask_utils.merge(
        mask_utils.frPyObjects([[float(v) for v in p] for p in segmentation], height, width)
    )
    return np.ascontiguousarray(mask_utils.decode(rle).astype(bool))


def caption_items(data: dict, images_dir: str | os.PathLike) -> list[dict]:
    """One item per annotation, in file order."""
    images = {image["id"]: image for image in data["images"]}
    folder = Path(images_dir).resolve()
    return [
        {
            "key": json.dumps(annotation["id"]),
            "annotation_id": annotation["id"],
            "image_id": annotation["image_id"],
            "path": str(folder / images[annotation["image_id"]]["file_name"]),
            "size": [images[annotation["image_id"]]["height"], images[annotation["image_id"]]["width"]],
            "segmentations": [annotation["segmentation"]],
        }
        for annotation in data["annotations"]
    ]


def regions_text(count: int) -> str:
    """``<Prompt0>``, ``<Prompt0> and <Prompt1>``, ``<Prompt0>, <Prompt1> and <Prompt2>``..."""
    tags = [tag(k) for k in range(count)]
    return tags[0] if count == 1 else ", ".join(tags[:-1]) + " and " + tags[-1]


def check_question(question: str) -> None:
    if REGIONS_PLACEHOLDER not in question and not check_text(question):
        raise InputError(
            f"--question mentions no region: write {REGIONS_PLACEHOLDER} (all of an image's regions) "
            "or tags like <Prompt0>"
        )


def question_items(data: dict, images_dir: str | os.PathLike, question: str) -> list[dict]:
    """One item per image that has annotations; its regions are ``<Prompt0>``... in file order."""
    check_question(question)
    folder = Path(images_dir).resolve()
    by_image: dict[Any, list[dict]] = defaultdict(list)
    for annotation in data["annotations"]:
        by_image[annotation["image_id"]].append(annotation)
    items = []
    for image in data["images"]:
        annotations = by_image.get(image["id"])
        if not annotations:
            continue
        items.append(
            {
                "key": json.dumps([image["id"], question]),
                "image_id": image["id"],
                "question": question,
                "asked": question.replace(REGIONS_PLACEHOLDER, regions_text(len(annotations))),
                "annotation_ids": [a["id"] for a in annotations],
                "path": str(folder / image["file_name"]),
                "size": [image["height"], image["width"]],
                "segmentations": [a["segmentation"] for a in annotations],
            }
        )
    return items


def result_key(record: dict) -> str:
    """What identifies a finished item in the output (its annotation, or its image and
    question), spelled like the item's ``key``."""
    if "annotation_id" in record and "caption" in record:
        return json.dumps(record["annotation_id"])
    if "question" in record and "image_id" in record:
        return json.dumps([record["image_id"], record["question"]])
    raise InputError("a line of the output is neither a caption nor an answer record")
