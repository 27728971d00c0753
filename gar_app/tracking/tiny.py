"""Random SAM 2 video checkpoints that load with ``from_pretrained``, for tests and benchmarks.

``tiny`` is a 128 px model with a two-stage-deep Hiera and 128-wide heads (about 1.3 M
parameters, milliseconds a frame on a CPU); ``hiera-tiny`` has the sizes of the released
``facebook/sam2.1-hiera-tiny`` (transformers' ``Sam2VideoConfig`` defaults) with random
weights, for measuring speed. Both are written with transformers' own config, model and
processor classes, so loading them is exactly the path of a real checkpoint. Their masks
mean nothing; shapes, frame indices and plumbing are real. The object-score head's last
bias is raised so the random model reports the object as present and masks flow.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gar_app.errors import InputError

SIZES = ("tiny", "hiera-tiny")
_TINY_SIDE = 128


def tiny_config(size: str = "tiny"):
    from transformers import Sam2HieraDetConfig, Sam2VideoConfig, Sam2VisionConfig

    if size == "hiera-tiny":
        return Sam2VideoConfig()
    if size != "tiny":
        raise InputError(f"unknown SAM 2 size {size!r}; use one of {', '.join(SIZES)}")
    side, width = _TINY_SIDE, 128  # the heads must be wider than the 64-channel memory
    backbone = Sam2HieraDetConfig(
        hidden_size=16,
        num_attention_heads=1,
        image_size=[side, side],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[16, 32, 64, 128],
        num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[4, 4, 4, 4],
        global_attention_blocks=[3],
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[128, 64, 32, 16],
        backbone_feature_sizes=[[side // 4] * 2, [side // 8] * 2, [side // 16] * 2],
        fpn_hidden_size=width,
    )
    return Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config={"hidden_size": width, "image_size": side, "patch_size": 16},
        mask_decoder_config={
            "hidden_size": width,
            "mlp_dim": 64,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": width,
        },
        image_size=side,
        memory_attention_hidden_size=width,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=[side // 16] * 2,
        memory_encoder_hidden_size=width,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=width,
        memory_fuser_embed_dim=width,
        memory_fuser_intermediate_dim=64,
        memory_fuser_num_layers=1,
    )


def tiny_processor(size: str = "tiny"):
    from transformers import Sam2VideoProcessor
    from transformers.models.sam2.image_processing_sam2 import Sam2ImageProcessor
    from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor

    side = 1024 if size == "hiera-tiny" else _TINY_SIDE
    return Sam2VideoProcessor(
        image_processor=Sam2ImageProcessor(
            size={"height": side, "width": side}, mask_size={"height": side // 4, "width": side // 4}
        ),
        video_processor=Sam2VideoVideoProcessor(size={"height": side, "width": side}),
        target_size=side,
    )


def build_tiny_sam2(size: str = "tiny", seed: int = 0):
    """A random ``Sam2VideoModel`` of ``size`` (same seed, same weights), in memory."""
    from transformers import Sam2VideoModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam2VideoModel(tiny_config(size)).eval()
    with torch.no_grad():
        model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(4.0)  # "present", so masks flow
    return model


def write_tiny_sam2(folder: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Save a random SAM 2 video checkpoint (config, weights, processor) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    build_tiny_sam2(size, seed).save_pretrained(folder)
    tiny_processor(size).save_pretrained(folder)
    return folder
