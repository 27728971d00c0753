"""Tiny random GAR checkpoints in the published layout, for tests and benchmarks.

The folder looks like a real GAR release (config.json with ``model_type: "GAR"``,
model.safetensors with ``mllm.*`` and ``mask_patch_embedding.weight``, a byte-level BPE
tokenizer with Llama-3-style special tokens plus ``<PromptN>`` / ``<NO_Prompt>``, a chat
template and PerceptionLM's image-processor config), so it loads through ``load_gar`` like
a real one. Only the sizes are small; tiling (448 px tiles, 16x16 tokens each) is real.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PerceptionLMImageProcessor, PreTrainedTokenizerFast

from gar_app.model.configuration import GarConfig
from gar_app.model.modeling import GarForConditionalGeneration

CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages -%}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- for content in message['content'] | selectattr('type', 'equalto', 'image') -%}"
    "{{ '<|image|>' }}"
    "{%- endfor -%}"
    "{%- for content in message['content'] | selectattr('type', 'equalto', 'text') -%}"
    "{{- content['text'] | trim }}"
    "{%- endfor -%}"
    "{{- '<|eot_id|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif -%}"
)

_CORPUS = [
    "A bright green frog-shaped slipper with a smooth, rounded body and a wide open mouth.",
    "A medium-sized dog with a tan coat, white markings and a red collar is leaping forward.",
    "The person on the left is swinging a bat and is about to hit the ball.",
    "A red car is parked beside a blue door under a window with white frames.",
    "Which region is in the mirror? Answer with the correct option's letter directly.",
    "The cat sits on the wooden table next to a glass of water and a small plant.",
]


def _ascii_byte_alphabet() -> list[str]:
    """Byte-level BPE symbols of printable ASCII, space, tab and newline (GPT-2's byte mapping).

    Without bytes >= 128 and control bytes, every token decodes to plain readable text, so a
    random model's answers stream as visible pieces instead of broken UTF-8.
    """
    printable = set(range(ord("!"), ord("~") + 1))
    mapped = {}
    shifted = 0
    for byte in range(256):  # non-printable bytes map to 256, 257, ... in byte order
        if byte in printable or 161 <= byte <= 172 or 174 <= byte <= 255:
            mapped[byte] = chr(byte)
        else:
            mapped[byte] = chr(256 + shifted)
            shifted += 1
    keep = sorted(printable | {ord(" "), ord("\t"), ord("\n")})
    return [mapped[byte] for byte in keep]


def _tokenizer(prompt_numbers: int, base_vocab: int) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=base_vocab, initial_alphabet=_ascii_byte_alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer)
    reserved = [f"<|reserved_special_token_{k + 2}|>" for k in range(prompt_numbers)]
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|image|>", "<|video|>", *reserved]
    specials += ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tokenizer.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|end_of_text|>",
    )
    fast.add_tokens([f"<Prompt{k}>" for k in range(prompt_numbers)] + ["<NO_Prompt>"])
    fast.chat_template = CHAT_TEMPLATE
    return fast


# Sizes of the random checkpoints: "tiny" for tests; "gar-1b" / "gar-8b" for speed
# measurements at the real sizes (Perception-LM-1B: PE-Core-L/14 tower, Llama-3.2-1B, 11,520
# tokens of context; Perception-LM-8B: a PE-G/14 tower, Llama-3.1-8B).
PRESETS = {
    "tiny": {
        "architecture": "vit_pe_core_large_patch14_336",
        "vision": {"embed_dim": 32, "depth": 2, "num_heads": 2},
        "text": {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 16384,
        },
        "vocab": 0,
        "cls_token": True,
    },
    "gar-1b": {
        "architecture": "vit_pe_core_large_patch14_336",
        "vision": {"embed_dim": 1024, "depth": 23, "num_heads": 16},
        "text": {
            "hidden_size": 2048,
            "intermediate_size": 8192,
            "num_hidden_layers": 16,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "max_position_embeddings": 11520,
        },
        "vocab": 128256,  # Llama 3's vocabulary; the tiny tokenizer only names a few hundred ids
        "cls_token": True,
    },
    "gar-8b": {
        "architecture": "vit_pe_core_gigantic_patch14_448",
        "vision": {"embed_dim": 1536, "depth": 47, "num_heads": 16, "mlp_ratio": 8960 / 1536},
        "text": {
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "max_position_embeddings": 11520,
        },
        "vocab": 128256,
        "cls_token": False,
    },
}


def random_config(tokenizer: PreTrainedTokenizerFast, prompt_numbers: int, preset: str = "tiny") -> GarConfig:
    sizes = PRESETS[preset]
    crop_ids = tokenizer.convert_tokens_to_ids(
        [f"<|reserved_special_token_{k + 2}|>" for k in range(prompt_numbers)]
    )
    return GarConfig(
        mllm_config={
            "vision_config": {
                "architecture": sizes["architecture"],
                "model_args": {
                    **sizes["vision"],
                    "img_size": [448, 448],
                    "ref_feat_shape": [32, 32],
                    "global_pool": "",
                    "use_post_transformer_norm": False,
                    "init_values": 0.1,
                },
            },
            "text_config": {
                "model_type": "llama",
                **sizes["text"],
                "vocab_size": max(len(tokenizer), sizes["vocab"] + prompt_numbers + 1),
                "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
                "tie_word_embeddings": False,
                "bos_token_id": tokenizer.bos_token_id,
                "eos_token_id": tokenizer.eos_token_id,
            },
            "projector_pooling_ratio": 2,
            "vision_use_cls_token": sizes["cls_token"],
            "image_token_id": tokenizer.convert_tokens_to_ids("<|image|>"),
            "video_token_id": tokenizer.convert_tokens_to_ids("<|video|>"),
            "tie_word_embeddings": False,
        },
        prompt_numbers=prompt_numbers,
        crop_tokens_ids=crop_ids,
    )


def _random_model(config: GarConfig, seed: int, preset: str, device: str) -> GarForConditionalGeneration:
    torch.manual_seed(seed)
    with torch.device(device):
        model = GarForConditionalGeneration(config)
    # logits spread enough that greedy decoding varies from token to token and does not hinge
    # on rounding (an untrained head of the usual scale makes every token nearly equally likely)
    with torch.no_grad():
        model.mllm.lm_head.weight.normal_(0.0, 0.5 if preset == "tiny" else 0.05)
    return model


def random_gar(
    preset: str = "gar-1b",
    seed: int = 0,
    prompt_numbers: int = 5,
    device: str = "cpu",
    dtype: torch.dtype = torch.bfloat16,
    decode: str = "auto",
):
    """A random GAR of ``preset``'s size built in memory, without writing a checkpoint.

    For benchmarks of sizes whose checkpoint would take minutes to write and read back
    (GAR-8B: ~20 GB); ``write_tiny_gar`` + ``load_gar`` is the path real checkpoints take.
    """
    from gar_app.model.image_processing import GarImageProcessor
    from gar_app.model.loading import Gar, attention_backend
    from gar_app.model.processing import GarProcessor

    tokenizer = _tokenizer(prompt_numbers, base_vocab=384)
    config = random_config(tokenizer, prompt_numbers, preset)
    config.mllm_config._attn_implementation = attention_backend(device)
    model = _random_model(config, seed, preset, device).to(dtype).eval()
    image_processor = GarImageProcessor(vision_input_type="thumb+tile", tile_size=448, max_num_tiles=36)
    processor = GarProcessor(tokenizer, image_processor, CHAT_TEMPLATE, config, model.tokens_per_side**2)
    return Gar(model, processor, model_id=f"random {preset}", decode=decode)


def write_tiny_gar(
    out_dir: str | Path,
    seed: int = 0,
    prompt_numbers: int = 5,
    max_num_tiles: int = 36,
    preset: str = "tiny",
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> Path:
    """Write a seeded random GAR checkpoint to ``out_dir`` (about 1 MB for "tiny").

    ``max_num_tiles`` is PerceptionLM's (36); tests lower it to keep the tiny ViT quick.
    ``preset="gar-1b"`` gives GAR-1B's real sizes (about 2.4 GB in bf16) for benchmarks.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(prompt_numbers, base_vocab=384)
    config = random_config(tokenizer, prompt_numbers, preset)
    model = _random_model(config, seed, preset, device)
    state = {key: tensor.detach().to("cpu", dtype).contiguous() for key, tensor in model.state_dict().items()}
    del model
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    PerceptionLMImageProcessor(
        vision_input_type="thumb+tile", tile_size=448, max_num_tiles=max_num_tiles
    ).save_pretrained(out)
    return out
