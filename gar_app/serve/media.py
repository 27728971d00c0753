"""Pixels from what a client sends: data URLs, or files inside the one folder the server may read.

Nothing a client sends reaches any other file: URLs with a scheme other than ``data:`` are
refused (the server downloads nothing), and a path is only read when the server was started
with ``--allow-dir DIR``, is relative, and still lies inside DIR once ``..`` and symbolic
links are resolved. Images are checked against the pixel limit on their header, before any
pixel is decoded, then decoded by ``gar_app.images`` like every other image in the app.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps

from gar_app import images
from gar_app.errors import InputError, MaskSizeError, TooLargeError
from gar_app.serve.errors import bad_request, too_large


class MediaReader:
    """Reads image and mask URLs for one server: data URLs, and files under ``allow_dir``."""

    def __init__(self, allow_dir: str | Path | None = None):
        self.root = None if allow_dir is None else Path(allow_dir).resolve(strict=True)
        if self.root is not None and not self.root.is_dir():
            raise InputError(f"--allow-dir {allow_dir} is not a folder")

    def read(self, url: object, param: str) -> bytes:
        """The bytes behind a URL a client sent (``param`` names the field in error messages)."""
        if not isinstance(url, str) or not url:
            raise bad_request(f"{param} must be a non-empty string (a data: URL)", param)
        if url.startswith("data:"):
            return _data_url_bytes(url, param)
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme in ("http", "https"):
            raise bad_request(
                f"{param}: this server downloads nothing; send the image inline as a data: URL", param
            )
        if scheme or url.startswith("//"):
            raise bad_request(
                f"{param}: only data: URLs and paths relative to the server's allowed folder are read", param
            )
        return self._file_bytes(url, param)

    def _file_bytes(self, relative: str, param: str) -> bytes:
        if self.root is None:
            raise bad_request(
                f"{param}: this server reads no files; send the image as a data: URL "
                "(or start the server with --allow-dir DIR to allow paths inside DIR)",
                param,
            )
        if "\x00" in relative or PurePosixPath(relative).is_absolute() or Path(relative).is_absolute():
            raise bad_request(f"{param}: a path must be relative to the server's allowed folder", param)
        target = (self.root / relative).resolve()
        if target == self.root or not target.is_relative_to(self.root):
            raise bad_request(f"{param}: the path leads outside the server's allowed folder", param)
        if not target.is_file():
            raise bad_request(f"{param}: no such file in the server's allowed folder: {relative}", param)
        try:
            images.check_file_size(target, f"{param}: the file")
        except TooLargeError as error:
            raise too_large(str(error), param) from None
        return target.read_bytes()

    def image(self, url: object, param: str) -> tuple[Image.Image, str]:
        """The RGB image behind ``url`` and the sha256 of its bytes (the conversation's identity)."""
        data = self.read(url, param)
        return decode_image(data, param), hashlib.sha256(data).hexdigest()

    def mask(self, url: object, param: str, size: tuple[int, int]) -> np.ndarray:
        """A boolean mask from a PNG (or any image) URL; it must be exactly ``size`` = (width, height)."""
        opened = _open(self.read(url, param), param, "mask")
        try:
            images.check_mask_shape((opened.height, opened.width), *size, f"{param}: the mask")
        except MaskSizeError as error:
            raise bad_request(str(error), param, "mask_size") from None
        try:
            return images.load_mask(opened)
        except (InputError, OSError, ValueError, SyntaxError) as error:
            raise bad_request(f"{param}: cannot read the mask ({error})", param, "invalid_mask") from None


def _data_url_bytes(url: str, param: str) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise bad_request(f"{param}: a data URL must look like data:image/png;base64,<base64 data>", param)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{param}: the data URL's base64 data cannot be decoded", param) from None


def _open(data: bytes, param: str, what: str) -> Image.Image:
    """An image or mask a client sent, decoded by the app's one opener (limits checked on the header)."""
    try:
        return images.open_image(data, f"the {what}")
    except TooLargeError as error:
        raise too_large(f"{param}: {error}", param) from None
    except InputError:
        raise bad_request(
            f"{param}: the {what} is not an image Pillow can read (damaged, or an unknown format)",
            param,
            f"invalid_{what}",
        ) from None


def decode_image(data: bytes, param: str) -> Image.Image:
    """RGB pixels of an encoded image, EXIF orientation applied, as ``gar_app.images`` reads files."""
    opened = _open(data, param, "image")
    try:
        return images.load_image(ImageOps.exif_transpose(opened))
    except (InputError, OSError, ValueError, SyntaxError) as error:
        raise bad_request(f"{param}: cannot decode the image ({error})", param, "invalid_image") from None
