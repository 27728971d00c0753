"""SAM backend on a tiny random checkpoint, loaded through the same path as a real one."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from segment_anything import SamPredictor, sam_model_registry

from gar_app.errors import CheckpointError, InputError
from gar_app.segment import (
    REGISTRY,
    TINY_CONFIG,
    GrabCutSegmenter,
    SamSegmenter,
    build_sam,
    infer_config,
    load_sam,
    load_segmenter,
    write_tiny_sam,
)
from gar_app.segment.sam_checkpoint import read_state_dict


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return write_tiny_sam(tmp_path_factory.mktemp("sam") / "tiny_sam.pth", seed=0)


@pytest.fixture()
def sam(tiny_path) -> SamSegmenter:
    segmenter = load_segmenter(tiny_path, device="cpu")
    assert isinstance(segmenter, SamSegmenter)
    return segmenter


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The tiny model gains nothing from threads, and on a busy 2-core machine OpenMP's
    spinning threads make each of its tiny ops wait ~10 ms; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def no_ambient_weights(monkeypatch, tmp_path):
    """Never pick up a developer's real checkpoint or cache."""
    monkeypatch.delenv("GAR_APP_SAM_CHECKPOINT", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def picture(width: int = 320, height: int = 240, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# --- loading ----------------------------------------------------------------------------


def test_tiny_checkpoint_is_an_ordinary_state_dict_with_readable_sizes(tiny_path):
    state = read_state_dict(tiny_path)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert infer_config(state) == TINY_CONFIG
    again = read_state_dict(write_tiny_sam(tiny_path.with_name("again.pth"), seed=0))
    other = read_state_dict(write_tiny_sam(tiny_path.with_name("other.pth"), seed=1))
    key = "image_encoder.patch_embed.proj.weight"
    assert torch.equal(state[key], again[key]) and not torch.equal(state[key], other[key])


@pytest.mark.parametrize("model_type", ["vit_b", "vit_l", "vit_h"])
def test_released_sizes_are_read_from_the_weights(model_type):
    with torch.device("meta"):  # shapes only: no memory, no time
        reference = sam_model_registry[model_type]()
        ours = build_sam(REGISTRY[model_type])
    shapes = {k: v.shape for k, v in reference.state_dict().items()}
    config = infer_config(reference.state_dict())
    assert config == REGISTRY[model_type] and config.model_type == model_type
    assert {k: v.shape for k, v in ours.state_dict().items()} == shapes


def test_load_sam_checks_the_requested_type(tiny_path):
    model, config = load_sam(tiny_path, device="cpu")
    assert config.describe() == "custom ViT width 32 depth 2"
    assert model.pixel_mean.device.type == "cpu" and not any(p.is_meta for p in model.parameters())
    with pytest.raises(CheckpointError, match="not vit_b"):
        load_sam(tiny_path, "vit_b")
    with pytest.raises(CheckpointError, match="unknown SAM model type"):
        load_sam(tiny_path, "vit_x")


def test_broken_checkpoints_are_clear_errors(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read SAM checkpoint"):
        load_segmenter(garbage, device="cpu")
    partial = tmp_path / "partial.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(8, 3, 16, 16)}, partial)
    with pytest.raises(CheckpointError, match="not a SAM checkpoint"):
        load_segmenter(partial, device="cpu")


def test_checkpoint_from_environment_and_cache(tiny_path, tmp_path, monkeypatch):
    monkeypatch.setenv("GAR_APP_SAM_CHECKPOINT", str(tiny_path))
    from_env = load_segmenter(device="cpu")
    assert isinstance(from_env, SamSegmenter) and str(tiny_path) in from_env.name
    monkeypatch.delenv("GAR_APP_SAM_CHECKPOINT")
    cached = tmp_path / "cache" / "gar-app" / "sam" / "sam_vit_b_01ec64.pth"
    cached.parent.mkdir(parents=True)
    shutil.copy(tiny_path, cached)
    from_cache = load_segmenter(device="cpu")
    assert isinstance(from_cache, SamSegmenter) and from_cache.name.startswith("SAM custom")
    with pytest.raises(CheckpointError, match="not vit_b"):  # sizes come from the weights, not the name
        load_segmenter(model_type="vit_b", device="cpu")


def test_download_only_when_allowed(tiny_path, monkeypatch):
    calls = []

    def fake_download(model_type, progress=True):
        calls.append(model_type)
        return tiny_path

    monkeypatch.setattr("gar_app.segment.download_checkpoint", fake_download)
    assert isinstance(load_segmenter(device="cpu"), GrabCutSegmenter) and calls == []
    assert isinstance(load_segmenter(device="cpu", allow_download=True), SamSegmenter)
    assert calls == ["vit_b"]  # the CPU default

    def offline(model_type, progress=True):
        raise CheckpointError("could not download SAM vit_b weights: network unreachable")

    monkeypatch.setattr("gar_app.segment.download_checkpoint", offline)
    fallback = load_segmenter(device="cpu", allow_download=True)
    assert isinstance(fallback, GrabCutSegmenter) and "network unreachable" in fallback.name


# --- clicking ---------------------------------------------------------------------------


def test_many_clicks_compute_the_embedding_once(sam, monkeypatch):
    runs = []
    encoder = sam.model.image_encoder
    original = encoder.forward
    monkeypatch.setattr(encoder, "forward", lambda x: runs.append(x.shape) or original(x))
    image = picture()
    sam.set_image(image)
    prompts = [
        {"points": [[50, 60]]},
        {"points": [[50, 60], [200, 100]], "labels": [1, 0]},
        {"box": [20, 30, 180, 200]},
        {"box": [20, 30, 180, 200], "points": [[100, 100]]},
        {"scribble": [[40, 40], [120, 90], [200, 60]]},
        {"scribble": [[60, 60], [160, 60], [160, 160], [60, 160], [60, 64]]},
    ]
    for prompt in prompts:
        result = sam.segment(**prompt)
        assert result.mask.shape == (240, 320) and result.mask.dtype == bool
        assert np.isfinite(result.score)
    assert sam.embeddings_computed == 1 and runs == [(1, 3, 1024, 1024)]
    sam.set_image(Image.fromarray(image))  # same pixels, another object: still cached
    assert sam.embeddings_computed == 1
    sam.set_image(picture(seed=1))
    sam.set_image(image)  # back to a recent image: still cached
    assert sam.embeddings_computed == 2
    for seed in range(2, 6):  # four more images push the first out of the 4-image cache
        sam.set_image(picture(seed=seed))
    sam.set_image(image)
    assert sam.embeddings_computed == 7 and len(runs) == 7


def test_matches_segment_anythings_own_predictor(sam):
    image = picture(300, 200)
    sam.set_image(image)
    reference = SamPredictor(sam.model)
    reference.set_image(image)
    masks, scores, _ = reference.predict(np.array([[120.0, 80.0]]), np.array([1]), multimask_output=True)
    ours = sam.segment(points=[[120, 80]])  # one click: multimask, best by score
    assert ours.score == pytest.approx(float(scores.max()), abs=1e-6)
    assert np.array_equal(ours.mask, masks[int(np.argmax(scores))])
    box = np.array([30.0, 20.0, 250.0, 170.0])
    masks, scores, _ = reference.predict(
        np.array([[120.0, 80.0]]), np.array([1]), box=box, multimask_output=False
    )
    ours = sam.segment(points=[[120, 80]], box=box.tolist())  # box and point: single mask
    assert np.array_equal(ours.mask, masks[0]) and ours.score == pytest.approx(float(scores[0]), abs=1e-6)


def test_the_best_scoring_mask_is_returned(sam, monkeypatch):
    sam.set_image(picture(256, 256))
    low = sam.model.prompt_encoder.mask_input_size[0]  # low-res masks are this size (64 for tiny)
    logits = torch.full((1, 3, low, low), -10.0)
    half = low // 2
    logits[0, 0, :half, :half] = 10.0  # top-left
    logits[0, 1, :half, half:] = 10.0  # top-right
    logits[0, 2, half:, :] = 10.0  # bottom half
    seen = {}

    def fake_decoder(**kwargs):
        seen["multimask"] = kwargs["multimask_output"]
        return logits, torch.tensor([[0.2, 0.9, 0.5]])

    monkeypatch.setattr(sam.model.mask_decoder, "forward", fake_decoder)
    result = sam.segment(points=[[10, 10]])
    assert seen["multimask"] is True and result.score == pytest.approx(0.9)
    # mask 1 (top-right), give or take a pixel of bilinear upscaling at its edges
    assert result.mask[:124, 132:].all() and not result.mask[:, :124].any() and not result.mask[132:].any()


def test_lasso_mask_stays_inside_the_lasso(sam):
    sam.set_image(picture())
    lasso = [[60, 60], [160, 60], [160, 160], [60, 160], [60, 62]]
    result = sam.segment(scribble=lasso)
    assert not result.mask[:55].any() and not result.mask[:, 170:].any()


# --- odd images and prompts -------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (1000, 17), (17, 1000)])
def test_masks_have_the_image_size_for_odd_shapes(sam, size):
    width, height = size
    sam.set_image(picture(width, height))
    result = sam.segment(points=[[width - 1, height - 1]])
    assert result.mask.shape == (height, width) and result.mask.dtype == bool
    assert sam.segment(box=[0, 0, width, height]).mask.shape == (height, width)


def test_cmyk_and_16_bit_images(sam):
    sam.set_image(Image.fromarray(picture()).convert("CMYK"))
    assert sam.segment(points=[[10, 10]]).mask.shape == (240, 320)
    sam.set_image(np.random.default_rng(0).integers(0, 65535, (240, 320), dtype=np.uint16))
    assert sam.segment(points=[[10, 10]]).mask.shape == (240, 320)
    assert sam.embeddings_computed == 2


def test_40_megapixel_image(sam):
    image = np.zeros((5000, 8000, 3), np.uint8)
    image[1000:3000, 2000:5000] = (200, 40, 40)
    sam.set_image(image)
    result = sam.segment(box=[1900, 900, 5100, 3100])
    assert result.mask.shape == (5000, 8000) and result.mask.dtype == bool
    assert sam.embeddings_computed == 1


def test_bad_prompts_are_input_errors(sam):
    with pytest.raises(InputError, match="set_image"):
        SamSegmenter(sam.model).segment(points=[[1, 1]])
    sam.set_image(picture())
    with pytest.raises(InputError, match="outside the 320x240 image"):
        sam.segment(points=[[400, 10]])
    with pytest.raises(InputError, match="zero area"):
        sam.segment(box=[10, 10, 10, 100])
    with pytest.raises(InputError, match="scribble is empty"):
        sam.segment(scribble=[[-50, -50], [-10, -20]])
    with pytest.raises(InputError, match="no prompt"):
        sam.segment()


def test_half_precision_encoder_gives_nearly_the_same_masks(tiny_path):
    """bfloat16 for the image encoder (the default on CUDA) only; the masks barely move."""
    full = load_segmenter(tiny_path, device="cpu")
    half = SamSegmenter(full.model, half=True)
    assert not full.half and half.half
    image = picture()
    for segmenter in (full, half):
        segmenter.set_image(image)
    assert half._current.features.dtype == torch.float32  # the decoder still works in float32
    assert not torch.equal(half._current.features, full._current.features)  # bfloat16 really ran
    for prompt in ({"points": [[100, 120]]}, {"box": [40, 30, 200, 180]}):
        a, b = full.segment(**prompt).mask, half.segment(**prompt).mask
        assert a.dtype == b.dtype == bool and a.shape == b.shape == image.shape[:2]
        assert (a & b).sum() / max(1, (a | b).sum()) > 0.9
