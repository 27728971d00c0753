"""The static decode step: a static KV workspace whose step is replayed as CUDA graphs
(``auto`` / ``eager`` / ``static`` decide whether a chat uses it or transformers' forward).

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
import os
import time
import weakref
from typing import TYPE_CHECKING

import torch
from torch.nn import functional

from gar_app.errors import InputError

if TYPE_CHECKING:
    from transformers import DynamicCache

    from gar_app.model.modeling import GarForConditionalGeneration

log = logging.getLogger(__name__)

DECODE_MODES = ("auto", "eager", "static")
DEFAULT_CAPACITY = 16384  # tokens of KV the workspace holds (a 36-tile image + answer is ~11k)
DEFAULT_BUCKET = 1024  # attention reads the workspace in steps of this many tokens


def resolve_decode(mode: str, device: torch.device | str) -> str:
    """``auto`` is ``static`` on CUDA and ``eager`` elsewhere: on the CPU there are no graphs to
    replay, and on ZeroGPU Spaces the GPU exists only inside each request, so graphs captured
    at start-up would not survive."""
    if mode not in DECODE_MODES:
        raise InputError(f"decode must be one of {', '.join(DECODE_MODES)}, not {mode!r}")
    if mode == "auto":
        zero_gpu = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")
        return "static" if torch.device(device).type == "cuda" and not zero_gpu else "eager"
    return mode


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' LlamaRMSNorm, as one function so it can be fused into one kernel."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """Rotary embedding ``x * cos + rotate_half(x) * sin`` with the sign of ``rotate_half``
    moved into ``sin_signed`` (``-sin`` on the first half), so the halves are only swapped."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((x[..., half:], x[..., :half]), -1) * sin_signed


def silu_times(gate_up: torch.Tensor) -> torch.Tensor:
    """Llama's MLP activation on the packed gate and up projections."""
    gate, up = gate_up.chunk(2, -1)
    return functional.silu(gate) * up


