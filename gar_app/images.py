"""Reading images and masks the way every part of the app expects them.

One place decides what an "image" is (8-bit RGB, EXIF orientation applied, transparency
composited on white like PerceptionLM's processor does) and what a "mask" is (boolean,
image-sized, any non-zero pixel inside), so the model, the segmenters and the UI always
agree on pixels.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gar_app.errors import GarAppError, InputError, MaskSizeError, TooLargeError

# Size limits, checked on the header before any pixel is decoded (PIL itself only warns
# between 1x and 2x its own limit and decodes anyway). GAR sees an image as at most 36 tiles
# of 448 px (about 7 MP) and SAM as 1024 px, so more pixels add memory, not detail: 50 MP
# still takes any phone camera's full-resolution photo (8160x6120 = 49.9 MP) and decodes
# to 150 MB of RGB. 100 MB of file holds such a photo as JPEG, PNG or WebP.
MAX_MEGAPIXELS_ENV = "GAR_APP_MAX_IMAGE_MEGAPIXELS"
MAX_FILE_MB_ENV = "GAR_APP_MAX_FILE_MB"
DEFAULT_MAX_MEGAPIXELS = 50
DEFAULT_MAX_FILE_MB = 100

ImageSource = str | os.PathLike | bytes | Image.Image | np.ndarray


def _setting(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return float(default)
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise GarAppError(f"{name} must be a positive number, not {text!r}")
    return value


def max_image_pixels() -> int:
    """The largest image (width x height) the app decodes: ``$GAR_APP_MAX_IMAGE_MEGAPIXELS`` x 10^6."""
    return int(_setting(MAX_MEGAPIXELS_ENV, DEFAULT_MAX_MEGAPIXELS) * 1_000_000)


def max_file_bytes() -> int:
    """The largest image, mask or import file the app reads: ``$GAR_APP_MAX_FILE_MB`` x 2^20."""
    return int(_setting(MAX_FILE_MB_ENV, DEFAULT_MAX_FILE_MB) * 1024 * 1024)


def _too_large(limit: int) -> str:
    return f"more than the {limit / 1e6:g} megapixels this app accepts; use a smaller image (or raise ${MAX_MEGAPIXELS_ENV})"


def check_image_size(width: int, height: int, what: str = "the image") -> None:
    """Refuse an image (or frame, or mask) with more pixels than the limit, before decoding it."""
    limit = max_image_pixels()
    if width * height > limit:
        size = f"{width}x{height} ({width * height / 1e6:.1f} megapixels)"
        raise TooLargeError(f"{what} is {size}, {_too_large(limit)}")


def check_file_size(path: str | os.PathLike, what: str = "the file") -> None:
    """Refuse a file larger than the limit before reading it."""
    check_byte_count(os.path.getsize(path), what)


def check_byte_count(size: int, what: str = "the file") -> None:
    """Refuse ``size`` bytes of file or upload when they are more than the limit."""
    limit = max_file_bytes()
    if size > limit:
        raise TooLargeError(
            f"{what} is {size / 2**20:.1f} MB, more than the {limit / 2**20:g} MB this app reads "
            f"(raise ${MAX_FILE_MB_ENV} to allow it)"
        )


def open_image(source: str | os.PathLike | bytes, what: str = "Image", decode: bool = True) -> Image.Image:
    """The one way the app opens an image file or encoded bytes: the byte count, then the pixel
    count from the header, are checked before any pixel is decoded; then it is decoded here,
    so a damaged file fails here, as one ``InputError`` (``TooLargeError`` over a limit).

    ``what`` starts the messages: "Image", "Mask" (a path's file name follows it).
    ``decode=False`` stops after the header's checks (a gallery reading sizes, or decoding a
    reduced preview itself); the caller closes the image.
    """
    if isinstance(source, bytes):
        check_byte_count(len(source), what)
        name, stream = what, io.BytesIO(source)
    else:
        path = Path(source)
        if not path.exists():
            raise InputError(f"{what} file not found: {path}")
        if path.is_dir():
            raise InputError(f"{what} path is a folder, not a file: {path}")
        name, stream = f"{what} {path.name}", path
        check_file_size(path, name)
    limit = max_image_pixels()
    if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit  # PIL's own guard (it raises beyond 2x) stays, never below ours
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, more clearly
            image = Image.open(stream)  # reads the header only
        with _closed_on_error(image):
            check_image_size(image.width, image.height, name)
            if decode:
                image.load()
    except Image.DecompressionBombError as error:  # PIL refused the header itself (over 2x its own limit)
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(pixels[1]) / 1e6:.1f} megapixels, " if pixels else ""
        raise TooLargeError(f"{name} has {size}{_too_large(limit)}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InputError(
            f"cannot read {name[0].lower()}{name[1:]}: not a valid image (damaged, or a format Pillow cannot read)"
        ) from None
    return image


@contextmanager
def _closed_on_error(image: Image.Image) -> Iterator[None]:
    try:
        yield
    except BaseException:
        image.close()
        raise


def _check_in_memory(image: Image.Image | np.ndarray, what: str) -> None:
    """Arrays and PIL images given directly get the same pixel limit (a lazily opened PIL image
    is checked on its header, before it is decoded)."""
    if isinstance(image, Image.Image):
        check_image_size(image.width, image.height, what)
    else:
        array = np.asarray(image)
        if array.ndim >= 2:
            check_image_size(int(array.shape[1]), int(array.shape[0]), what)


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
    if isinstance(source, (str, os.PathLike, bytes)):
        image = ImageOps.exif_transpose(open_image(source, "Image"))
    else:
        _check_in_memory(source, "the image")
        image = source
    rgb = to_rgb(image)
    if rgb.width < 1 or rgb.height < 1:
        raise InputError("image is empty (0 pixels)")
    return rgb


def check_mask_shape(
    shape: tuple[int, ...], width: int, height: int, name: str = "the mask", image: str = "the image"
) -> None:
    """Refuse a mask (of array ``shape``, rows first) that is not ``width`` x ``height``, in the
    one wording every reader uses: "the mask is 10x10 but the image is 64x48"."""
    rows, columns = int(shape[0]), int(shape[1])
    if (columns, rows) != (int(width), int(height)):
        raise MaskSizeError(f"{name} is {columns}x{rows} but {image} is {width}x{height}")


class MaskResizedWarning(UserWarning):
    """A mask of another size (same aspect ratio) was fitted to its image."""


def same_aspect_ratio(size: tuple[int, int], other: tuple[int, int]) -> bool:
    """Whether two (width, height) sizes are one picture at two scales, up to a pixel of rounding."""
    (w, h), (ow, oh) = size, other
    return abs(w * oh - h * ow) <= max(w + h, ow + oh)


def fit_mask(
    mask: np.ndarray, size: tuple[int, int], name: str = "the mask"
) -> tuple[np.ndarray, str | None]:
    """``mask`` at the image's ``(width, height)`` and a notice when it had to be scaled.

    A mask of the same aspect ratio is scaled with nearest-neighbour sampling (its edges stay
    hard); one of another aspect ratio is refused: stretching it would mark other pixels
    than the ones it was drawn on.
    """
    height, width = mask.shape
    size = (int(size[0]), int(size[1]))
    if (width, height) == size:
        return mask, None
    have, want = f"{width}x{height}", f"{size[0]}x{size[1]}"
    if not same_aspect_ratio((width, height), size):
        raise InputError(
            f"{name} is {have} but the image is {want}: another aspect ratio "
            f"({width / height:.2f} vs {size[0] / size[1]:.2f}), so it was not drawn on this image"
        )
    resized = Image.fromarray(mask.astype(np.uint8) * 255, "L").resize(size, Image.NEAREST)
    return np.asarray(resized) != 0, f"{name} is {have}, the image {want}: scaled to fit (same aspect ratio)"


def load_mask(
    source: ImageSource,
    size: tuple[int, int] | None = None,
    notify: Callable[[str], object] | None = None,
) -> np.ndarray:
    """A boolean (H, W) mask; any non-zero pixel is inside.

    ``size`` is the image's (width, height): a mask of another size but the same aspect
    ratio is fitted to it (see ``fit_mask``) and ``notify`` gets the notice (the CLI prints
    it, the app shows it; by default it is a ``MaskResizedWarning``); a mask of another
    aspect ratio is an ``InputError``.
    """
    name = f"mask {Path(source).name}" if isinstance(source, (str, os.PathLike)) else "the mask"
    if isinstance(source, (str, os.PathLike, bytes)):
        source = open_image(source, "Mask")
    else:
        _check_in_memory(source, name)
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
    if size is None:
        return mask
    mask, notice = fit_mask(mask, size, name)
    if notice is not None:
        if notify is None:
            warnings.warn(notice, MaskResizedWarning, stacklevel=2)
        else:
            notify(notice)
    return mask


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Inclusive pixel box ``(x_min, y_min, x_max, y_max)`` of a mask, or None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])
