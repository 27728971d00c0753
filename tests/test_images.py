"""Images and masks as every part of the app reads them, and GAR on unusual image formats."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import write_blank_png
from PIL import Image, ImageFile

from gar_app.errors import GarAppError, InputError, MaskSizeError, TooLargeError
from gar_app.images import (
    DEFAULT_MAX_MEGAPIXELS,
    MaskResizedWarning,
    check_mask_shape,
    fit_mask,
    load_image,
    load_mask,
    mask_box,
    max_image_pixels,
    open_image,
)
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
    assert grey16[0, 0] == 0 and grey16[0, 59] > 200 and np.all(np.diff(grey16[0]) >= 0), (
        "16-bit is scaled, not clipped"
    )


def test_masks_any_nonzero_and_resized_nearest():
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[5:10, 6:12] = 7
    assert load_mask(mask).sum() == 30
    notices = []
    bigger = load_mask(Image.fromarray(mask), size=(60, 40), notify=notices.append)
    assert bigger.shape == (40, 60) and set(np.unique(bigger)) == {False, True}
    assert mask_box(bigger) == (12, 10, 23, 19)
    assert mask_box(np.zeros((3, 3), bool)) is None
    assert notices == ["the mask is 30x20, the image 60x40: scaled to fit (same aspect ratio)"]


def test_a_mask_of_another_aspect_ratio_is_refused_not_stretched(tmp_path):
    path = tmp_path / "square.png"
    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(path)
    with pytest.raises(
        InputError, match=r"mask square.png is 40x40 but the image is 60x40: another aspect ratio"
    ):
        load_mask(path, size=(60, 40))
    with pytest.raises(InputError, match="another aspect ratio"):
        load_mask(np.ones((40, 55), bool), size=(60, 40))  # 5 pixels off: not rounding


@pytest.mark.parametrize(
    ("mask_size", "image_size"),
    [((500, 333), (1001, 667)), ((501, 334), (1001, 667)), ((2002, 1334), (1001, 667)), ((61, 40), (60, 40))],
)
def test_rounded_sizes_count_as_the_same_aspect_ratio(mask_size, image_size):
    mask = np.zeros(mask_size[::-1], bool)
    mask[: mask_size[1] // 2] = True
    fitted, notice = fit_mask(mask, image_size)
    assert fitted.shape == image_size[::-1] and notice and "scaled to fit" in notice
    assert abs(fitted.mean() - 0.5) < 0.01, "nearest-neighbour scaling keeps the marked half"


def test_fitting_a_mask_without_a_listener_warns():
    with pytest.warns(MaskResizedWarning, match="scaled to fit"):
        load_mask(np.ones((20, 30), bool), size=(60, 40))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_mask(np.ones((40, 60), bool), size=(60, 40)).all()  # same size: nothing to say


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
    with pytest.warns(MaskResizedWarning, match="scaled to fit"):
        session = tiny_gar.chat(image, [mask])
    assert session.masks[0].shape == (40, 60)
    assert isinstance(session.describe(0, GenerationSettings(max_new_tokens=4)), str)


@pytest.fixture()
def decodes(monkeypatch) -> list[str]:
    """Records every file PIL decodes, so a test can show a refusal came before decoding."""
    calls: list[str] = []
    load = ImageFile.ImageFile.load

    def counting_load(self):
        calls.append(getattr(self, "filename", "?"))
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
    return calls


def test_a_huge_png_is_refused_from_its_header(tmp_path, decodes):
    path = write_blank_png(tmp_path / "huge.png", 15000, 15000)
    assert path.stat().st_size < 1_000_000
    for load in (load_image, load_mask):
        with pytest.raises(
            InputError, match=r"huge.png has 225.0 megapixels, more than the 50 megapixels this app accepts"
        ):
            load(path)
    assert decodes == []


@pytest.mark.filterwarnings("error")  # PIL's DecompressionBombWarning must not leak out either
def test_the_pixel_limit_is_a_setting(tmp_path, monkeypatch, decodes):
    assert max_image_pixels() == DEFAULT_MAX_MEGAPIXELS * 1_000_000 == 50_000_000
    path = tmp_path / "photo.png"
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(path)
    assert load_image(path).size == (400, 300)
    monkeypatch.setenv("GAR_APP_MAX_IMAGE_MEGAPIXELS", "0.1")  # 100,000 pixels; this one has 120,000
    decodes.clear()
    with pytest.raises(
        InputError,
        match=r"400x300 \(0.1 megapixels\), more than the 0.1 megapixels .*GAR_APP_MAX_IMAGE_MEGAPIXELS",
    ):
        load_image(path)
    assert decodes == []
    monkeypatch.setenv("GAR_APP_MAX_IMAGE_MEGAPIXELS", "lots")
    with pytest.raises(
        GarAppError, match="GAR_APP_MAX_IMAGE_MEGAPIXELS must be a positive number, not 'lots'"
    ):
        load_image(path)


def test_images_and_masks_in_memory_have_the_same_limit(tmp_path, monkeypatch, decodes):
    monkeypatch.setenv("GAR_APP_MAX_IMAGE_MEGAPIXELS", "0.001")  # 1000 pixels
    assert load_image(np.zeros((25, 40, 3), np.uint8)).size == (40, 25)
    with pytest.raises(InputError, match="the image is 41x25"):
        load_image(np.zeros((25, 41, 3), np.uint16))
    with pytest.raises(InputError, match="the mask is 41x25"):
        load_mask(np.zeros((25, 41), bool))
    path = write_blank_png(tmp_path / "lazy.png", 2000, 1000)
    lazy = Image.open(path)  # not decoded yet: checked on its header
    with pytest.raises(InputError, match="the image is 2000x1000"):
        load_image(lazy)
    assert decodes == []


def test_files_over_the_size_limit_are_not_read(tmp_path, monkeypatch, decodes):
    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(path)
    size_mb = path.stat().st_size / 2**20
    monkeypatch.setenv("GAR_APP_MAX_FILE_MB", f"{size_mb * 0.9:.4f}")
    for load in (load_image, load_mask):
        with pytest.raises(
            InputError,
            match=r"noise.png is 0.0 MB, more than the .* MB this app reads \(raise \$GAR_APP_MAX_FILE_MB",
        ):
            load(path)
    assert decodes == []
    monkeypatch.setenv("GAR_APP_MAX_FILE_MB", f"{size_mb * 1.1:.4f}")
    assert load_image(path).size == (64, 64)


def test_a_raised_limit_lets_pil_decode_larger_images(tmp_path, monkeypatch):
    """Above PIL's own bomb guard (179 MP) too: the setting, not PIL, decides."""
    path = write_blank_png(tmp_path / "huge.png", 15000, 15000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    monkeypatch.setenv("GAR_APP_MAX_IMAGE_MEGAPIXELS", "300")

    def stop_before_decoding(self):
        raise RuntimeError(f"decoding {self.size}")

    monkeypatch.setattr(ImageFile.ImageFile, "load", stop_before_decoding)  # 675 MB: not in a test
    with pytest.raises(RuntimeError, match=r"decoding \(15000, 15000\)"):
        load_image(path)


def test_encoded_bytes_go_through_the_same_checks_as_files(tmp_path, monkeypatch, decodes):
    """The API's data URLs are bytes: the one opener refuses them on the header, like a file."""
    huge = write_blank_png(tmp_path / "huge.png", 15000, 15000).read_bytes()
    for load in (load_image, load_mask):
        with pytest.raises(TooLargeError, match="has 225.0 megapixels, more than the 50 megapixels"):
            load(huge)
    assert decodes == []
    with pytest.raises(InputError, match="cannot read the mask: not a valid image"):
        open_image(b"\x89PNG\r\n\x1a\n garbage", "the mask")
    path = tmp_path / "small.png"
    Image.fromarray(np.full((30, 40), 255, np.uint8)).save(path)
    assert load_image(path.read_bytes()).size == (40, 30) and load_mask(path.read_bytes()).all()
    monkeypatch.setenv("GAR_APP_MAX_FILE_MB", str(len(path.read_bytes()) / 2**20 / 2))
    with pytest.raises(TooLargeError, match=r"the image is 0.0 MB, more than the .* MB this app reads"):
        open_image(path.read_bytes(), "the image")


@pytest.mark.parametrize(
    ("shape", "size", "name", "image", "message"),
    [
        ((10, 10), (40, 30), "the mask", "the image", "the mask is 10x10 but the image is 40x30"),
        ((30, 40, 3), (30, 40), "the scribble", "the image", "the scribble is 40x30 but the image is 30x40"),
        (
            (9, 8),
            (8, 8),
            "frames[2].mask",
            "each video frame",
            "frames[2].mask is 8x9 but each video frame is 8x8",
        ),
    ],
)
def test_one_mask_size_check_with_one_wording(shape, size, name, image, message):
    check_mask_shape((size[1], size[0]), *size)  # the image's own size passes
    with pytest.raises(MaskSizeError) as caught:
        check_mask_shape(shape, *size, name, image)
    assert str(caught.value) == message
