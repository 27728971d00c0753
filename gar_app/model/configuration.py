"""The GAR checkpoint configuration (``config.json`` with ``model_type: "GAR"``)."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import PerceptionLMConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from gar_app.errors import CheckpointError


@strict
class GarConfig(PreTrainedConfig):
    """PerceptionLM's config plus the two things GAR adds.

    ``prompt_numbers`` is how many regions the checkpoint can tell apart (``<Prompt0>`` ..
    ``<Prompt{P-1}>``); ``crop_tokens_ids[k]`` is the placeholder token whose 256-long run
    receives region k's RoI-aligned features. Keys the published config carries for its own
    remote code (``kernel_size``, ``use_flash_attn``, ``auto_map``...) are kept but unused:
    sizes are read from ``mllm_config`` and the vision tower itself.
    """

    model_type = "GAR"
    sub_configs_defaults = {"mllm_config": SubConfigSpec(config_class=PerceptionLMConfig)}

    mllm_config: dict | PreTrainedConfig | None = None
    prompt_numbers: int = 5
    crop_tokens_ids: list[int] | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.crop_tokens_ids is None or len(self.crop_tokens_ids) < self.prompt_numbers:
            have = 0 if self.crop_tokens_ids is None else len(self.crop_tokens_ids)
            raise CheckpointError(
                f"config.json lists {have} crop_tokens_ids but prompt_numbers is {self.prompt_numbers}; "
                "each region needs its own placeholder token"
            )

    @property
    def image_token_id(self) -> int:
        return self.mllm_config.image_token_id

    @property
    def vision_width(self) -> int:
        return self.mllm_config.vision_config.model_args["embed_dim"]

    @property
    def pooling_ratio(self) -> int:
        return self.mllm_config.projector_pooling_ratio
