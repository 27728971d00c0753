"""One answer to "where does a model run, in which precision" for GAR, SAM and SAM 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import REPO

from gar_app.devices import DTYPES, default_device, torch_dtype
from gar_app.errors import InputError
from gar_app.model import load_gar, loading
from gar_app.segment import load_segmenter, sam_checkpoint
from gar_app.tracking import load_tracker, sam2_checkpoint


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"), [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_the_default_device_is_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert default_device() == expected


class Chosen(Exception):
    """Raised where a loader would start building on the device it chose."""


def test_gar_sam_and_sam2_loaders_pick_the_same_device(monkeypatch, tiny_gar_dir, tiny_sam_path):
    """Before, SAM and SAM 2 chose CUDA or the CPU while GAR also tried MPS."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)

    def chosen(device):
        raise Chosen(device)

    monkeypatch.setattr(sam_checkpoint, "load_sam", lambda path, model_type, device: chosen(device))
    monkeypatch.setattr(sam2_checkpoint, "load_sam2", lambda path, device, dtype: chosen(device))
    monkeypatch.setattr(loading, "default_dtype", chosen)  # the first use of GAR's device
    for load in (
        lambda: load_segmenter(tiny_sam_path),
        lambda: load_tracker("facebook/sam2.1-hiera-tiny"),
        lambda: load_gar(tiny_gar_dir),
    ):
        with pytest.raises(Chosen) as caught:
            load()
        assert caught.value.args == ("mps",)


@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        ("bf16", torch.bfloat16),
        ("fp16", torch.float16),
        ("fp32", torch.float32),
        ("float64", torch.float64),
        (torch.float16, torch.float16),
        (None, None),
    ],
)
def test_dtypes_by_name(name, dtype):
    assert torch_dtype(name) is dtype


@pytest.mark.parametrize("name", ["fp8", "cuda", "Tensor", ""])
def test_an_unknown_dtype_is_one_line(name):
    with pytest.raises(InputError, match=rf"^unknown dtype {name!r}; use bf16, fp16 or fp32$"):
        torch_dtype(name)


def test_every_dtype_option_takes_the_same_names():
    assert DTYPES == ("bf16", "fp16", "fp32")
    assert [torch_dtype(name) for name in DTYPES] == [torch.bfloat16, torch.float16, torch.float32]


def test_naming_dtypes_does_not_import_torch():
    code = "import sys, gar_app.devices; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
