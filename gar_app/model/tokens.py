"""An answer's tokens: choosing each one (greedy or sampled), its log-probability, and
their text as it streams. The loop that runs the model is ``chat``; the static-KV step it
may replay is ``static_decode``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from gar_app.model.settings import GenerationSettings


@dataclass(frozen=True)
class TokenLogprob:
    """One token with its log-probability; for a generated token, ``top`` holds the best
    ``k`` tokens of that step (best first), which include the chosen one when it ranks."""

    id: int
    text: str
    logprob: float
    top: tuple[TokenLogprob, ...] = ()

    def to_dict(self) -> dict:
        entry = {"id": self.id, "text": self.text, "logprob": self.logprob}
        if self.top:
            entry["top"] = [alternative.to_dict() for alternative in self.top]
        return entry


def token_logprob(logits: torch.Tensor, token: int, k: int, spell: Callable[[int], str]) -> TokenLogprob:
    """``token``'s log-probability under the step's raw fp32 logits, with the top ``k``.

    The distribution is the model's own (log-softmax of the logits before any banning,
    temperature or top-p), so the numbers compare with other implementations of GAR.
    """
    logprobs = torch.log_softmax(logits.float().reshape(-1), dim=-1)
    values, ids = torch.topk(logprobs, k)
    top = tuple(
        TokenLogprob(int(i), spell(int(i)), float(v))
        for v, i in zip(values.tolist(), ids.tolist(), strict=True)
    )
    return TokenLogprob(token, spell(token), float(logprobs[token]), top)


class TokenChooser:
    """Picks the next token from logits: argmax, or temperature / top-k / top-p sampling.

    ``banned`` ids are never chosen: image and region placeholders are inputs only, and a
    generated one would be taken for a placeholder when the conversation is re-read.
    """

    def __init__(self, settings: GenerationSettings, device: torch.device, banned: Sequence[int] = ()):
        self.settings = settings
        self.banned = torch.tensor(sorted(banned), dtype=torch.long, device=device)
        self.generator = None
        if settings.do_sample and settings.seed is not None:
            self.generator = torch.Generator(device=device).manual_seed(settings.seed)

    def __call__(self, logits: torch.Tensor) -> int:
        logits = logits.float().reshape(-1)
        if self.banned.numel():
            logits = logits.index_fill(0, self.banned, float("-inf"))
        settings = self.settings
        if not settings.do_sample:
            return int(logits.argmax())
        logits = logits / settings.temperature
        if settings.top_k:
            kth = torch.topk(logits, min(settings.top_k, logits.numel())).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if settings.top_p < 1.0:
            ordered, order = torch.sort(logits, descending=True)
            cumulative = ordered.softmax(-1).cumsum(-1)
            drop = cumulative - ordered.softmax(-1) >= settings.top_p  # keep the token that crosses top_p
            logits = logits.scatter(0, order[drop], float("-inf"))
        probs = logits.softmax(-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))


class TextStream:
    """Incremental detokenisation whose pieces join to exactly the final, stripped answer.

    Text is held back while it ends in an incomplete UTF-8 sequence or in whitespace (the
    final answer is stripped), so a streamed piece is never taken back. Each token decodes
    only a short window of tokens (the ones since the last complete character), so a long
    answer costs the same per token as a short one.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str]):
        self._decode = decode
        self.tokens: list[int] = []
        self._window = 0  # tokens[_window:_read] decode to the end of _raw
        self._read = 0
        self._raw = ""  # the text of tokens[:_read], complete characters only
        self._sent = 0  # characters of the stripped answer already streamed

    @property
    def text(self) -> str:
        return self._decode(self.tokens).strip()

    def push(self, token: int) -> str:
        self.tokens.append(token)
        known = self._decode(self.tokens[self._window : self._read])
        latest = self._decode(self.tokens[self._window :])
        if latest.endswith("\ufffd") or len(latest) <= len(known):
            return ""
        self._raw += latest[len(known) :]
        self._window, self._read = self._read, len(self.tokens)
        text = self._raw.lstrip()
        ready = len(text.rstrip())
        if ready <= self._sent:
            return ""
        piece = text[self._sent : ready]
        self._sent = ready
        return piece

    def flush(self) -> str:
        """Whatever is left once decoding stopped (an incomplete character at the very end)."""
        text = self.text
        piece = text[self._sent :]
        self._sent = len(text)
        return piece
