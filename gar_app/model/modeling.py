"""GAR = PerceptionLM + a mask patch embedding + RoI-aligned feature replay.

The PerceptionLM parts (timm PE vision tower, projector, Llama) are transformers' own
``PerceptionLMForConditionalGeneration``; this module only adds what GAR adds, so the
weights keep the published layout (``mllm.*`` and ``mask_patch_embedding.weight``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torchvision.ops import roi_align
from transformers import PerceptionLMForConditionalGeneration

from gar_app.model.configuration import GarConfig

Box = tuple[float, float, float, float]


class GarForConditionalGeneration(nn.Module):
    """The GAR network. Prompt building and tiling live in ``processing``; token choice and streaming in ``tokens``, chats in ``chat``."""

    def __init__(self, config: GarConfig):
        super().__init__()
        self.config = config
        self.mllm = PerceptionLMForConditionalGeneration(config.mllm_config)
        tower = self.vision_tower
        self.mask_patch_embedding = nn.Conv2d(
            3,
            tower.embed_dim,
            kernel_size=tower.patch_embed.patch_size,
            stride=tower.patch_embed.patch_size,
            bias=False,
        )

    @property
    def vision_tower(self) -> nn.Module:
        return self.mllm.model.vision_tower.timm_model

    @property
    def device(self) -> torch.device:
        return self.mask_patch_embedding.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.mask_patch_embedding.weight.dtype

    @property
    def patch_size(self) -> int:
        return int(self.vision_tower.patch_embed.patch_size[0])

    @property
    def tokens_per_side(self) -> int:
        """Side of one tile's token grid after pooling (448 / 14 / 2 = 16 for the released models)."""
        tile = int(self.vision_tower.patch_embed.img_size[0])
        return tile // self.patch_size // self.config.pooling_ratio

    # -- vision -------------------------------------------------------------------------

    def region_pixels(self, prompt_values: torch.Tensor) -> torch.Tensor:
        """Binary "inside some referenced region" map from the normalised visual-prompt tiles.

        The processor stores region ids as pixel values normalised like an image; recover
        the ids, clamp to [0, P], and everything that is not ``<NO_Prompt>`` (P) is inside.
        """
        none_id = self.config.prompt_numbers
        ids = torch.round((prompt_values.float() + 1.0) / 2.0 * 255.0).clamp(0, none_id)
        return (ids != none_id).to(self.dtype)

    @contextmanager
    def _patch_embeddings_plus(self, extra: torch.Tensor | None) -> Iterator[None]:
        """Add ``extra`` to the ViT patch embeddings, before position embedding and blocks."""
        if extra is None:
            yield
            return
        handle = self.vision_tower.patch_embed.register_forward_hook(lambda _m, _i, out: out + extra)
        try:
            yield
        finally:
            handle.remove()

    @torch.no_grad()
    def encode_image(self, pixel_values: torch.Tensor, prompt_values: torch.Tensor | None) -> torch.Tensor:
        """Projected image features, one row of ``tokens_per_side**2`` per tile (thumbnail first).

        ``pixel_values`` and ``prompt_values`` are (tiles, 3, S, S). With ``prompt_values``
        the mask patch embedding of the region map is added to every tile's patch
        embeddings; with no region at all the map is empty and the features are exactly
        PerceptionLM's.
        """
        pixel_values = pixel_values.to(self.device, self.dtype)
        extra = None
        if prompt_values is not None:
            inside = self.region_pixels(prompt_values.to(self.device))
            extra = self.mask_patch_embedding(inside).flatten(2).transpose(1, 2)
        with self._patch_embeddings_plus(extra):
            outputs = self.mllm.model.get_image_features(
                pixel_values=pixel_values.unsqueeze(0), return_dict=True
            )
        return outputs.pooler_output

    def feature_map(self, image_features: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Stitch the tiles (thumbnail dropped) row-major into one (1, C, side*rows, side*cols) map."""
        cols, rows = grid
        side = self.tokens_per_side
        tiles = image_features[1:]
        if tiles.shape[0] != cols * rows:
            raise ValueError(f"expected {cols * rows} tiles for a {cols}x{rows} grid, got {tiles.shape[0]}")
        channels = tiles.shape[-1]
        tiles = tiles.reshape(rows, cols, side, side, channels)
        return tiles.permute(4, 0, 2, 1, 3).reshape(1, channels, rows * side, cols * side).float()

    def replay_region(self, feature_map: torch.Tensor, box: Box) -> torch.Tensor:
        """RoI-align one region's features: (side*side, C), row-major.

        ``box`` is the region's own mask box in normalised image coordinates. It is scaled
        to the map, and - as in the released GAR training and inference code, which the
        published weights were trained with - ``roi_align`` is also given the map/pixel
        ``spatial_scale`` (1 / (patch * pooling) = 1/28), so the box is scaled twice.
        """
        _, _, height, width = feature_map.shape
        x1, y1, x2, y2 = box
        roi = torch.tensor(
            [[0.0, x1 * width, y1 * height, x2 * width, y2 * height]],
            dtype=torch.float32,
            device=feature_map.device,
        )
        side = self.tokens_per_side
        pooled = roi_align(
            feature_map.float(),
            roi,
            output_size=(side, side),
            spatial_scale=1.0 / (self.patch_size * self.config.pooling_ratio),
            sampling_ratio=2,
            aligned=True,
        )
        return pooled[0].permute(1, 2, 0).reshape(side * side, -1)

    # -- text ---------------------------------------------------------------------------

    @torch.no_grad()
    def embed(
        self,
        input_ids: torch.Tensor,
        image_features: torch.Tensor | None = None,
        feature_map: torch.Tensor | None = None,
        region_boxes: dict[int, Box] | None = None,
    ) -> torch.Tensor:
        """Token embeddings with image features in the image placeholders and each region's
        replayed features in its crop-token run. ``input_ids`` is (1, L)."""
        input_ids = input_ids.to(self.device)
        embeds = self.mllm.get_input_embeddings()(input_ids)
        if image_features is not None:
            slots = input_ids == self.config.image_token_id
            features = image_features.reshape(-1, embeds.shape[-1])
            if int(slots.sum()) != features.shape[0]:
                raise ValueError(
                    f"{int(slots.sum())} image placeholders for {features.shape[0]} image features"
                )
            embeds[slots] = features.to(embeds.dtype)
        for index, box in (region_boxes or {}).items():
            slots = input_ids == self.config.crop_tokens_ids[index]
            count = int(slots.sum())
            if count == 0:
                continue
            if feature_map is None:
                raise ValueError("region features requested without an encoded image")
            replayed = self.replay_region(feature_map, box)
            if count != replayed.shape[0]:
                raise ValueError(f"region {index} has {count} placeholders, expected {replayed.shape[0]}")
            embeds[slots] = replayed.to(embeds.dtype)
        return embeds

    def forward(self, inputs_embeds: torch.Tensor, cache=None, logits_to_keep: int = 0):
        """One language-model step over embeddings, extending ``cache`` in place."""
        return self.mllm(
            inputs_embeds=inputs_embeds, cache=cache, use_cache=True, logits_to_keep=logits_to_keep
        )
