"""What the gallery needs from a project's files without opening them for annotation:
their size from the header (``probe``) and small previews (``make_thumbnail``).

Both apply the app's limits (``gar_app.images``) and turn any problem into the sentence
the gallery shows as the file's reason for being failed. A thumbnail decodes JPEGs at a
reduced scale (PIL's draft mode), so previewing a folder of 12-megapixel photos costs a
fraction of opening them; annotating always goes through ``gar_app.images.load_image``.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageOps

from gar_app.errors import GarAppError, InputError
from gar_app.images import open_image, to_rgb

ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
EXIF_ORIENTATION = 0x0112


def _unreadable(path: Path) -> InputError:
    """What ``open_image`` says of a file it cannot decode (here: a preview's reduced decode)."""
    return InputError(
        f"cannot read image {path.name}: not a valid image (damaged, or a format Pillow cannot read)"
    )


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    """Width and height as the app will see the image: EXIF rotation applied."""
    width, height = image.size
    try:
        orientation = image.getexif().get(EXIF_ORIENTATION)
    except Exception:  # a broken EXIF block: exif_transpose ignores it the same way
        orientation = None
    return (height, width) if orientation in ROTATED else (width, height)


def probe_image(path: Path) -> tuple[int, int]:
    """Width and height as the app will see the image, from the header alone."""
    with open_image(path, decode=False) as image:
        return _oriented_size(image)


def probe_video(path: Path) -> tuple[int, int]:
    from gar_app.video import probe

    info = probe(path)
    return info.width, info.height


def probe(path: Path, kind: str) -> tuple[int | None, int | None, str | None]:
    """``(width, height, None)``, or ``(None, None, why it cannot be used)``."""
    try:
        width, height = probe_video(path) if kind == "video" else probe_image(path)
    except GarAppError as error:
        return None, None, str(error)
    except OSError as error:
        return None, None, f"cannot read {path.name}: {error.strerror or error}"
    return width, height, None


def make_thumbnail(path: Path, kind: str, target: Path, edge: int) -> tuple[int, int]:
    """Write a JPEG preview of at most ``edge`` pixels a side to ``target`` (atomically) and
    return the full image's width and height; ``InputError`` says why it cannot be read."""
    if kind == "video":
        from gar_app.video import read_frame

        frame, _, _ = read_frame(path, 0)
        size = frame.size
    else:
        with open_image(path, decode=False) as image:
            size = _oriented_size(image)
            image.draft("RGB", (edge, edge))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
            try:
                frame = to_rgb(ImageOps.exif_transpose(image))
            except (OSError, SyntaxError, ValueError):
                raise _unreadable(path) from None
    frame.thumbnail((edge, edge))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    frame.save(partial, "JPEG", quality=85)
    os.replace(partial, target)
    return size
