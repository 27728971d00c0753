"""PerceptionLM's image processor with the resize kernel the released GAR used.

transformers 5 resizes with torchvision's v2 API: its native uint8 bicubic kernel rounds
differently from the float path (pixels up to 8/255 apart), and it turns PIL's NEAREST
into ``nearest-exact``, which samples half a pixel away from torch's legacy ``nearest``.
The released GAR processor resized with torchvision's v1 functional API: uint8 -> float,
bicubic with antialias, clamp, round back to uint8; and a PIL NEAREST meant legacy
``nearest``. ``GarImageProcessor`` keeps everything else of PerceptionLM's processor (tile
grid choice, thumbnail, tiling, rescale and normalise) and swaps only that kernel.
"""

from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as v1
from transformers import PerceptionLMImageProcessor
from transformers.image_processing_backends import TorchvisionBackend
from transformers.image_utils import SizeDict

from gar_app.errors import CheckpointError

# How the visual-prompt map is resampled: one named setting. Legacy nearest is what the
# released inference processor does; a checkpoint may name another in its processor config.
MAP_RESAMPLE_KEY = "visual_prompt_resample"
DEFAULT_MAP_RESAMPLE = "nearest"
_PIL_CODES = {0: InterpolationMode.NEAREST, 2: InterpolationMode.BILINEAR, 3: InterpolationMode.BICUBIC}


def map_resampling(value: str | int | None) -> InterpolationMode:
    """The map's resampling from a config value: a torchvision mode name ("nearest",
    "nearest-exact", "bilinear", "bicubic") or a PIL code (0 nearest, 2 bilinear, 3 bicubic)."""
    if value is None:
        value = DEFAULT_MAP_RESAMPLE
    if isinstance(value, int) and not isinstance(value, bool) and value in _PIL_CODES:
        return _PIL_CODES[value]
    try:
        mode = InterpolationMode(value)
    except ValueError:
        mode = None
    if mode not in _PIL_CODES.values() and mode is not InterpolationMode.NEAREST_EXACT:
        raise CheckpointError(
            f"{MAP_RESAMPLE_KEY} must be nearest, nearest-exact, bilinear or bicubic (or 0, 2, 3), not {value!r}"
        )
    return mode


class _TorchvisionV1Resize(TorchvisionBackend):
    """The backend's ``resize`` done by torchvision's v1 functional API (see the module doc)."""

    def resize(self, image: torch.Tensor, size: SizeDict, resample=None, antialias: bool = True, **kwargs):
        # v1 reads a PIL code (PILImageResampling is an int) itself: NEAREST -> legacy nearest.
        interpolation = InterpolationMode.BILINEAR if resample is None else resample
        return v1.resize(image, [size.height, size.width], interpolation=interpolation, antialias=antialias)


class GarImageProcessor(PerceptionLMImageProcessor, _TorchvisionV1Resize):
    """PerceptionLM's image processor whose pixel resize is torchvision v1's.

    PerceptionLM's ``resize`` picks the tile grid and then calls the backend's ``resize``
    (``super().resize``); listing ``_TorchvisionV1Resize`` after it in the bases puts the v1
    kernel exactly there, so the grid, thumbnail and normalisation stay transformers' own.
    """

    def tile_grid(self, width: int, height: int) -> tuple[int, int]:
        """(columns, rows) of tiles PerceptionLM's ``resize`` picks for a ``width`` x ``height``
        image; asked with an empty batch of that size, so no pixel is resized."""
        if self.vision_input_type != "thumb+tile":
            return (1, 1)
        empty = torch.empty((0, 3, height, width), dtype=torch.uint8)
        _, grid = self.resize(empty, self.tile_size, max_num_tiles=self.max_num_tiles)
        return int(grid[0]), int(grid[1])
