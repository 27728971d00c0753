"""COCO RLE: masks round-trip bit for bit, and every malformed RLE is refused with one line
naming where it is, before pycocotools (which reads past its buffers on bad counts) sees it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import shared_data
from pycocotools import mask as mask_utils

from gar_app import rle as rle_module
from gar_app.errors import InputError, MaskSizeError, TooLargeError
from gar_app.rle import checked_rle, mask_to_rle, rle_to_mask


def _runs(mask: np.ndarray) -> list[int]:
    """COCO run lengths (column-major, starting with zeros), computed independently."""
    flat = np.asarray(mask, bool).flatten(order="F")
    edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return ([0] + runs) if flat[0] else runs


def _reference_runs(text: str, height: int, width: int) -> list[int] | None:
    """COCO's counts read one character at a time, as pycocotools' C decoder reads them, with
    the checks it leaves out; None where the text is not a valid height x width mask."""
    pixels = height * width
    longest = min(6, -(-((pixels).bit_length() + 1) // 5))
    runs: list[int] = []
    pos = 0
    while pos < len(text):
        value = shift = length = 0
        while True:
            if pos == len(text):
                return None  # ends inside a number
            c = ord(text[pos]) - 48
            if not 0 <= c < 64:
                return None
            pos += 1
            length += 1
            value |= (c & 0x1F) << shift
            shift += 5
            if not c & 0x20:
                if c & 0x10:
                    value |= -1 << shift
                break
        if length > longest:
            return None
        runs.append(value + (runs[-2] if len(runs) > 2 else 0))
    if any(run < 0 for run in runs) or sum(runs) != pixels:
        return None
    return runs


def _masks() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    masks = [
        rng.random(shape) < p
        for shape, p in [((17, 23), 0.5), ((31, 5), 0.1), ((1, 7), 0.5), ((13, 1), 0.5), ((64, 65), 0.9)]
    ]
    masks += [np.zeros((9, 11), bool), np.ones((9, 11), bool), np.zeros((1, 1), bool), np.ones((1, 1), bool)]
    border = np.ones((10, 7), bool)
    border[1:-1, 1:-1] = False
    masks.append(border)  # touches every edge
    for y, x in [(0, 0), (0, 10), (8, 0), (8, 10), (4, 5)]:
        one = np.zeros((9, 11), bool)
        one[y, x] = True
        masks.append(one)  # a single pixel, corners included
    return masks


def _many_run_masks() -> list[np.ndarray]:
    """Masks whose counts are long: noise (runs of every length, numbers of 1-3 characters),
    a checkerboard (every run one pixel), and long runs next to short ones (negative deltas)."""
    rng = np.random.default_rng(11)
    noise = rng.random((240, 320)) < 0.5
    checkerboard = (np.add.outer(np.arange(101), np.arange(77)) % 2).astype(bool)
    stripes = np.zeros((300, 200), bool)
    stripes[:, ::7] = True
    stripes[rng.random((300, 200)) < 0.01] = True
    blobs = np.zeros((2000, 1500), bool)
    blobs[100:1900, 40:1400] = True
    blobs[rng.random(blobs.shape) < 0.001] ^= True
    return [noise, checkerboard, stripes, blobs]


@pytest.mark.parametrize(
    "mask", _masks() + _many_run_masks(), ids=lambda m: f"{m.shape[0]}x{m.shape[1]}-{int(m.sum())}"
)
def test_rle_round_trip_is_bit_identical(mask):
    rle = mask_to_rle(mask)
    assert rle["size"] == list(mask.shape) and isinstance(rle["counts"], str)
    assert checked_rle({"size": rle["size"], "counts": _runs(mask)})["counts"] == rle["counts"]
    assert _reference_runs(rle["counts"], *mask.shape) == _runs(mask)
    back = rle_to_mask(json.loads(json.dumps(rle)))
    assert back.dtype == bool and back.flags.c_contiguous and np.array_equal(back, mask)
    assert np.array_equal(rle_to_mask({"size": rle["size"], "counts": rle["counts"].encode()}), mask)
    assert np.array_equal(rle_to_mask({"size": rle["size"], "counts": _runs(mask)}), mask)
    assert mask_to_rle(mask.astype(np.uint8) * 255) == rle


@pytest.mark.parametrize("block", [6, 7, 13])
def test_counts_read_in_blocks_give_the_same_masks(monkeypatch, block):
    """A long counts string is checked a block at a time; numbers cut by a block's end and the
    running sums carried from block to block must not change what is read."""
    monkeypatch.setattr(rle_module, "BLOCK", block)
    for mask in _many_run_masks()[:3] + _masks():
        assert np.array_equal(rle_to_mask(mask_to_rle(mask)), mask)


@pytest.mark.parametrize("block", [6, 7, rle_module.BLOCK])
def test_checks_agree_with_a_character_by_character_reader(monkeypatch, block):
    """Random valid counts, and the same counts with one character changed, dropped, added or
    cut off: refused exactly when the reference reader finds them invalid, and where accepted,
    decoded to exactly the runs that reader sees (also when read in blocks of a few characters)."""
    monkeypatch.setattr(rle_module, "BLOCK", block)
    rng = np.random.default_rng(5)
    alphabet = [chr(c) for c in range(40, 120)]  # COCO's 64 characters and some around them
    tried = refused = 0
    for _ in range(60):
        shape = (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
        mask = rng.random(shape) < rng.choice([0.05, 0.5, 0.95])
        text = mask_to_rle(mask)["counts"]
        for _ in range(20):
            at = int(rng.integers(0, len(text) + 1))
            kind = rng.integers(0, 4)
            if kind == 0 and at < len(text):
                changed = text[:at] + rng.choice(alphabet) + text[at + 1 :]
            elif kind == 1 and at < len(text):
                changed = text[:at] + text[at + 1 :]
            elif kind == 2:
                changed = text[:at] + rng.choice(alphabet) + text[at:]
            else:
                changed = text[:at]
            expected = _reference_runs(changed, *shape)
            rle = {"size": list(shape), "counts": changed}
            tried += 1
            if expected is None:
                refused += 1
                with pytest.raises(InputError) as caught:
                    rle_to_mask(rle, "regions[3].mask")
                assert caught.value.args[0].startswith("regions[3].mask")
                assert "\n" not in str(caught.value)
            else:
                flat = np.repeat(np.arange(len(expected)) % 2 == 1, expected)
                assert np.array_equal(rle_to_mask(rle), flat.reshape(shape[1], shape[0]).T)
    assert 0.2 * tried < refused < 0.98 * tried  # both verdicts were exercised


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ({"size": [3, 5], "counts": "0"}, "do not cover a 3x5"),
        ({"size": [3, 5], "counts": ""}, "do not cover"),
        ({"size": [3, 5], "counts": "zz"}, "character 'z'"),
        ({"size": [3, 5], "counts": "7\x0017"}, r"character '\\x00' \(at 1\)"),
        ({"size": [3, 5], "counts": "7é17"}, "character 'é'"),
        ({"size": [3, 5], "counts": b"7~17"}, "character '~'"),
        ({"size": [3, 5], "counts": "W"}, "middle of a number"),
        ({"size": [3, 5], "counts": "17W"}, "middle of a number"),
        ({"size": [3, 5], "counts": "4O<"}, "run 1 is negative"),  # 4, -1, 12
        ({"size": [4, 4], "counts": "41d0"}, "run 2 alone is 20 pixels"),  # a run longer than the mask
        ({"size": [3, 5], "counts": "4" + "`" * 5 + "0"}, "a number of 6 or more characters"),
        ({"size": [3, 5], "counts": "0" * 1000}, "1000 characters long"),
        ({"size": [3, 5], "counts": [4, -1, 12]}, "run 1 is negative"),
        ({"size": [3, 5], "counts": [4, 1, 9]}, "they sum to 14 pixels"),
        ({"size": [3, 5], "counts": [0] * 40}, "40 runs"),
        ({"size": [3, 5], "counts": [4, 1.5, 10]}, "string or a list of integers"),
        ({"size": [3, 5], "counts": [4, True, 10]}, "string or a list of integers"),
        ({"size": [3, 5], "counts": 15}, "string or a list of integers"),
        ({"size": "3x5", "counts": "717"}, "size must be"),
        ({"size": [3, True], "counts": "717"}, "size must be"),
        ({"size": [3, -5], "counts": "717"}, "size must be"),
        ({"counts": "717"}, "'size' and 'counts'"),
        ([3, 5], "'size' and 'counts'"),
    ],
)
def test_bad_rle_is_refused_in_one_line(rle, message):
    with pytest.raises(InputError, match=message) as caught:
        rle_to_mask(rle, "messages[1].content[2].mask")
    assert str(caught.value).startswith("messages[1].content[2].mask")
    assert "\n" not in str(caught.value)


def test_a_huge_declared_size_is_refused_before_the_counts_are_read():
    with pytest.raises(TooLargeError, match=r"mask is 1000000x1000000 \(1000000.0 megapixels\), more than"):
        rle_to_mask({"size": [10**6, 10**6], "counts": "not even counts"}, "mask")


def test_the_expected_shape_is_checked_first_in_the_one_wording():
    rle = mask_to_rle(np.ones((3, 5), bool))
    assert rle_to_mask(rle, "regions[0].mask", (3, 5)).all()
    with pytest.raises(MaskSizeError, match=r"^regions\[0\].mask is 5x3 but the image is 3x5$"):
        rle_to_mask(rle, "regions[0].mask", (5, 3))
    with pytest.raises(MaskSizeError, match="but each video frame is 4x3"):
        checked_rle({"size": [10**6, 10**6], "counts": "?"}, "frames[2].mask", (3, 4), "each video frame")


def test_pycocotools_never_sees_refused_counts(monkeypatch):
    seen = []
    decode = mask_utils.decode
    monkeypatch.setattr(mask_utils, "decode", lambda rle: seen.append(rle) or decode(rle))
    for counts in ["W", "17W", "4O<", "zz", "0", "41d0", "4" + "`" * 5 + "0"]:
        with pytest.raises(InputError):
            rle_to_mask({"size": [3, 5], "counts": counts})
    assert seen == []
    assert rle_to_mask(mask_to_rle(np.eye(3, 5, dtype=bool))).sum() == 3 and len(seen) == 1


def test_list_counts_become_coco_text_and_text_counts_stay_as_given():
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:5] = True
    text = mask_to_rle(mask)
    assert checked_rle({"size": [4, 6], "counts": _runs(mask)}) == text
    assert checked_rle({"size": [4, 6], "counts": text["counts"].encode(), "extra": 1}) == text
    assert checked_rle({"size": [0, 6], "counts": []}) == {"size": [0, 6], "counts": ""}
    assert rle_to_mask({"size": [0, 6], "counts": ""}).shape == (0, 6)


def test_garbench_rles_decode_like_pycocotools():
    items = json.loads(shared_data("garbench", "vqa_sample.json").read_text())
    rles = [rle for item in items for rle in item["mask_rles"]]
    assert rles
    for rle in rles:
        ours = rle_to_mask(rle)
        assert np.array_equal(ours, mask_utils.decode({**rle, "counts": rle["counts"].encode()}) != 0)
        assert mask_to_rle(ours) == {"size": list(rle["size"]), "counts": rle["counts"]}
