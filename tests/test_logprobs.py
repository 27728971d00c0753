"""Log-probabilities of generated tokens: the model's own distribution at each step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import REPO

from gar_app.errors import InputError
from gar_app.images import load_image
from gar_app.model import GenerationSettings

CAT = REPO / "assets" / "examples" / "cat.jpg"


@pytest.fixture(scope="module")
def cat_and_mask():
    image = load_image(CAT)
    mask = np.zeros((image.height, image.width), bool)
    mask[image.height // 4 : image.height // 2, image.width // 3 : image.width // 2] = True
    return image, mask


def test_each_answer_token_has_its_logprob_and_top_k(tiny_gar, cat_and_mask):
    image, mask = cat_and_mask
    chat = tiny_gar.chat(image, [mask])
    answer = chat.describe(0, GenerationSettings(max_new_tokens=8, logprobs=5))
    tokens = chat.turns[-1].tokens
    assert 1 <= len(tokens) <= 8
    assert tiny_gar.processor.decode([t.id for t in tokens]).strip() == answer
    for token in tokens:
        assert len(token.top) == 5
        assert token.top[0].id == token.id  # greedy: the chosen token is the most likely one
        assert token.logprob == pytest.approx(token.top[0].logprob)
        values = [alternative.logprob for alternative in token.top]
        assert values == sorted(values, reverse=True) and values[0] <= 0.0
        assert sum(math.exp(v) for v in values) <= 1.0 + 1e-5
        assert token.text == tiny_gar.processor.token_text(token.id)


def test_logprobs_are_log_softmax_of_the_step_logits(tiny_gar, cat_and_mask):
    """Recompute the first step's distribution independently and compare."""
    image, mask = cat_and_mask
    chat = tiny_gar.chat(image, [mask])
    chat.describe(0, GenerationSettings(max_new_tokens=1, logprobs=3))
    first = chat.turns[-1].tokens[0]

    check = tiny_gar.chat(image, [mask])
    captured = {}
    forward = tiny_gar.model.forward

    def capture(*args, **kwargs):
        out = forward(*args, **kwargs)
        captured.setdefault("logits", out.logits[0, -1].float())
        return out

    tiny_gar.model.forward = capture
    try:
        check.describe(0, GenerationSettings(max_new_tokens=1))
    finally:
        tiny_gar.model.forward = forward
    expected = torch.log_softmax(captured["logits"].double(), -1)
    assert first.logprob == pytest.approx(float(expected[first.id]), abs=1e-5)
    best = torch.topk(expected, 3)
    assert [t.id for t in first.top] == best.indices.tolist()
    assert [t.logprob for t in first.top] == pytest.approx(best.values.tolist(), abs=1e-5)
    assert check.turns[-1].tokens == []  # off by default


@pytest.mark.parametrize("k", [-1, 21])
def test_logprobs_out_of_range_are_refused(k):
    with pytest.raises(InputError, match="logprobs"):
        GenerationSettings(logprobs=k)
