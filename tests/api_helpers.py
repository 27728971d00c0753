"""Helpers for the API tests: an in-process ``gar-app serve`` server and request parts."""

from __future__ import annotations

import base64
import io
import threading

import numpy as np
from conftest import free_port
from helpers import wait_until
from PIL import Image

from gar_app.segment.base import Segmenter, SegmentResult


class RunningApi:
    """``create_server`` (what ``gar-app serve`` runs) under uvicorn on a free loopback port."""

    def __init__(self, services, **options):
        import uvicorn

        from gar_app.serve.app import ApiOptions, create_server

        self.app = create_server(services, ApiOptions(**options))
        self.api = self.app.state.gar_api
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive(), "the API server started")
        assert self.server.started, "the API server did not start"

    def client(self, api_key: str = "unused", **kwargs):
        import openai

        return openai.OpenAI(base_url=self.url, api_key=api_key, max_retries=0, **kwargs)

    def stats(self) -> dict:
        import httpx

        return httpx.get(f"{self.url}/stats", headers=self.headers()).json()

    def headers(self) -> dict:
        key = self.api.options.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.api.close()


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image_part(array_or_url) -> dict:
    url = array_or_url if isinstance(array_or_url, str) else data_url(png_bytes(array_or_url))
    return {"type": "image_url", "image_url": {"url": url}}


def rle_part(index: int, mask: np.ndarray) -> dict:
    from gar_app.rle import mask_to_rle

    return {"type": "region", "tag": f"<Prompt{index}>", "mask": mask_to_rle(mask)}


def text_part(text: str) -> dict:
    return {"type": "text", "text": text}


def noise_image(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def box_mask(shape: tuple[int, int], y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


class RectangleSegmenter(Segmenter):
    """A predictable stand-in for SAM: a box's mask is the box itself (GrabCut starts its
    colour models from random k-means seeds, so a test cannot recompute its masks)."""

    name = "rectangle"

    def _set_rgb(self, rgb: np.ndarray) -> None:
        self._shape = rgb.shape[:2]

    def _segment(self, prompt) -> SegmentResult:
        x1, y1, x2, y2 = (int(round(v)) for v in prompt.box)
        return SegmentResult(box_mask(self._shape, y1, y2, x1, x2), 1.0)
