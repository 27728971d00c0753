"""Loading a published GAR checkpoint (folder or Hub id) with our own code.

No ``trust_remote_code``: the config is read by ``GarConfig``, the network is built by
``GarForConditionalGeneration`` and the safetensors weights are copied in by name. Any
missing or unexpected weight is an error that names it, so a checkpoint of another layout
never loads half-initialised.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from transformers.initialization import no_init_weights

from gar_app.devices import default_device, torch_dtype
from gar_app.errors import CheckpointError
from gar_app.images import load_image
from gar_app.model.chat import ChatSession
from gar_app.model.configuration import GarConfig
from gar_app.model.modeling import GarForConditionalGeneration
from gar_app.model.processing import SINGLE_REGION_INDEX, GarProcessor
from gar_app.model.settings import DEFAULT_MODEL, GenerationSettings
from gar_app.model.static_decode import StaticDecoder, resolve_decode

_HUB_FILES = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt"]


def resolve_checkpoint(model: str | os.PathLike) -> Path:
    """A local checkpoint folder, fetching it from the Hugging Face Hub when given an id."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointError(f"{path} has no config.json; is it a GAR checkpoint folder?")
        return path
    if path.exists():
        raise CheckpointError(f"{path} is a file; pass the checkpoint folder that holds config.json")
    name = str(model)
    if name.count("/") != 1 or name.startswith((".", "/", "~")):
        raise CheckpointError(f"no checkpoint folder {name!r} (and it is not a Hub id like owner/name)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, allow_patterns=_HUB_FILES))
    except Exception as error:  # offline, unknown repo, HTTP errors: all mean "not available here"
        reason = type(error).__name__
        raise CheckpointError(
            f"cannot fetch {name} from the Hugging Face Hub ({reason}); download it where the Hub is "
            f"reachable (huggingface-cli download {name} --local-dir DIR) and pass --model DIR"
        ) from None


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / shard for shard in shards]
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    raise CheckpointError(f"{folder} has no model.safetensors (or model.safetensors.index.json)")


def _describe_keys(keys: set[str]) -> str:
    shown = sorted(keys)[:8]
    more = f" and {len(keys) - len(shown)} more" if len(keys) > len(shown) else ""
    return ", ".join(shown) + more


def load_weights(model: GarForConditionalGeneration, folder: Path) -> None:
    """Copy the checkpoint's tensors into ``model`` by name, refusing any mismatch."""
    expected = model.state_dict()
    files = _weight_files(folder)
    found: dict[str, Path] = {}
    for file in files:
        with safe_open(file, framework="pt") as reader:
            found.update(dict.fromkeys(reader.keys(), file))
    tied = {"mllm.lm_head.weight"} if model.config.mllm_config.tie_word_embeddings else set()
    missing = set(expected) - set(found) - tied
    unexpected = set(found) - set(expected)
    problems = []
    if missing:
        problems.append(f"missing weights: {_describe_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected weights: {_describe_keys(unexpected)}")
    if problems:
        raise CheckpointError(f"{folder} does not match the GAR layout; " + "; ".join(problems))
    for file in files:
        with safe_open(file, framework="pt") as reader:
            for key in reader.keys():  # noqa: SIM118 (safe_open is not iterable)
                tensor = reader.get_tensor(key)
                target = expected[key]
                if tensor.shape != target.shape:
                    raise CheckpointError(
                        f"weight {key} has shape {tuple(tensor.shape)} in {file.name}, "
                        f"but the config needs {tuple(target.shape)}"
                    )
                with torch.no_grad():
                    target.copy_(tensor)


def default_dtype(device: str) -> torch.dtype:
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def attention_backend(device: str) -> str:
    """flash-attn 2 where it is installed and usable, else PyTorch's SDPA."""
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


@contextmanager
def _default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


