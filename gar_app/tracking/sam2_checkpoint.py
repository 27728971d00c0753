"""Loading a SAM 2 (or EdgeTAM) video checkpoint with transformers, by Hub id or folder.

The published SAM 2.1 releases (``facebook/sam2.1-hiera-tiny``, ``-small``, ``-base-plus``,
``-large``) and EdgeTAM load with transformers' own ``Sam2VideoModel`` / ``EdgeTamVideoModel``
and ``Sam2VideoProcessor``; the config's ``model_type`` says which. No remote code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from gar_app.errors import CheckpointError

# model_type -> (model class, inference session class), both from transformers
VIDEO_MODELS = {
    "sam2_video": ("Sam2VideoModel", "Sam2VideoInferenceSession"),
    "edgetam_video": ("EdgeTamVideoModel", "EdgeTamVideoInferenceSession"),
}


@dataclass
class Sam2Checkpoint:
    model: torch.nn.Module
    processor: object  # transformers.Sam2VideoProcessor
    session_class: type
    source: str

    @property
    def kind(self) -> str:
        return "EdgeTAM" if self.model.config.model_type == "edgetam_video" else "SAM 2"


def load_sam2(
    source: str | os.PathLike, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> Sam2Checkpoint:
    """The video model and processor from a checkpoint folder or Hub id, on ``device``."""
    import transformers
    from transformers import AutoConfig, Sam2VideoProcessor
    from transformers.utils import logging as hf_logging

    name = str(source)
    hf_logging.disable_progress_bar()  # the CLI prints its own progress; weights load quietly
    try:
        config = AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"cannot read a SAM 2 checkpoint from {name} ({type(error).__name__}); pass a folder holding "
            f"config.json, or a Hub id such as facebook/sam2.1-hiera-tiny where the Hub is reachable"
        ) from None
    if config.model_type not in VIDEO_MODELS:
        raise CheckpointError(
            f"{name} holds a {config.model_type!r} model, not a SAM 2 video model "
            f"({' or '.join(VIDEO_MODELS)}); the video checkpoints are e.g. facebook/sam2.1-hiera-tiny"
        )
    model_name, session_name = VIDEO_MODELS[config.model_type]
    try:
        model = getattr(transformers, model_name).from_pretrained(name, dtype=dtype)
        processor = Sam2VideoProcessor.from_pretrained(name)
    except (OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"cannot load the SAM 2 checkpoint {name}: {error}") from None
    return Sam2Checkpoint(model.to(device).eval(), processor, getattr(transformers, session_name), name)
