"""Decode steps: transformers' eager forward, or a static KV workspace replayed as CUDA graphs.

At batch 1 an eager decode step of a 1B model costs ~10 ms of Python and kernel launches
while the GPU needs well under 1 ms to read the weights. ``StaticDecoder`` removes that
overhead: the language model's KV cache lives in one preallocated workspace, and the step
(embedding, every layer, norm, head) is captured once per attention length bucket as a
CUDA graph at load time, then only replayed. Nothing is compiled or captured while a
person waits for an answer.

Conversations keep their own transformers ``DynamicCache`` (prefill, including a follow-up
turn's prompt, still runs through transformers with SDPA or flash-attn). The workspace
belongs to one conversation at a time: it copies in the part of that conversation's cache
it lacks and writes the generated tokens' keys and values back when the turn ends or when
another conversation takes the workspace, so conversations can interleave step by step.

The step reuses the model's own modules (norms, projections, MLP, head) and writes its own
attention only to read grouped-query keys once per KV head over a masked, bucketed length.
On CPU there are no graphs; the same step runs eagerly (the tests compare it with the eager
path token for token).
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from typing import TYPE_CHECKING

import torch

from gar_app.errors import InputError

if TYPE_CHECKING:
    from transformers import DynamicCache

    from gar_app.model.modeling import GarForConditionalGeneration

log = logging.getLogger(__name__)

DECODE_MODES = ("auto", "eager", "static")
DEFAULT_CAPACITY = 16384  # tokens of KV the workspace holds (a 36-tile image + answer is ~11k)
DEFAULT_BUCKET = 1024  # attention reads the workspace in steps of this many tokens
CHUNK = 256  # keys per partial sum of the attention output (the workspace is a whole number of chunks)


def resolve_decode(mode: str, device: torch.device | str) -> str:
    """``auto`` is ``static`` on CUDA (CUDA graphs) and ``eager`` elsewhere (measured faster on CPU)."""
    if mode not in DECODE_MODES:
        raise InputError(f"decode must be one of {', '.join(DECODE_MODES)}, not {mode!r}")
    if mode == "auto":
        return "static" if torch.device(device).type == "cuda" else "eager"
    return mode


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class StaticDecoder:
    """One-token decode steps over a fixed KV workspace, as CUDA graphs where possible."""

    def __init__(
        self, model: GarForConditionalGeneration, capacity: int | None = None, bucket: int = DEFAULT_BUCKET
    ):
        text_config = model.config.mllm_config.text_config
        self.model = model
        self.language_model = model.mllm.model.language_model
        self.lm_head = model.mllm.lm_head
        self.layers = list(self.language_model.layers[: text_config.num_hidden_layers])
        self.kv_heads = text_config.num_key_value_heads
        self.heads = text_config.num_attention_heads
        self.head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // self.heads
        limit = text_config.max_position_embeddings
        self.capacity = int(min(capacity or DEFAULT_CAPACITY, limit))
        self.bucket = CHUNK * max(1, bucket // CHUNK)
        slots = math.ceil(self.capacity / CHUNK) * CHUNK  # whole chunks; slots past the capacity stay masked
        device, dtype = model.device, model.dtype
        shape = (len(self.layers), 1, self.kv_heads, slots, self.head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        with torch.no_grad():
            positions = torch.arange(slots, device=device)[None]
            cos, sin = self.language_model.rotary_emb(self.keys[0, 0, :1, :1], positions)
        self.cos, self.sin = cos[0], sin[0]  # (capacity, head_dim), exactly what the eager path computes
        self._token = torch.zeros((1, 1), dtype=torch.long, device=device)
        self._position = torch.zeros((1,), dtype=torch.long, device=device)
        self._slots = torch.arange(slots, device=device)
        self._slot_count = slots
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._owner: weakref.ref | None = None
        self._synced = 0  # workspace[:synced] equals the owner's cache
        self._written = 0  # workspace[:written] is valid for the owner (the rest is generated, not yet written back)
        self.warmup_seconds = 0.0

    # -- set-up ---------------------------------------------------------------------------

    @property
    def uses_graphs(self) -> bool:
        return bool(self._graphs)

    def buckets(self) -> list[int]:
        """Attention lengths with a graph each: multiples of ``bucket``, the last one all slots."""
        top = self._slot_count
        return sorted({min(top, b) for b in range(self.bucket, top + self.bucket, self.bucket)})

    def _bucket(self, position: int) -> int:
        return min(self._slot_count, math.ceil((position + 1) / self.bucket) * self.bucket)

    def warm_up(self) -> float:
        """Capture one CUDA graph per attention length bucket (once per process, at load time)."""
        if self.keys.device.type != "cuda" or self._graphs:
            return self.warmup_seconds
        start = time.perf_counter()
        pool = torch.cuda.graph_pool_handle()
        self._position.zero_()
        self._token.zero_()
        with torch.inference_mode():
            for length in self.buckets():
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(2):  # choose kernels and warm the allocator outside the capture
                        self._forward(length)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool):
                    logits = self._forward(length)
                self._graphs[length] = (graph, logits)
        torch.cuda.synchronize()
        self._owner = None  # the warm-up wrote into slot 0
        self.warmup_seconds = time.perf_counter() - start
        log.info("captured %d decode graphs in %.2f s", len(self._graphs), self.warmup_seconds)
        return self.warmup_seconds

    # -- the step ---------------------------------------------------------------------------

    def _attend(self, index: int, query: torch.Tensor, length: int) -> torch.Tensor:
        """Grouped-query attention of one token over the first ``length`` workspace slots.

        Fused attention kernels parallelise over queries and heads, which a single decoded
        token has too few of: one block would walk thousands of keys alone. Here the scores
        are one batched product over all keys, the softmax runs in float32 (as transformers'
        eager attention), and the weighted sum of values is taken per chunk of keys, in
        parallel, then added up.
        """
        group = self.heads // self.kv_heads
        grouped = query.reshape(1, self.kv_heads, group, self.head_dim)  # q heads j*group.. share KV head j
        keys = self.keys[index, :, :, :length]
        values = self.values[index, :, :, :length]
        scores = torch.matmul(grouped, keys.transpose(-1, -2)) * self.layers[index].self_attn.scaling
        hidden = self._slots[:length] > self._position
        weights = scores.masked_fill(hidden, float("-inf")).softmax(-1, dtype=torch.float32).to(values.dtype)
        chunks = length // CHUNK
        partial = torch.matmul(
            weights.view(1, self.kv_heads, group, chunks, CHUNK).transpose(2, 3),
            values.view(1, self.kv_heads, chunks, CHUNK, self.head_dim),
        )  # (1, kv_heads, chunks, group, head_dim)
        return partial.sum(2).reshape(1, 1, self.heads * self.head_dim)

    def _forward(self, length: int) -> torch.Tensor:
        """Logits (vocab,) of the token in ``_token`` at ``_position``; writes its keys and values."""
        hidden = self.language_model.embed_tokens(self._token)
        cos = self.cos.index_select(0, self._position)[None, None]  # (1, 1, 1, head_dim)
        sin = self.sin.index_select(0, self._position)[None, None]
        for index, layer in enumerate(self.layers):
            attention = layer.self_attn
            normed = layer.input_layernorm(hidden)
            query = attention.q_proj(normed).view(1, 1, self.heads, self.head_dim).transpose(1, 2)
            key = attention.k_proj(normed).view(1, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            value = attention.v_proj(normed).view(1, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            query = query * cos + _rotate_half(query) * sin
            key = key * cos + _rotate_half(key) * sin
            self.keys[index].index_copy_(2, self._position, key)
            self.values[index].index_copy_(2, self._position, value)
            hidden = hidden + attention.o_proj(self._attend(index, query, length))
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        return self.lm_head(self.language_model.norm(hidden))[0, -1]

    def fits(self, length: int) -> bool:
        """Whether a conversation of ``length`` tokens fits the workspace."""
        return length <= self.capacity

    def step(self, cache: DynamicCache, token: int) -> torch.Tensor:
        """Feed ``token`` after everything ``cache`` (plus earlier steps) holds; return the next logits."""
        self._bind(cache)
        position = self._written
        if position >= self.capacity:
            raise InputError(f"the conversation is longer than the decode workspace ({self.capacity} tokens)")
        self._token.fill_(token)
        self._position.fill_(position)
        length = self._bucket(position)
        if self._graphs:
            graph, logits = self._graphs[length]
            graph.replay()
        else:
            logits = self._forward(length)
        self._written = position + 1
        return logits

    # -- the workspace's owner ---------------------------------------------------------------

    def _bind(self, cache: DynamicCache) -> None:
        owner = self._owner() if self._owner is not None else None
        if owner is not cache:
            self.write_back()
            self._owner = weakref.ref(cache)
            self._synced = self._written = 0
        have = cache.get_seq_length()
        if have > self.capacity:
            raise InputError(f"the conversation is longer than the decode workspace ({self.capacity} tokens)")
        if have > self._synced:  # transformers' prefill extended the cache: copy the new part in
            if self._written > self._synced:
                raise RuntimeError("decode workspace and conversation cache diverged")
            for index, layer in enumerate(cache.layers[: len(self.layers)]):
                self.keys[index, :, :, self._synced : have] = layer.keys[:, :, self._synced : have]
                self.values[index, :, :, self._synced : have] = layer.values[:, :, self._synced : have]
            self._synced = self._written = have

    def write_back(self) -> None:
        """Append the generated tokens' keys and values to the owning conversation's cache."""
        owner = self._owner() if self._owner is not None else None
        if owner is None or self._written <= self._synced:
            return
        start, end = self._synced, self._written
        for index, layer in enumerate(owner.layers[: len(self.layers)]):
            layer.update(self.keys[index, :, :, start:end].clone(), self.values[index, :, :, start:end].clone())
        self._synced = end

    def forget(self, cache: DynamicCache | None) -> None:
        """Drop ``cache``'s claim on the workspace (its conversation released its cache)."""
        owner = self._owner() if self._owner is not None else None
        if owner is not None and owner is cache:
            self._owner = None