class Gar:
    """A loaded GAR: the network, its processor, and a lock that serialises model calls."""

    def __init__(
        self, model: GarForConditionalGeneration, processor: GarProcessor, model_id: str, decode: str = "auto"
    ):
        self.model = model
        self.processor = processor
        self.model_id = model_id
        self.lock = threading.RLock()
        self._decoder: StaticDecoder | None = None
        self.decode = "eager"
        self.set_decode(decode)

    def set_decode(self, mode: str, capacity: int | None = None) -> float:
        """Choose how answers are decoded: ``eager`` (transformers' forward per token) or
        ``static`` (a static KV workspace, CUDA graphs on CUDA); ``auto`` picks static on CUDA.

        Switching to static allocates the workspace and captures its graphs now, so no answer
        ever waits for it; returns the seconds that took.
        """
        mode = resolve_decode(mode, self.device)
        with self.lock:
            self.decode = mode
            if mode == "eager":
                self._decoder = None
                return 0.0
            if self._decoder is None or (capacity and capacity != self._decoder.capacity):
                self._decoder = StaticDecoder(self.model, capacity)
            return self._decoder.warm_up()

    def static_decoder(self, length: int) -> StaticDecoder | None:
        """The static decoder when it is on and a conversation of ``length`` tokens fits it."""
        decoder = self._decoder
        if self.decode != "static" or decoder is None or not decoder.fits(length):
            return None
        return decoder

    def forget_cache(self, cache) -> None:
        if self._decoder is not None and cache is not None:
            with self.lock:
                self._decoder.forget(cache)

    @property
    def config(self) -> GarConfig:
        return self.model.config

    @property
    def prompt_numbers(self) -> int:
        return self.config.prompt_numbers

    @property
    def device(self) -> torch.device:
        return self.model.device

    def chat(
        self,
        image: Image.Image | str | os.PathLike,
        masks: Sequence[np.ndarray | None] | Mapping[int, np.ndarray],
        reuse_cache: bool = True,
    ) -> ChatSession:
        """A conversation about ``image`` where ``masks[k]`` is region ``<Promptk>``."""
        return ChatSession(self, load_image(image), masks, reuse_cache=reuse_cache)

    def describe_chat(self, image: Image.Image | str | os.PathLike, mask: np.ndarray) -> ChatSession:
        """A conversation about one region, set up as every released single-region path
        does: the region is ``<Prompt1>``."""
        return self.chat(image, {SINGLE_REGION_INDEX: mask})

    def describe(
        self,
        image: Image.Image | str | os.PathLike,
        mask: np.ndarray,
        settings: GenerationSettings | None = None,
        instruction: str | None = None,
    ) -> str:
        """Caption one region with exactly the released demo's input (see ``describe_chat``)."""
        return self.describe_chat(image, mask).describe(None, settings, instruction)


def load_gar(
    model: str | os.PathLike = DEFAULT_MODEL,
    device: str | None = None,
    dtype: torch.dtype | str | None = None,
    attn_implementation: str | None = None,
    decode: str = "auto",
) -> Gar:
    """Load a GAR checkpoint folder or Hub id (``HaochenWang/GAR-1B`` by default).

    ``decode``: ``auto`` (static KV cache + CUDA graphs on CUDA, eager elsewhere), ``eager``
    or ``static``; see ``Gar.set_decode``."""
    folder = resolve_checkpoint(model)
    device = device or default_device()
    dtype = torch_dtype(dtype) or default_dtype(device)
    try:
        config = GarConfig.from_pretrained(folder)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise CheckpointError(f"cannot read {folder / 'config.json'}: {error}") from None
    config.mllm_config._attn_implementation = attn_implementation or attention_backend(device)
    try:
        with torch.device(device), _default_dtype(dtype), no_init_weights():
            network = GarForConditionalGeneration(config)
    except RuntimeError as error:
        raise CheckpointError(f"cannot build the model on {device}: {error}") from None
    load_weights(network, folder)
    network.eval()
    processor = GarProcessor.from_pretrained(folder, config, tokens_per_tile=network.tokens_per_side**2)
    return Gar(network, processor, model_id=str(model), decode=decode)
