"""Streamed answer pieces join to exactly the final answer, whatever the tokens split."""

from __future__ import annotations

import random

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from gar_app.model.tokens import TextStream

CORPUS = [
    "A green frog-shaped slipper, 日本語のテキスト, ☃ snow, 😀 emoji and café crème.",
    "  spaced   out\n\n lines ",
]


@pytest.fixture(scope="module")
def byte_level():
    """A byte-level BPE like Llama 3's: any byte sequence is spellable, so tokens can split characters."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(CORPUS * 3, trainer)
    return tokenizer


def _stream(tokenizer, ids):
    stream = TextStream(lambda t: tokenizer.decode(list(t), skip_special_tokens=False))
    pieces = [stream.push(i) for i in ids]
    return pieces + [stream.flush()], stream.text


@pytest.mark.parametrize("text", [*CORPUS, "日本", "  ☃  ", "x" * 300 + " 😀"])
def test_pieces_join_to_the_final_stripped_text(byte_level, text):
    ids = byte_level.encode(text).ids
    pieces, final = _stream(byte_level, ids)
    assert "".join(pieces) == final == text.strip()
    assert all("\ufffd" not in piece for piece in pieces)  # never half a character


def test_random_token_sequences_never_take_text_back(byte_level):
    rng = random.Random(0)
    for _ in range(300):
        ids = [rng.randrange(byte_level.get_vocab_size()) for _ in range(rng.randrange(1, 60))]
        pieces, final = _stream(byte_level, ids)
        assert "".join(pieces) == final


def test_each_token_decodes_a_short_window(byte_level):
    """A long answer must not re-decode everything for every token (quadratic cost)."""
    calls = []
    stream = TextStream(lambda t: calls.append(len(t)) or byte_level.decode(list(t)))
    for i in byte_level.encode("word " * 400).ids:
        stream.push(i)
    assert len(stream.tokens) > 100 and max(calls) <= 4
