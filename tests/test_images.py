"""Images and masks as every part of the app reads them, and GAR on unusual image formats."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gar_app.errors import InputError
from gar_app.images import load_image, load_mask, mask_box
from gar_app.model import GenerationSettings


def _formats(tmp_path) -> dict[str, Image.Image]:
    rgb = np.zeros((40, 60, 3), dtype=np.uint8)
    rgb[:, :30] = (200, 50, 20)
    rgba = np.dstack([rgb, np.full((40, 60), 255, np.uint8)])
    rgba[:, 45:, 3] = 0  # transparent on the right
    grey16 = (np.arange(60, dtype=np.uint16) * 1000)[None].repeat(40, 0)
    return {
        "rgba": Image.fromarray(rgba, "RGBA"),
        "grey": Image.fromarray(rgb[..., 0], "L"),
        "grey16": Image.fromarray(grey16.astype(np.uint16)),
        "cmyk": Image.fromarray(rgb, "RGB").convert("CMYK"),
        "palette": Image.fromarray(rgb, "RGB").convert("P"),
    }


def test_every_format_becomes_8_bit_rgb(tmp_path):
    images = _formats(tmp_path)
    for name, image in images.items():
        path = tmp_path / f"{name}.{'jpg' if name == 'cmyk' else 'png'}"
        image.save(path)
        loaded = load_image(path)
        assert loaded.mode == "RGB" and loaded.size == (60, 40), name
    rgba = np.asarray(load_image(images["rgba"]))
    assert (rgba[:, 50] == 255).all(), "transparency is composited on white, as PerceptionLM does"
    grey16 = np.asarray(load_image(images["grey16"]))[..., 0].astype(int)
    assert grey16[0, 0] == 0 and grey16[0, 59] > 200 and np.all(np.diff(grey16[0]) >= 0), "16-bit is scaled, not clipped"


def test_masks_any_nonzero_and_resized_nearest():
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[5:10, 6:12] = 7
    assert load_mask(mask).sum() == 30
    bigger = load_mask(Image.fromarray(mask), size=(60, 40))
    assert bigger.shape == (40, 60) and set(np.unique(bigger)) == {False, True}
    assert mask_box(bigger) == (12, 10, 23, 19)
    assert mask_box(np.zeros((3, 3), bool)) is None


def test_missing_and_broken_files_are_clear(tmp_path):
    with pytest.raises(InputError, match="Image file not found"):
        load_image(tmp_path / "nope.png")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(InputError, match="not a valid image"):
        load_image(broken)
    with pytest.raises(InputError, match="folder"):
        load_mask(tmp_path)


@pytest.mark.parametrize("kind", ["rgba", "grey", "grey16", "cmyk"])
def test_gar_describes_regions_of_unusual_images(tiny_gar, tmp_path, kind):
    image = _formats(tmp_path)[kind]
    mask = np.zeros((20, 30), dtype=bool)  # a mask of another size than the image
    mask[4:12, 3:14] = True
    session = tiny_gar.chat(image, [mask])
    assert session.masks[0].shape == (40, 60)
    assert isinstance(session.describe(0, GenerationSettings(max_new_tokens=4)), str)
