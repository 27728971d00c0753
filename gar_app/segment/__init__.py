"""Prompts to masks: SAM when weights are available, GrabCut when they are not.

``load_segmenter`` picks the backend; every segmenter has a ``name`` saying which one is
in use (the CLI and the app show it), ``set_image(image)`` once, then
``segment(points, labels, box, scribble) -> SegmentResult(mask, score)`` per click.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from gar_app.devices import default_device
from gar_app.errors import CheckpointError
from gar_app.segment.base import CheckedPrompt, Prompt, Segmenter, SegmentResult, check_prompt
from gar_app.segment.grabcut import GrabCutSegmenter
from gar_app.segment.weights import ENV_VAR, download_checkpoint, find_checkpoint, sam_cache_dir

if TYPE_CHECKING:
    from gar_app.segment.sam import SamSegmenter
    from gar_app.segment.sam_checkpoint import REGISTRY, SamConfig, build_sam, infer_config, load_sam
    from gar_app.segment.tiny import TINY_CONFIG, write_tiny_sam

# The SAM side needs torch (seconds to import); it loads on first use, so the region set and
# the prompt rules stay cheap to import for the UI and the exporter.
_LAZY = {
    "SamSegmenter": "sam",
    "REGISTRY": "sam_checkpoint",
    "SamConfig": "sam_checkpoint",
    "build_sam": "sam_checkpoint",
    "infer_config": "sam_checkpoint",
    "load_sam": "sam_checkpoint",
    "TINY_CONFIG": "tiny",
    "write_tiny_sam": "tiny",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"gar_app.segment.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'gar_app.segment' has no attribute {name!r}")


__all__ = [
    "ENV_VAR",
    "REGISTRY",
    "TINY_CONFIG",
    "CheckedPrompt",
    "GrabCutSegmenter",
    "Prompt",
    "SamConfig",
    "SamSegmenter",
    "SegmentResult",
    "Segmenter",
    "build_sam",
    "check_prompt",
    "download_checkpoint",
    "find_checkpoint",
    "infer_config",
    "load_sam",
    "load_segmenter",
    "sam_cache_dir",
    "write_tiny_sam",
]


def load_segmenter(
    sam_checkpoint: str | os.PathLike | None = None,
    model_type: str | None = None,
    device: str | None = None,
    allow_download: bool = False,
) -> Segmenter:
    """SAM from ``sam_checkpoint``, ``$GAR_APP_SAM_CHECKPOINT`` or the cache, else GrabCut.

    With ``allow_download`` a missing checkpoint is fetched into the cache first
    (``model_type``, or vit_h on a GPU and vit_b on a CPU); if that fails the GrabCut
    fallback is returned and its name says why. A checkpoint the user names that is
    missing or broken raises ``CheckpointError``.
    """
    path = find_checkpoint(sam_checkpoint, model_type)
    if path is None and not allow_download:
        return GrabCutSegmenter(reason="no SAM weights")  # without importing torch at all
    device = device or default_device()
    if path is None:
        try:
            path = download_checkpoint(model_type or ("vit_h" if device.startswith("cuda") else "vit_b"))
        except CheckpointError as error:
            return GrabCutSegmenter(reason=f"no SAM weights: {error}")
    from gar_app.segment.sam import SamSegmenter
    from gar_app.segment.sam_checkpoint import load_sam

    model, config = load_sam(path, model_type, device)
    return SamSegmenter(model, name=f"SAM {config.describe()} ({path})")
