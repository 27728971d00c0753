"""The static-KV decode path gives the eager path's tokens, turn after turn, interleaved or not."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO

from gar_app.errors import InputError
from gar_app.images import load_image
from gar_app.model import GenerationSettings, load_gar
from gar_app.model.static_decode import StaticDecoder, resolve_decode

CAT = REPO / "assets" / "examples" / "cat.jpg"
COFFEE = REPO / "assets" / "examples" / "coffee.jpg"
GREEDY = GenerationSettings(max_new_tokens=24)


@pytest.fixture(scope="module")
def gar_pair(tiny_gar_dir):
    """The same checkpoint loaded twice: one decodes eagerly, one through the static workspace.
    A small bucket makes the answers cross several attention-length buckets."""
    eager = load_gar(tiny_gar_dir, device="cpu", dtype="fp32", decode="eager")
    static = load_gar(tiny_gar_dir, device="cpu", dtype="fp32", decode="static")
    static._decoder = StaticDecoder(static.model, bucket=64)
    return eager, static


def _inputs(path):
    image = load_image(path)
    h, w = image.height, image.width
    first = np.zeros((h, w), bool)
    first[h // 5 : h // 2, w // 4 : w // 2] = True
    second = np.zeros((h, w), bool)
    second[h // 2 : h - 10, w // 2 : w - 20] = True
    return image, [first, second]


class Tokens(list):
    """An answer's (token id, log-probability) pairs; equal when the ids are and every
    log-probability agrees to 1e-4 (a wrong mask or rotation in the static step moves them
    by far more; float rounding by ~1e-6)."""

    def __eq__(self, other):
        return [i for i, _ in self] == [i for i, _ in other] and all(
            abs(a - b) < 1e-4 for (_, a), (_, b) in zip(self, other, strict=True)
        )


def _tokens(chat) -> Tokens:
    return Tokens((t.id, t.logprob) for t in chat.turns[-1].tokens)


def _conversation(gar, path, questions):
    image, masks = _inputs(path)
    chat = gar.chat(image, masks)
    answers = []
    for question in questions:
        chat.ask(question, GenerationSettings(max_new_tokens=24, logprobs=1))
        answers.append((chat.turns[-1].text, _tokens(chat)))
    return answers


QUESTIONS = ["How is <Prompt0> related to <Prompt1>?", "And what colour is <Prompt1>?", "Describe <Prompt0>."]


def test_static_and_eager_give_identical_greedy_tokens_over_turns(gar_pair):
    eager, static = gar_pair
    expected = _conversation(eager, CAT, QUESTIONS)
    got = _conversation(static, CAT, QUESTIONS)
    assert got == expected
    assert all(len(tokens) > 1 for _text, tokens in got)
    assert static.static_decoder(100) is not None and eager.static_decoder(100) is None


def test_interleaved_conversations_keep_their_own_cache(gar_pair):
    """Two conversations decoding step by step in turn share one workspace without mixing."""
    eager, static = gar_pair
    expected_cat = _conversation(eager, CAT, QUESTIONS[:2])
    expected_coffee = _conversation(eager, COFFEE, QUESTIONS[:2])
    chats = [static.chat(*_inputs(path)) for path in (CAT, COFFEE)]
    results: list[list] = [[], []]
    for question in QUESTIONS[:2]:
        streams = [chat.stream(question, GenerationSettings(max_new_tokens=24, logprobs=1)) for chat in chats]
        done = [False, False]
        while not all(done):
            for k, stream in enumerate(streams):
                if not done[k] and next(stream, None) is None:
                    done[k] = True
        for k, chat in enumerate(chats):
            results[k].append((chat.turns[-1].text, _tokens(chat)))
    assert results == [expected_cat, expected_coffee]


def test_released_cache_is_rebuilt_and_continues(gar_pair):
    eager, static = gar_pair
    expected = _conversation(eager, CAT, QUESTIONS[:2])
    image, masks = _inputs(CAT)
    chat = static.chat(image, masks)
    chat.ask(QUESTIONS[0], GenerationSettings(max_new_tokens=24, logprobs=1))
    first = (chat.turns[-1].text, _tokens(chat))
    chat.release_cache()
    chat.ask(QUESTIONS[1], GenerationSettings(max_new_tokens=24, logprobs=1))
    assert [first, (chat.turns[-1].text, _tokens(chat))] == expected


def test_conversations_longer_than_the_workspace_decode_eagerly(tiny_gar_dir):
    gar = load_gar(tiny_gar_dir, device="cpu", dtype="fp32", decode="static")
    gar._decoder = StaticDecoder(gar.model, capacity=64)
    assert gar.static_decoder(64) is gar._decoder and gar.static_decoder(65) is None
    image, masks = _inputs(CAT)
    assert gar.chat(image, masks).ask(QUESTIONS[0], GREEDY)  # thousands of tokens: the eager path answers


def test_decode_modes(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert resolve_decode("auto", "cpu") == "eager" and resolve_decode("auto", "cuda") == "static"
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")  # the GPU only exists inside each request
    assert resolve_decode("auto", "cuda") == "eager"
    assert resolve_decode("static", "cpu") == "static"
    with pytest.raises(InputError, match="decode must be one of"):
        resolve_decode("fast", "cpu")


def test_cli_decode_switch_gives_the_same_answer(tiny_gar_dir, tmp_path, capsys):
    from PIL import Image

    from gar_app.cli import main

    image, masks = _inputs(CAT)
    mask_path = tmp_path / "mask.png"
    Image.fromarray(masks[0].astype(np.uint8) * 255).save(mask_path)
    texts = {}
    for mode in ("eager", "static"):
        argv = [
            "describe",
            "--image",
            str(CAT),
            "--mask",
            str(mask_path),
            "--model",
            str(tiny_gar_dir),
            "--device",
            "cpu",
            "--max-new-tokens",
            "16",
            "--decode",
            mode,
        ]
        assert main(argv) == 0
        captured = capsys.readouterr()
        assert f"({mode} decoding)" in captured.err
        texts[mode] = captured.out
    assert texts["static"] == texts["eager"] and texts["eager"].strip()


def test_random_model_in_memory_is_the_written_checkpoint(tmp_path):
    """The benchmarks' in-memory random GAR (used at GAR-8B size) equals the checkpoint that
    ``load_gar`` reads, answer for answer."""
    import torch

    from gar_app.model.tiny import random_gar, write_tiny_gar

    image, masks = _inputs(COFFEE)
    loaded = load_gar(write_tiny_gar(tmp_path / "tiny", seed=3), device="cpu", dtype="fp32")
    built = random_gar("tiny", seed=3, device="cpu", dtype=torch.float32)
    answers = [gar.chat(image, masks).ask(QUESTIONS[0], GREEDY) for gar in (loaded, built)]
    assert answers[0] == answers[1] and answers[0]
