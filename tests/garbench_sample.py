"""A small GARBench sample of the project's own, so the eval, CLI and model tests need no ../shared.

It has the form of the shared sample (``../shared/data/garbench``: the same splits, item ids,
question types and region counts, 1 to 9 regions) but its own content: the project's example
photos at the benchmark's image sizes, ellipse masks laid out on a grid, and questions written
here. Tests that check the real benchmark (the published scores) still read ../shared;
``test_eval_run.py`` checks that this sample keeps the shared one's form.
"""

from __future__ import annotations

import atexit
import functools
import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
from conftest import EXAMPLES, ellipse
from PIL import Image

from gar_app.images import load_image
from gar_app.rle import mask_to_rle

# (id, question type, regions, answer, image size W x H): one of every type, 1 to 9 regions
VQA = [
    ("vqa_7", "mirror", 3, "C", (620, 460)),
    ("vqa_16", "mirror", 4, "C", (730, 530)),
    ("vqa_23", "mirror", 2, "B", (620, 460)),
    ("vqa_44", "mirror", 1, "B", (640, 480)),
    ("vqa_241", "color", 1, "A", (1024, 768)),
    ("vqa_242", "texture/pattern", 1, "C", (1024, 768)),
    ("vqa_246", "material", 1, "C", (1024, 768)),
    ("vqa_247", "shape", 1, "B", (1024, 768)),
    ("vqa_299", "ordering", 1, "C", (384, 384)),
    ("vqa_326", "relation", 5, "A", (640, 480)),
    ("vqa_340", "relation", 7, "C", (640, 480)),
    ("vqa_346", "relation", 3, "B", (600, 400)),
    ("vqa_356", "relation", 4, "A", (500, 333)),
    ("vqa_371", "relation", 2, "B", (500, 332)),
    ("vqa_375", "relation", 6, "A", (640, 480)),
    ("vqa_408", "relation", 9, "B", (640, 480)),
]
SIMPLE = [
    ("simple_96", "standing on", (296, 640)),
    ("simple_64", "sitting on", (500, 375)),
    ("simple_21", "on", (500, 333)),
    ("simple_11", "on top of", (640, 480)),
]
DETAILED = [
    ("detailed_74", "person", "looking at", "person", (296, 640)),
    ("detailed_45", "cat", "lying on", "sofa", (500, 375)),
    ("detailed_90", "cup", "on", "table", (640, 427)),
    ("detailed_106", "rocket", "next to", "tower", (640, 478)),
]
SINGLE_REGION = {  # a one-region question of each type, with four answers that name no region
    "mirror": ("Is <Prompt0> seen in a mirror?", ["Yes", "No"]),
    "color": ("What colour is <Prompt0>?", ["Red", "Green", "Blue", "White"]),
    "texture/pattern": ("What pattern does <Prompt0> have?", ["Plain", "Striped", "Dotted", "Checked"]),
    "material": ("What is <Prompt0> made of?", ["Wood", "Metal", "Glass", "Cloth"]),
    "shape": ("What shape is <Prompt0>?", ["Round", "Oval", "Square", "Long"]),
    "ordering": ("Where is <Prompt0> in the picture?", ["Left", "Middle", "Right", "Nowhere"]),
}
PHOTOS = ["cat.jpg", "coffee.jpg", "rocket.jpg", "astronaut.jpg", "camera.jpg"]


def region_masks(size: tuple[int, int], count: int) -> list[np.ndarray]:
    """``count`` ellipses on a grid over an image of ``size`` (W, H), each clearly inside its cell."""
    width, height = size
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    cell_w, cell_h = width / columns, height / rows
    return [
        ellipse(size, ((k % columns + 0.5) * cell_w, (k // columns + 0.5) * cell_h), (cell_w / 3, cell_h / 3))
        for k in range(count)
    ]


def vqa_text(kind: str, regions: int) -> tuple[str, list[str]]:
    if regions == 1:
        question, answers = SINGLE_REGION[kind]
    else:
        tags = [f"<Prompt{k}>" for k in range(regions)]
        question = f"Which of {', '.join(tags)} is nearest to the camera?"
        answers = [*tags[:3], "All of them", "None of them"][:4]
    letters = "ABCD"
    return question, [f"{letters[k]}. {answer}" for k, answer in enumerate(answers)]


def write_garbench_sample(folder: Path) -> Path:
    """The three splits' ``*_sample.json`` and their ``images/`` in ``folder``."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    photos = [load_image(EXAMPLES / name) for name in PHOTOS]
    made = 0

    def item(name: str, size: tuple[int, int], regions: int) -> dict:
        nonlocal made
        image = photos[made % len(photos)].resize(size, Image.Resampling.BILINEAR)
        made += 1
        image.save(folder / "images" / f"{name}.png", compress_level=1)
        rles = [mask_to_rle(mask) for mask in region_masks(size, regions)]
        return {"image": f"images/{name}.png", "mask_rles": rles}

    vqa = []
    for name, kind, regions, answer, size in VQA:
        question, choices = vqa_text(kind, regions)
        vqa.append(
            {
                **item(name, size, regions),
                "question": question,
                "choices": choices,
                "answer": answer,
                "type": kind,
                "id": name,
            }
        )
    simple = [
        {
            **item(name, size, 2),
            "question": "What is the relationship between <Prompt1> and <Prompt0>?",
            "answer": f"<Prompt1> is {relation} <Prompt0>.",
            "id": name,
        }
        for name, relation, size in SIMPLE
    ]
    detailed = [
        {
            **item(name, size, 2),
            "subject_name": subject,
            "predicate_name": predicate,
            "object_name": thing,
            "id": name,
        }
        for name, subject, predicate, thing, size in DETAILED
    ]
    for split, items in (("vqa", vqa), ("simple", simple), ("detailed", detailed)):
        (folder / f"{split}_sample.json").write_text(json.dumps(items))
    return folder


def garbench_items(split: str = "vqa") -> list[dict]:
    """The items of one split (vqa / simple / detailed) of this sample."""
    return json.loads((own_garbench() / f"{split}_sample.json").read_text())


@functools.cache
def own_garbench() -> Path:
    """The folder of the sample, written once per test run (a second or two) and removed after it."""
    folder = Path(tempfile.mkdtemp(prefix="gar-app-garbench-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return write_garbench_sample(folder)
