"""Export JSON round-trips exactly, refuses broken files clearly, and feeds GAR training."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest
from PIL import Image

from gar_app.conversation import Turn, utc_now
from gar_app.errors import InputError
from gar_app.formats import FORMAT
from gar_app.formats.document import (
    AnnotationDocument,
    ExportedRegion,
    ImageInfo,
    VideoFrame,
    check_image,
    from_json,
    image_info,
    read_document,
    to_json,
)
from gar_app.formats.training import to_training_records
from gar_app.regions import region_colour
from gar_app.rle import rle_to_mask
from gar_app.tags import tags_in


def _document() -> AnnotationDocument:
    h, w = 37, 53
    rng = np.random.default_rng(3)
    blob = np.zeros((h, w), bool)
    blob[5:20, 30:53] = True  # touches the right edge
    one = np.zeros((h, w), bool)
    one[h - 1, 0] = True
    regions = [
        ExportedRegion(
            0,
            "#ff0000",
            "points",
            rng.random((h, w)) < 0.3,
            "a speckled thing",
            points=[(3, 4), (10.5, 20.25)],
            labels=[1, 0],
        ),
        ExportedRegion(1, "#00ff00", "box", blob, "a block", prompt_box=(29.5, 4.0, 52.9, 19.2)),
        ExportedRegion(3, "#0000ff", "scribble", one, "", scribble=[(0, 36), (1, 35), (2.5, 34)]),
        ExportedRegion(4, "#ffe119", "mask", np.zeros((h, w), bool), "ghost", mask_name="upload.png"),
    ]
    dialogue = [
        Turn("user", "Compare <Prompt1> with <Prompt0> and <Prompt1>.", "2025-06-01T12:00:00.000Z"),
        Turn(
            "assistant",
            "<Prompt0> is speckled; <Prompt1> is a solid block — «ünïcode».",
            "2025-06-01T12:00:01.250Z",
            "HaochenWang/GAR-1B",
            {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 256},
        ),
        Turn("user", "And <Prompt3>?", "2025-06-01T12:00:05+00:00"),
    ]
    return AnnotationDocument(
        ImageInfo("frame.png", w, h, "ab" * 32, "pixels"),
        regions,
        dialogue,
        VideoFrame("clip.mp4", 17, 17 / 24),
    )


def test_document_round_trips_exactly():
    doc = _document()
    text = to_json(doc)
    back = from_json(text)
    assert back == doc
    for ours, theirs in zip(back.regions, doc.regions, strict=True):
        assert ours.mask.dtype == bool and np.array_equal(ours.mask, theirs.mask)
    assert to_json(back) == text
    assert from_json(text.encode()) == doc


def test_document_fields():
    data = json.loads(to_json(_document()))
    assert data["format"] == FORMAT == "gar-app/1"
    assert data["image"] == {
        "name": "frame.png",
        "width": 53,
        "height": 37,
        "sha256": "ab" * 32,
        "sha256_of": "pixels",
    }
    assert data["video"] == {"name": "clip.mp4", "frame_index": 17, "time_s": 17 / 24}
    block = data["regions"][1]
    assert (block["tag"], block["box"], block["area"]) == ("<Prompt1>", [30, 5, 52, 19], 15 * 23)
    assert block["prompt"] == {
        "source": "box",
        "points": [],
        "labels": [],
        "box": [29.5, 4.0, 52.9, 19.2],
        "scribble": [],
        "mask_name": None,
    }
    assert block["mask"]["size"] == [37, 53] and isinstance(block["mask"]["counts"], str)
    one, ghost = data["regions"][2], data["regions"][3]
    assert (one["box"], one["area"]) == ([0, 36, 0, 36], 1)
    assert (ghost["box"], ghost["area"], ghost["prompt"]["mask_name"]) == (None, 0, "upload.png")
    assert [t["tags"] for t in data["dialogue"]] == [
        ["<Prompt0>", "<Prompt1>"],
        ["<Prompt0>", "<Prompt1>"],
        ["<Prompt3>"],
    ]
    assert data["dialogue"][1]["decoding"]["temperature"] == 0.7


def test_colours_are_written_in_one_case_and_read_in_either():
    """Image and video documents write '#rrggbb' in lower case (the palette is upper case);
    files written before, in upper case, still import."""
    doc = _document()
    doc.regions[0] = replace(doc.regions[0], colour=region_colour(0))
    assert region_colour(0) == "#FF0000"
    data = json.loads(to_json(doc))
    assert [r["colour"] for r in data["regions"]] == ["#ff0000", "#00ff00", "#0000ff", "#ffe119"]
    data["regions"][1]["colour"] = "#00FF00"
    assert json.loads(to_json(from_json(json.dumps(data))))["regions"][1]["colour"] == "#00ff00"


def test_tags_and_time():
    assert tags_in("<Prompt10>, <Prompt2>, <Prompt2>, <Prompt02>, <prompt1>, <Prompt0>") == [
        "<Prompt0>",
        "<Prompt2>",
        "<Prompt10>",
    ]
    stamp = utc_now()
    assert (
        stamp.endswith("Z") and datetime.fromisoformat(stamp.replace("Z", "+00:00")).utcoffset().seconds == 0
    )


def _edit(path: str, value) -> callable:
    def apply(data: dict) -> dict:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is KeyError:
            del node[last]
        else:
            node[int(last) if isinstance(node, list) else last] = value
        return data

    return apply


BROKEN = [
    (_edit("format", "gar-app/2"), "format is 'gar-app/2'"),
    (_edit("format", KeyError), "format is None"),
    (_edit("regions", KeyError), "document has no 'regions'"),
    (_edit("image.width", "53"), r"image.width must be an integer"),
    (_edit("image.height", True), r"image.height must be an integer"),
    (_edit("image.width", 0), "empty or larger"),
    (_edit("image.width", 10**9), "empty or larger"),
    (_edit("image.sha256", "xyz"), "sha256"),
    (_edit("image.sha256_of", "url"), "sha256_of"),
    (_edit("video.frame_index", -1), "frame_index"),
    (_edit("regions.0.mask.size", [53, 37]), r"regions\[0\].mask is 37x53 but the image is 53x37"),
    (_edit("regions.0.mask.size", [37, 10**9]), "mask is 1000000000x37"),
    (_edit("regions.0.mask.counts", "abc"), r"regions\[0\].mask: RLE counts"),
    (_edit("regions.0.mask.counts", 12), r"regions\[0\].mask: RLE counts must be"),
    (_edit("regions.0.mask", None), r"regions\[0\].mask must be an object"),
    (_edit("regions.1.tag", "<Prompt7>"), r"regions\[1\].tag is '<Prompt7>'"),
    (_edit("regions.1.colour", "red"), "colour must be '#rrggbb'"),
    (_edit("regions.1.prompt.source", "lasso"), "source must be one of"),
    (_edit("regions.1.prompt.box", None), r"regions\[1\] was made from box but its prompt has none"),
    (_edit("regions.1.prompt.box", [1, 2, 3]), r"prompt.box\[0\] must be a list of 4 numbers"),
    (_edit("regions.0.prompt.labels", [1]), "one 0 or 1 per point"),
    (_edit("regions.0.prompt.labels", [1, 2]), "one 0 or 1 per point"),
    (_edit("regions.0.prompt.points", [[1, "2"], [3, 4]]), r"points\[0\] must be a list of 2 numbers"),
    (_edit("regions.1.area", 1), "does not match its mask"),
    (_edit("regions.1.box", [0, 0, 1, 1]), "does not match its mask"),
    (_edit("regions.1.caption", None), r"caption must be a string"),
    (lambda d: _edit("regions.2.tag", "<Prompt1>")(_edit("regions.2.index", 1)(d)), "indices must be unique"),
    (_edit("regions.0", "region"), r"regions\[0\] must be an object"),
    (_edit("dialogue.0.role", "system"), "role must be 'user' or 'assistant'"),
    (_edit("dialogue.0.time", "yesterday"), "ISO 8601 UTC"),
    (_edit("dialogue.0.time", "2025-06-01T14:00:00+02:00"), "ISO 8601 UTC"),
    (_edit("dialogue.0.time", "2025-06-01T12:00:00"), "ISO 8601 UTC"),
    (_edit("dialogue.0.tags", ["<Prompt0>"]), "tags is"),
    (_edit("dialogue.1.decoding", "greedy"), "decoding must be an object"),
    (_edit("dialogue.1.model", 5), "model must be a string or null"),
]


@pytest.mark.parametrize(("edit", "message"), BROKEN, ids=[m for _, m in BROKEN])
def test_malformed_import_names_the_problem(edit, message):
    data = edit(copy.deepcopy(json.loads(to_json(_document()))))
    with pytest.raises(InputError, match=message) as caught:
        from_json(json.dumps(data))
    text = str(caught.value)
    assert text.startswith("not a valid GAR App export: ") and "\n" not in text


@pytest.mark.parametrize("text", ["", "{", "not json", "[1, 2]", "null", '"gar-app/1"', "[" * 100_000])
def test_non_documents_are_refused(text):
    with pytest.raises(InputError, match="not a valid GAR App export"):
        from_json(text)


def test_nan_coordinates_are_refused():
    text = to_json(_document()).replace("[10.5, 20.25]", "[NaN, 20.25]")
    with pytest.raises(InputError, match=r"points\[1\]"):
        from_json(text)


def test_image_identity(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    info = image_info(path)
    assert (info.name, info.width, info.height, info.sha256_of) == ("photo.png", 9, 6, "file")
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    pixels = image_info(Image.fromarray(rgb), name="frame")
    assert (pixels.name, pixels.sha256_of) == ("frame", "pixels")
    assert pixels.sha256 == hashlib.sha256(rgb.tobytes()).hexdigest()


def _identities(tmp_path, name: str, rgb: np.ndarray) -> tuple[ImageInfo, ImageInfo, Image.Image]:
    """The file and the pixel identity of one picture saved as PNG, and the picture."""
    path = tmp_path / name
    Image.fromarray(rgb).save(path)
    return image_info(path), image_info(Image.fromarray(rgb), name=name), Image.fromarray(rgb)


def test_an_import_is_checked_against_the_loaded_image_by_file_and_by_pixels(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    other = rgb.copy()
    other[5, 8, 2] ^= 1  # one bit of one pixel: same size
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    as_file, as_pixels, image = _identities(tmp_path / "a", "photo.png", rgb)
    other_file, other_pixels, other_image = _identities(tmp_path / "b", "other.png", other)

    for document, loaded in [(as_file, as_file), (as_pixels, as_pixels), (as_pixels, as_file)]:
        check_image(document, loaded, image)  # the same picture: no complaint

    with pytest.raises(
        InputError,
        match=r"annotates photo.png \(9x6\); the loaded image other.png has that size "
        r"but its file differs",
    ):
        check_image(as_file, other_file, other_image)
    with pytest.raises(InputError, match="its pixels differ"):
        check_image(as_pixels, other_pixels, other_image)
    with pytest.raises(InputError, match="its pixels differ"):
        check_image(as_pixels, other_file, other_image)  # a file-loaded image is hashed by its pixels too
    with pytest.raises(
        InputError,
        match="identifies it by its file, but the loaded image did not come from a "
        "file; open photo.png itself",
    ):
        check_image(as_file, as_pixels, image)  # cannot be checked: refused, even for the very same pixels
    small = image_info(Image.fromarray(rgb[:5]), name="small")
    with pytest.raises(InputError, match=r"annotates photo.png \(9x6\), not the loaded 9x5 image"):
        check_image(as_file, small, image)


def test_a_number_too_long_for_python_is_a_clear_error():
    text = to_json(_document())
    assert '"width": 53' in text
    with pytest.raises(InputError, match="not a valid GAR App export: it holds a number with 5000 digits"):
        from_json(text.replace('"width": 53', '"width": ' + "5" * 5000))
    with pytest.raises(InputError, match="a number with 31 digits"):
        from_json(text.replace('"width": 53', '"width": -' + "5" * 31))
    with pytest.raises(InputError, match="image size 55555555555555555555555555555x37 is empty or larger"):
        from_json(
            text.replace('"width": 53', '"width": ' + "5" * 29)
        )  # within the digits: other checks answer


def test_training_record():
    doc = _document()
    doc.dialogue.append(Turn("assistant", "<Prompt3> is one pixel.", "2025-06-01T12:00:06Z"))
    doc.dialogue.append(Turn("user", "Unanswered <Prompt0>?", "2025-06-01T12:00:07Z"))
    doc.regions[1].caption = doc.dialogue[1].text  # already an answer: no extra describe pair
    (record,) = to_training_records(doc)
    json.dumps(record)
    assert (record["id"], record["image"]) == ("clip.mp4#17", "frame.png")
    kept = doc.regions[:3]  # region 4 has an empty mask; region 3 becomes <Prompt2>
    assert [rle_to_mask(r).tolist() for r in record["mask_rle"]] == [r.mask.tolist() for r in kept]
    assert record["conversations"] == [
        {"from": "human", "value": "<image>\nCompare <Prompt1> with <Prompt0> and <Prompt1>."},
        {"from": "gpt", "value": doc.dialogue[1].text},
        {"from": "human", "value": "And <Prompt2>?"},
        {"from": "gpt", "value": "<Prompt2> is one pixel."},
        {"from": "human", "value": "Describe <Prompt0> in detail."},
        {"from": "gpt", "value": "a speckled thing"},
    ]


def test_training_record_from_captions_only():
    doc = _document()
    doc.dialogue = []
    (record,) = to_training_records(doc)
    values = [c["value"] for c in record["conversations"]]
    assert values == [
        "<image>\nDescribe <Prompt0> in detail.",
        "a speckled thing",
        "Describe <Prompt1> in detail.",
        "a block",
    ]
    assert [c["from"] for c in record["conversations"]] == ["human", "gpt"] * 2
    doc.regions = [r for r in doc.regions if not r.caption or not r.mask.any()]
    assert to_training_records(doc) == []


def test_an_import_file_over_the_size_limit_is_not_read(tmp_path, monkeypatch):
    path = tmp_path / "session.gar.json"
    path.write_text(to_json(_document()))
    assert read_document(path).image.width == 53
    monkeypatch.setenv("GAR_APP_MAX_FILE_MB", str(path.stat().st_size / 2**20 / 2))
    with pytest.raises(
        InputError, match=r"the file session.gar.json is 0.0 MB, more than the .* MB this app reads"
    ):
        read_document(path)
