"""Where models run and in which precision: one answer for GAR, SAM and SAM 2.

torch is imported inside the functions, so the CLI can name the dtypes in its options
without importing torch (``gar-app --help`` stays fast).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gar_app.errors import InputError

if TYPE_CHECKING:
    import torch

# The weight dtypes the options take by name, and what they mean.
DTYPES = ("bf16", "fp16", "fp32")
_TORCH_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def default_device() -> str:
    """The best accelerator present: CUDA, then Apple's MPS, then the CPU."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def torch_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """A dtype given by short name (bf16, fp16, fp32), torch name (``bfloat16``) or as itself;
    None stays None (the loader's default)."""
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    found = getattr(torch, _TORCH_NAMES.get(dtype, dtype), None) if isinstance(dtype, str) else None
    if not isinstance(found, torch.dtype):
        raise InputError(f"unknown dtype {dtype!r}; use {', '.join(DTYPES[:-1])} or {DTYPES[-1]}")
    return found
