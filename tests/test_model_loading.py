"""Checkpoints: the published layout loads with our code, and a wrong one fails by name."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from gar_app.errors import CheckpointError
from gar_app.model import load_gar
from gar_app.model.loading import resolve_checkpoint


def _logits(gar) -> torch.Tensor:
    ids = torch.arange(3, 40)[None]
    with torch.no_grad():
        return gar.model.mllm(input_ids=ids).logits


def test_published_layout_and_keys(tiny_gar_dir):
    config = json.loads((tiny_gar_dir / "config.json").read_text())
    assert config["model_type"] == "GAR"
    assert {"mllm_config", "prompt_numbers", "crop_tokens_ids"} <= set(config)
    keys = set(load_file(tiny_gar_dir / "model.safetensors"))
    assert "mask_patch_embedding.weight" in keys and "mllm.lm_head.weight" in keys
    prefixes = {
        k.split(".")[0] + "." + k.split(".")[1] + "." + k.split(".")[2]
        for k in keys
        if k.startswith("mllm.model.")
    }
    assert prefixes == {
        "mllm.model.vision_tower",
        "mllm.model.multi_modal_projector",
        "mllm.model.language_model",
    }
    assert all(k.startswith("mllm.model.vision_tower.timm_model.") for k in keys if "vision_tower" in k)


def test_save_load_gives_identical_logits(tiny_gar, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_gar.model_id, copy)
    state = {k: v.contiguous() for k, v in tiny_gar.model.state_dict().items()}
    save_file(state, str(copy / "model.safetensors"))
    reloaded = load_gar(copy, device="cpu", dtype="fp32")
    assert torch.equal(_logits(tiny_gar), _logits(reloaded))


def test_sharded_checkpoint_loads(tiny_gar, tmp_path):
    copy = tmp_path / "sharded"
    shutil.copytree(tiny_gar.model_id, copy)
    state = load_file(copy / "model.safetensors")
    (copy / "model.safetensors").unlink()
    keys = sorted(state)
    halves = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    weight_map = {}
    for name, part in halves.items():
        save_file({k: state[k] for k in part}, str(copy / name))
        weight_map.update(dict.fromkeys(part, name))
    (copy / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert torch.equal(_logits(tiny_gar), _logits(load_gar(copy, device="cpu", dtype="fp32")))


def _edited_checkpoint(source, target, edit) -> None:
    shutil.copytree(source, target)
    state = load_file(target / "model.safetensors")
    edit(state)
    save_file(state, str(target / "model.safetensors"))


def test_missing_weight_is_named(tiny_gar_dir, tmp_path):
    _edited_checkpoint(tiny_gar_dir, tmp_path / "m", lambda s: s.pop("mask_patch_embedding.weight"))
    with pytest.raises(CheckpointError, match=r"missing weights: mask_patch_embedding\.weight"):
        load_gar(tmp_path / "m", device="cpu")


def test_unexpected_weight_is_named(tiny_gar_dir, tmp_path):
    _edited_checkpoint(tiny_gar_dir, tmp_path / "u", lambda s: s.update({"mllm.extra.bias": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match=r"unexpected weights: mllm\.extra\.bias"):
        load_gar(tmp_path / "u", device="cpu")


def test_wrong_shape_is_named(tiny_gar_dir, tmp_path):
    def shrink(state):
        state["mask_patch_embedding.weight"] = state["mask_patch_embedding.weight"][:4]

    _edited_checkpoint(tiny_gar_dir, tmp_path / "s", shrink)
    with pytest.raises(CheckpointError, match=r"mask_patch_embedding\.weight has shape"):
        load_gar(tmp_path / "s", device="cpu")


def test_dtype_option(tiny_gar_dir):
    gar = load_gar(tiny_gar_dir, device="cpu", dtype="bf16")
    assert gar.model.dtype == torch.bfloat16
    assert gar.model.mllm.model.language_model.embed_tokens.weight.dtype == torch.bfloat16


def test_unreachable_hub_id_says_how_to_use_a_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match=r"cannot fetch nobody/no-such-gar .*--model DIR"):
        resolve_checkpoint("nobody/no-such-gar")


def test_not_a_checkpoint_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        resolve_checkpoint(tmp_path / "nope")
