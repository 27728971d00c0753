"""Small functions several test modules share (fixtures and the test environment live in
``conftest.py``; the API, browser and tracking tests have their own ``*_helpers`` / ``browser``
modules). A test module never imports another test module: what two need comes here."""

from __future__ import annotations

import html
import re
import threading
import time

import numpy as np
from PIL import Image, ImageDraw


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (two empty ones give 0)."""
    return float((a & b).sum() / max(1, (a | b).sum()))


def shown(markup: str) -> str:
    """The text a person reads in an HTML value (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def disc_and_square() -> Image.Image:
    """A grey picture with a red disc (left) and a blue square (right)."""
    image = Image.new("RGB", (160, 100), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    draw.ellipse((15, 20, 75, 80), fill=(220, 30, 30))
    draw.rectangle((100, 25, 145, 70), fill=(30, 30, 220))
    return image


def wait_until(condition, what: str, timeout: float = 120) -> None:
    """Poll ``condition`` until it holds; fail (saying ``what``) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        pause.wait(0.02)
