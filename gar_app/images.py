"""Reading images and masks the way every part of the app expects them.

One place decides what an "image" is (8-bit RGB, EXIF orientation applied, transparency
composited on white like PerceptionLM's processor does) and what a "mask" is (boolean,
image-sized, any non-zero pixel inside), so the model, the segmenters and the UI always
agree on pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gar_app.errors import InputError

# Larger images are refused instead of risking an out-of-memory crash (PIL's own bomb guard
# starts at ~179 MP and raises an unfriendly error).
MAX_IMAGE_PIXELS = 120_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

ImageSource = str | os.PathLike | Image.Image | np.ndarray


def _open(source: str | os.PathLike, what: str) -> Image.Image:
    path = Path(source)
    if not path.exists():
        raise InputError(f"{what} file not found: {path}")
    if path.is_dir():
        raise InputError(f"{what} path is a folder, not a file: {path}")
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InputError(
            f"cannot read {what.lower()} {path.name}: not a valid image (damaged, or a format Pillow cannot read)"
        ) from None
    except Image.DecompressionBombError:
        raise InputError(
            f"{what} {path.name} is too large (over {MAX_IMAGE_PIXELS // 1_000_000} megapixels)"
        ) from None
    return image


def _to_8bit(array: np.ndarray) -> np.ndarray:
    """Scale 16-bit / 32-bit / float pixel data into 0..255 without clipping it to white."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        finite = np.nan_to_num(array.astype(np.float64))
        top = 1.0 if finite.max(initial=0.0) <= 1.0 else finite.max()
        return np.clip(finite / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    info = np.iinfo(array.dtype)
    top = 65535 if array.max(initial=0) <= 65535 and info.max >= 65535 else info.max
    return np.clip(array.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)


def to_rgb(image: Image.Image | np.ndarray) -> Image.Image:
    """Any PIL image or array (grey, RGBA, CMYK, palette, 16-bit, float) as 8-bit RGB."""
    if isinstance(image, np.ndarray):
        array = _to_8bit(image)
        if array.ndim == 2:
            return Image.fromarray(array, "L").convert("RGB")
        if array.ndim == 3 and array.shape[2] in (1, 3, 4):
            if array.shape[2] == 1:
                return Image.fromarray(array[:, :, 0], "L").convert("RGB")
            image = Image.fromarray(np.ascontiguousarray(array), "RGB" if array.shape[2] == 3 else "RGBA")
        else:
            raise InputError(f"unsupported image array shape {array.shape}; expected HxW, HxWx3 or HxWx4")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        image = Image.fromarray(_to_8bit(np.asarray(image)), "L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(source: ImageSource) -> Image.Image:
    """Open a path, PIL image or array as the RGB image the app works on."""
    if isinstance(source, (str, os.PathLike)):
        image = ImageOps.exif_transpose(_open(source, "Image"))
    else:
        image = source
    rgb = to_rgb(image)
    if rgb.width < 1 or rgb.height < 1:
        raise InputError("image is empty (0 pixels)")
    return rgb


def load_mask(source: ImageSource, size: tuple[int, int] | None = None) -> np.ndarray:
    """A boolean (H, W) mask; any non-zero pixel is inside.

    ``size`` is the image's (width, height): a mask of another size is resized to it with
    nearest-neighbour sampling, so its edges stay hard.
    """
    if isinstance(source, (str, os.PathLike)):
        source = _open(source, "Mask")
    if isinstance(source, Image.Image):
        if source.mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr", "LA", "PA"):
            source = source.convert("L")
        array = np.asarray(source)
    else:
        array = np.asarray(source)
        if array.ndim == 3:
            array = array[..., :3].any(axis=-1) if array.shape[2] >= 3 else array[..., 0]
    if array.ndim != 2:
        raise InputError(f"unsupported mask shape {array.shape}; expected a single-channel image")
    mask = array != 0
    if size is not None and (mask.shape[1], mask.shape[0]) != tuple(size):
        resized = Image.fromarray(mask.astype(np.uint8) * 255, "L").resize(tuple(size), Image.NEAREST)
        mask = np.asarray(resized) != 0
    return mask


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Inclusive pixel box ``(x_min, y_min, x_max, y_max)`` of a mask, or None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])
