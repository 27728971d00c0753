"""The shipped examples exist, open, are listed with a free licence and match their README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from gar_app.images import load_image
from gar_app.video import probe, read_frame

ASSETS = Path(__file__).resolve().parents[1] / "assets"
ROW = re.compile(r"^\| `(examples/[^`]+)` \| (\d+)x(\d+) \| ([^|]+) \|.*\| ([^|]+) \|$")


def _rows() -> list[tuple[str, int, int, str, str]]:
    rows = []
    for line in (ASSETS / "README.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            name, w, h, frames, licence = match.groups()
            rows.append((name, int(w), int(h), frames.strip(), licence.strip()))
    return rows


def test_readme_lists_every_file():
    listed = {name for name, *_ in _rows()}
    present = {f"examples/{p.name}" for p in (ASSETS / "examples").iterdir()}
    assert listed == present and len(listed) >= 5


@pytest.mark.parametrize("row", _rows(), ids=lambda row: row[0])
def test_asset_opens_at_the_stated_size(row):
    name, width, height, frames, licence = row
    path = ASSETS / name
    assert re.search(r"public domain|CC0", licence)
    if path.suffix == ".jpg":
        assert path.stat().st_size < 300_000
        assert Image.open(path).format == "JPEG"
        assert load_image(path).size == (width, height)
    else:
        assert path.stat().st_size < 500_000
        count, fps = re.fullmatch(r"(\d+) @ (\d+) fps", frames).groups()
        info = probe(path)
        assert (info.width, info.height, info.frame_count, info.fps) == (
            width,
            height,
            int(count),
            float(fps),
        )
        image, index, _ = read_frame(path, index=int(count) - 1)
        assert image.size == (width, height) and index == int(count) - 1
