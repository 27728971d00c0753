"""OpenAI's chat-completion objects: the whole answer, stream chunks, log-probabilities."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from gar_app.model.tokens import TokenLogprob


class Reply:
    """The objects of one response; every chunk of a stream shares its id and creation time."""

    def __init__(self, model: str, logprobs: bool = False, top_logprobs: int = 0):
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.logprobs = logprobs
        self.top_logprobs = top_logprobs

    def _object(self, kind: str, choices: list[dict], **extra) -> dict:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
            **extra,
        }

    def logprobs_of(self, tokens: Sequence[TokenLogprob]) -> dict | None:
        """``{"content": [...]}`` in OpenAI's layout; ``top_logprobs`` lists ``top_logprobs`` tokens
        (none when the request asked for ``logprobs`` alone, as OpenAI does)."""
        if not self.logprobs:
            return None
        return {
            "content": [
                {**_token(t), "top_logprobs": [_token(alt) for alt in t.top[: self.top_logprobs]]}
                for t in tokens
            ]
        }

    def completion(
        self, content: str, tokens: Sequence[TokenLogprob], finish_reason: str, usage: dict
    ) -> dict:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": None},
            "logprobs": self.logprobs_of(tokens),
            "finish_reason": finish_reason,
        }
        return self._object("chat.completion", [choice], usage=usage)

    def chunk(
        self, delta: dict, tokens: Sequence[TokenLogprob] = (), finish_reason: str | None = None
    ) -> dict:
        choice = {
            "index": 0,
            "delta": delta,
            "logprobs": self.logprobs_of(tokens) if tokens else None,
            "finish_reason": finish_reason,
        }
        return self._object("chat.completion.chunk", [choice])

    def usage_chunk(self, usage: dict) -> dict:
        return self._object("chat.completion.chunk", [], usage=usage)


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _token(token: TokenLogprob) -> dict:
    return {"token": token.text, "logprob": token.logprob, "bytes": list(token.text.encode("utf-8"))}
