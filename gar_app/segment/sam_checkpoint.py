"""Reading a SAM checkpoint into segment-anything's own modules, whatever its size.

A SAM ``.pth`` file is a bare state dict: it does not say whether it is ViT-B, -L or -H.
Every size that matters can be read off the tensor shapes (the patch embedding gives
width and patch size, the relative-position tables give head width, window size and
which blocks attend globally, ...), so one loader handles the released checkpoints with
the registry's exact sizes *and* the tiny random checkpoint the tests build. The one
number weights cannot show, the mask decoder's head count, is SAM's fixed 8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from gar_app.errors import CheckpointError

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class SamConfig:
    """The sizes segment-anything's ``_build_sam`` fixes, made explicit so any size can be built."""

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    window_size: int = 14
    patch_size: int = 16
    image_size: int = 1024
    mlp_ratio: float = 4.0
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256

    @property
    def model_type(self) -> str:
        """``vit_b`` / ``vit_l`` / ``vit_h`` for the released sizes, else ``custom``."""
        return next((name for name, config in REGISTRY.items() if config == self), "custom")

    def describe(self) -> str:
        if self.model_type != "custom":
            return self.model_type
        return f"custom ViT width {self.encoder_embed_dim} depth {self.encoder_depth}"


# The sizes of segment_anything.build_sam's registry (checked against it in the tests).
REGISTRY = {
    "vit_b": SamConfig(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamConfig(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamConfig(1280, 32, 16, (7, 15, 23, 31)),
}


def build_sam(config: SamConfig) -> Sam:
    """A randomly initialised SAM of the given sizes, from segment-anything's modules."""
    grid = config.image_size // config.patch_size
    dim = config.prompt_embed_dim
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=config.encoder_depth,
            embed_dim=config.encoder_embed_dim,
            img_size=config.image_size,
            mlp_ratio=config.mlp_ratio,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=config.encoder_num_heads,
            patch_size=config.patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=config.encoder_global_attn_indexes,
            window_size=config.window_size,
            out_chans=dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(grid, grid),
            input_image_size=(config.image_size, config.image_size),
            mask_in_chans=config.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=config.num_multimask_outputs,
            transformer=TwoWayTransformer(
                depth=config.decoder_depth,
                embedding_dim=dim,
                mlp_dim=config.decoder_mlp_dim,
                num_heads=config.decoder_num_heads,
            ),
            transformer_dim=dim,
            iou_head_depth=config.iou_head_depth,
            iou_head_hidden_dim=config.iou_head_hidden_dim,
        ),
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
    )
    return sam.eval()


def _count(state: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for key in state if (m := pattern.match(key))}
    return max(found) + 1 if found else 0


def infer_config(state: dict[str, torch.Tensor]) -> SamConfig:
    """Read every size of a SAM from its state dict's tensor shapes."""
    try:
        embed_dim, _, patch, _ = state["image_encoder.patch_embed.proj.weight"].shape
        grid = state["image_encoder.pos_embed"].shape[1]
        depth = _count(state, "image_encoder.blocks.")
        rel = [state[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape for i in range(depth)]
        global_blocks = tuple(i for i, shape in enumerate(rel) if shape[0] == 2 * grid - 1)
        windows = {(shape[0] + 1) // 2 for i, shape in enumerate(rel) if i not in global_blocks}
        mlp_hidden = state["image_encoder.blocks.0.mlp.lin1.weight"].shape[0]
        return SamConfig(
            encoder_embed_dim=embed_dim,
            encoder_depth=depth,
            encoder_num_heads=embed_dim // rel[0][1],
            encoder_global_attn_indexes=global_blocks,
            window_size=windows.pop() if len(windows) == 1 else 14,
            patch_size=patch,
            image_size=grid * patch,
            mlp_ratio=mlp_hidden / embed_dim,
            prompt_embed_dim=state["image_encoder.neck.0.weight"].shape[0],
            mask_in_chans=state["prompt_encoder.mask_downscaling.3.weight"].shape[0],
            decoder_depth=_count(state, "mask_decoder.transformer.layers."),
            decoder_mlp_dim=state["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0],
            num_multimask_outputs=state["mask_decoder.mask_tokens.weight"].shape[0] - 1,
            iou_head_depth=_count(state, "mask_decoder.iou_prediction_head.layers."),
            iou_head_hidden_dim=state["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0],
        )
    except (KeyError, IndexError, ZeroDivisionError) as error:
        raise CheckpointError(f"not a SAM checkpoint (missing or odd weight {error})") from None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"SAM checkpoint not found: {path}")
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) torch files cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a bad file
        raise CheckpointError(f"cannot read SAM checkpoint {path.name}: {error}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # re-saved training checkpoints wrap the weights
    if not isinstance(state, dict):
        raise CheckpointError(f"{path.name} is not a SAM state dict")
    return state


def load_sam(path: str | Path, model_type: str | None = None, device: str = "cpu") -> tuple[Sam, SamConfig]:
    """Build SAM from a checkpoint file; ``model_type``, when given, must match the weights."""
    state = read_state_dict(path)
    config = infer_config(state)
    if model_type is not None:
        if model_type not in REGISTRY:
            raise CheckpointError(f"unknown SAM model type {model_type!r}; use one of {', '.join(REGISTRY)}")
        if config != REGISTRY[model_type]:
            raise CheckpointError(f"{Path(path).name} holds a {config.describe()} SAM, not {model_type}")
    with torch.device("meta"):  # no time spent on a random init the checkpoint overwrites
        sam = build_sam(config)
    try:
        sam.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise CheckpointError(f"{Path(path).name} does not fit SAM {config.describe()}: {error}") from None
    # The normalisation buffers are not saved in checkpoints; make them real again.
    sam.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), False)
    sam.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), False)
    return sam.to(device=device, dtype=torch.float32).eval(), config
