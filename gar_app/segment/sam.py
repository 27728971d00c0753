"""SAM behind the predictor-style interface, with image embeddings kept between clicks.

The image encoder is the expensive part (seconds for ViT-H on a CPU); the prompt encoder
and mask decoder take milliseconds. So an image's embedding is computed once and kept in
a small LRU keyed by the sha1 of its pixels: every later click, and going back to a recent
image, only runs the decoder. ``embeddings_computed`` counts encoder runs so tests and
benchmarks can prove it.

How marks become SAM prompts:
- points and labels go in as they are, a box as SAM's box prompt, both together if given;
- an open scribble becomes up to 8 positive points spread along the stroke;
- a closed scribble (lasso) becomes its bounding box plus a low-resolution mask prompt of
  its inside, and the mask is kept inside the lasso;
- one lone click is ambiguous (part, object, group), so SAM gives three masks and the one
  with the best predicted IoU is returned; with more marks SAM's single-mask output is
  used, as its authors recommend (``multimask`` overrides this).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from gar_app.errors import InputError
from gar_app.segment.base import CheckedPrompt, Segmenter, SegmentResult
from gar_app.segment.sampling import spread_points

MASK_PROMPT_LOGIT = 10.0  # magnitude of the lasso's mask-prompt logits (SAM's own are ~±10..20)


@dataclass(frozen=True)
class _Embedding:
    features: torch.Tensor  # (1, C, h, w)
    input_size: tuple[int, int]  # the resized image inside the 1024 square, (H, W)
    original_size: tuple[int, int]  # (H, W)


class SamSegmenter(Segmenter):
    """A loaded ``segment_anything`` SAM; ``cache_size`` images keep their embeddings."""

    def __init__(
        self,
        model: Sam,
        name: str = "SAM",
        cache_size: int = 4,
        multimask: bool | None = None,
        half: bool | None = None,
    ):
        super().__init__()
        self.model = model.eval()
        self.name = name
        self.cache_size = max(1, cache_size)
        self.multimask = multimask
        self.transform = ResizeLongestSide(model.image_encoder.img_size)
        # The image encoder (all of SAM's heavy compute) runs in bfloat16 on CUDA: ~2-3x faster,
        # and its output goes on in float32, so the light prompt decoder stays exact.
        self.half = self.device.type == "cuda" if half is None else half
        self.embeddings_computed = 0
        self._cache: OrderedDict[str, _Embedding] = OrderedDict()
        self._current: _Embedding | None = None
        self._lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        return self.model.device

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def _set_rgb(self, rgb: np.ndarray) -> None:
        digest = hashlib.sha1(repr(rgb.shape).encode())
        digest.update(memoryview(rgb).cast("B"))
        key = digest.hexdigest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
            else:
                self._cache[key] = self._embed(rgb)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            self._current = self._cache[key]

    @torch.inference_mode()
    def _embed(self, rgb: np.ndarray) -> _Embedding:
        resized = self.transform.apply_image(rgb)
        image = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.half):
            features = self.model.image_encoder(self.model.preprocess(image.float()))
        features = features.float()
        self.embeddings_computed += 1
        return _Embedding(features, tuple(image.shape[-2:]), tuple(rgb.shape[:2]))

    def _mask_prompt(self, region: np.ndarray, embedding: _Embedding) -> torch.Tensor:
        """A boolean image-sized region as SAM's low-res mask prompt (1, 1, 256, 256 for SAM)."""
        h, w = embedding.input_size
        size = self.model.image_encoder.img_size
        square = np.zeros((size, size), np.float32)
        square[:h, :w] = cv2.resize(region.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        low = self.model.prompt_encoder.mask_input_size
        small = cv2.resize(square, (low[1], low[0]), interpolation=cv2.INTER_AREA)
        logits = (small * 2.0 - 1.0) * MASK_PROMPT_LOGIT
        return torch.as_tensor(logits, device=self.device)[None, None]

    @torch.inference_mode()
    def _segment(self, prompt: CheckedPrompt) -> SegmentResult:
        with self._lock:
            embedding = self._current
            if embedding is None or embedding.original_size != (prompt.height, prompt.width):
                raise InputError("no image loaded yet: call set_image(image) before segmenting")
            points, labels = prompt.points, prompt.labels
            box, mask_input = prompt.box, None
            if prompt.lasso is not None:
                ys, xs = np.nonzero(prompt.lasso)
                if box is None:
                    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
                mask_input = self._mask_prompt(prompt.lasso, embedding)
            elif prompt.stroke is not None:
                extra = spread_points(prompt.stroke) + 0.5  # pixel centres
                points = np.concatenate([points, extra])
                labels = np.concatenate([labels, np.ones(len(extra), np.int64)])
            multimask = self.multimask
            if multimask is None:
                multimask = len(points) == 1 and box is None and mask_input is None
            mask, score = self._decode(embedding, points, labels, box, mask_input, multimask)
            if prompt.lasso is not None:
                mask &= prompt.lasso
            return SegmentResult(mask, score)

    def _decode(self, embedding: _Embedding, points, labels, box, mask_input, multimask: bool):
        """Run prompt encoder + mask decoder; upscale only the best mask to the image size and
        threshold it where it was computed, so a click moves a boolean mask, not float logits."""
        size = embedding.original_size
        point_prompt = box_prompt = None
        if len(points):
            coords = self.transform.apply_coords(np.asarray(points, np.float64), size)
            point_prompt = (
                torch.as_tensor(coords, dtype=torch.float, device=self.device)[None],
                torch.as_tensor(labels, dtype=torch.int, device=self.device)[None],
            )
        if box is not None:
            scaled = self.transform.apply_boxes(np.asarray(box, np.float64)[None], size)
            box_prompt = torch.as_tensor(scaled, dtype=torch.float, device=self.device)
        sparse, dense = self.model.prompt_encoder(points=point_prompt, boxes=box_prompt, masks=mask_input)
        low_res, iou = self.model.mask_decoder(
            image_embeddings=embedding.features,
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )
        best = int(torch.argmax(iou[0]))
        upscaled = self.model.postprocess_masks(low_res[:, best : best + 1], embedding.input_size, size)
        mask = upscaled[0, 0] > self.model.mask_threshold
        return mask.cpu().numpy(), float(iou[0, best])