def _pack(linears: list[torch.nn.Linear]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One weight (and bias) for Linear layers that read the same input, so a decode step runs
    one matrix product instead of several; the layers keep views of it (no extra memory,
    and transformers' own forward still works)."""
    with torch.no_grad():
        weight = torch.cat([linear.weight for linear in linears])
        biases = [linear.bias for linear in linears]
        bias = torch.cat(biases) if all(b is not None for b in biases) else None
        start = 0
        for linear in linears:
            rows = linear.weight.shape[0]
            linear.weight = torch.nn.Parameter(weight[start : start + rows], requires_grad=False)
            if bias is not None:
                linear.bias = torch.nn.Parameter(bias[start : start + rows], requires_grad=False)
            start += rows
    return weight, bias


class StaticDecoder:
    """One-token decode steps over a fixed KV workspace, as CUDA graphs where possible.

    ``fuse`` compiles the small element-wise functions (RMS norm, rotary embedding, SiLU
    product) into one kernel each with ``torch.compile`` on CUDA, once, at warm-up: a step of
    GAR-1B size then takes 1.70 ms instead of 2.24 ms on an H200 (bench/bench_model.py
    --variants). Attending over the whole workspace through one graph, or summing the
    values per chunk of keys, measured the same (1.70 / 1.73 ms) and were dropped.
    """

    def __init__(
        self,
        model: GarForConditionalGeneration,
        capacity: int | None = None,
        bucket: int = DEFAULT_BUCKET,
        fuse: bool = True,
    ):
        text_config = model.config.mllm_config.text_config
        self.model = model
        self.language_model = model.mllm.model.language_model
        self.lm_head = model.mllm.lm_head
        self.layers = list(self.language_model.layers[: text_config.num_hidden_layers])
        self.kv_heads = text_config.num_key_value_heads
        self.heads = text_config.num_attention_heads
        self.head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // self.heads
        self.eps = text_config.rms_norm_eps
        self.scaling = self.layers[0].self_attn.scaling
        limit = text_config.max_position_embeddings
        self.capacity = int(min(capacity or DEFAULT_CAPACITY, limit))
        slots = self.capacity
        self.bucket = max(1, min(bucket, slots))
        device, dtype = model.device, model.dtype
        shape = (len(self.layers), self.kv_heads, slots, self.head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.qkv = [
            _pack([layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj])
            for layer in self.layers
        ]
        self.gate_up = [_pack([layer.mlp.gate_proj, layer.mlp.up_proj]) for layer in self.layers]
        with torch.no_grad():
            positions = torch.arange(slots, device=device)[None]
            cos, sin = self.language_model.rotary_emb(self.keys[0, :1, :1], positions)
        half = self.head_dim // 2
        self.cos = cos[0]  # (slots, head_dim), exactly what the eager path computes
        self.sin_signed = torch.cat((-sin[0, :, :half], sin[0, :, half:]), -1)
        self._token = torch.zeros((1, 1), dtype=torch.long, device=device)
        self._position = torch.zeros((1,), dtype=torch.long, device=device)
        self._slots = torch.arange(slots, device=device)
        self._slot_count = slots
        self._fuse = fuse and device.type == "cuda"
        self._ops = (rms_norm, rotate, silu_times)
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._owner: weakref.ref | None = None
        self._synced = 0  # workspace[:synced] equals the owner's cache
        self._written = (
            0  # workspace[:written] is valid for the owner (the rest is generated, not yet written back)
        )
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

    def _warm(self, length: int) -> None:
        """Run the step outside any capture (kernel choice, allocator, compilation)."""
        try:
            for _ in range(2):
                self._forward(length)
        except Exception as error:  # no working compiler here: the unfused functions do the same
            if self._ops[0] is rms_norm:
                raise
            log.warning("decode step not compiled (%s); using plain PyTorch ops", error)
            self._ops = (rms_norm, rotate, silu_times)
            self._forward(length)

    def warm_up(self) -> float:
        """Capture one CUDA graph per attention length bucket (once per process, at load time)."""
        if self.keys.device.type != "cuda" or self._graphs:
            return self.warmup_seconds
        start = time.perf_counter()
        if self._fuse:
            compile_ = torch.compile(dynamic=False, fullgraph=True)
            self._ops = tuple(compile_(op) for op in (rms_norm, rotate, silu_times))
        pool = torch.cuda.graph_pool_handle()
        self._position.zero_()
        self._token.zero_()
        with torch.inference_mode():
            for length in self.buckets():
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    self._warm(length)
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

    def _attend(self, index: int, query: torch.Tensor, bias: torch.Tensor, length: int) -> torch.Tensor:
        """Grouped-query attention of one token over the first ``length`` workspace slots.

        Fused attention kernels parallelise over queries and heads, which a single decoded
        token has too few of: one block would walk thousands of keys alone. Here the scores
        are one batched product over every key (``bias`` hides the slots after the token),
        the softmax accumulates in float32 like transformers' eager attention, and the
        weighted sum of values is one more batched product.
        """
        group = self.heads // self.kv_heads
        grouped = query.view(self.kv_heads, group, self.head_dim)  # q heads j*group.. share KV head j
        keys = self.keys[index, :, :length]
        values = self.values[index, :, :length]
        scores = torch.baddbmm(bias, grouped, keys.transpose(1, 2), alpha=self.scaling)
        return torch.bmm(scores.softmax(-1), values).view(1, 1, self.heads * self.head_dim)

    def _forward(self, length: int) -> torch.Tensor:
        """Logits (vocab,) of the token in ``_token`` at ``_position``; writes its keys and values."""
        norm, rope, activation = self._ops
        heads, kv_heads, dim = self.heads, self.kv_heads, self.head_dim
        hidden = self.language_model.embed_tokens(self._token)  # (1, 1, hidden)
        cos = self.cos.index_select(0, self._position)  # (1, head_dim)
        sin = self.sin_signed.index_select(0, self._position)
        bias = torch.zeros((1, 1, length), dtype=hidden.dtype, device=hidden.device).masked_fill_(
            self._slots[:length] > self._position, float("-inf")
        )
        for index, layer in enumerate(self.layers):
            qkv = functional.linear(norm(hidden, layer.input_layernorm.weight, self.eps), *self.qkv[index])
            rotated = rope(qkv[0, 0, : (heads + kv_heads) * dim].view(heads + kv_heads, dim), cos, sin)
            self.keys[index].index_copy_(1, self._position, rotated[heads:].view(kv_heads, 1, dim))
            self.values[index].index_copy_(
                1, self._position, qkv[0, 0, (heads + kv_heads) * dim :].view(kv_heads, 1, dim)
            )
            hidden = hidden + layer.self_attn.o_proj(self._attend(index, rotated[:heads], bias, length))
            gate_up = functional.linear(
                norm(hidden, layer.post_attention_layernorm.weight, self.eps), *self.gate_up[index]
            )
            hidden = hidden + layer.mlp.down_proj(activation(gate_up))
        return self.lm_head(norm(hidden, self.language_model.norm.weight, self.eps))[0, -1]

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
                self.keys[index, :, self._synced : have] = layer.keys[0, :, self._synced : have]
                self.values[index, :, self._synced : have] = layer.values[0, :, self._synced : have]
            self._synced = self._written = have

    def write_back(self) -> None:
        """Append the generated tokens' keys and values to the owning conversation's cache."""
        owner = self._owner() if self._owner is not None else None
        if owner is None or self._written <= self._synced:
            return
        start, end = self._synced, self._written
        for index, layer in enumerate(owner.layers[: len(self.layers)]):
            layer.update(
                self.keys[index, None, :, start:end].clone(), self.values[index, None, :, start:end].clone()
            )
        self._synced = end

    def forget(self, cache: DynamicCache | None) -> None:
        """Drop ``cache``'s claim on the workspace (its conversation released its cache)."""
        owner = self._owner() if self._owner is not None else None
        if owner is not None and owner is cache:
            self._owner = None
