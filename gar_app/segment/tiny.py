"""A tiny random SAM checkpoint, so tests exercise the real loading and prediction code.

It is built from segment-anything's own modules with the real 1024 px input (which
``ResizeLongestSide`` and the prompt encoder assume) but a 64 px patch, 32-wide two-block
encoder and a 32-wide decoder: it runs in milliseconds on a CPU. Its file is an ordinary
state dict; ``load_sam`` reads its sizes from the tensor shapes like any real checkpoint.
Its masks are meaningless (random weights); only shapes, plumbing and caching are real.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gar_app.segment.sam_checkpoint import SamConfig, build_sam

TINY_CONFIG = SamConfig(
    encoder_embed_dim=32,
    encoder_depth=2,
    encoder_num_heads=2,
    encoder_global_attn_indexes=(1,),
    window_size=4,
    patch_size=64,
    prompt_embed_dim=32,
    decoder_mlp_dim=64,
    iou_head_hidden_dim=32,
)


def write_tiny_sam(path: str | Path, seed: int = 0) -> Path:
    """Save a random tiny SAM state dict at ``path`` (same seed, same weights) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_sam(TINY_CONFIG)
        for name, tensor in model.state_dict().items():
            if "rel_pos" in name:  # zero-initialised by SAM; make them matter like trained ones
                tensor.normal_(0.0, 0.02)
        torch.save(model.state_dict(), path)
    return path
