"""Conversations the server still holds, so a follow-up request continues one instead of
recomputing it.

OpenAI-style clients resend the whole dialogue with every request. After answering, the
server keeps the conversation (its ``ChatSession``: image features, KV cache) under a key
made of everything the model has seen: the image's bytes, each region (its mask, or its
box), and every turn's text including the answer just given. A request whose image,
regions and earlier turns hash to a held key continues that session; anything else
(another image, a changed mask, an edited answer) starts afresh. A held session is taken
out while it answers, so two requests never share one.

At most ``limit`` conversations are held; the least recently used are dropped first,
which bounds the memory their KV caches take.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gar_app.model import ChatSession


def conversation_key(image_digest: str, regions: Mapping[int, str], turns: Sequence[tuple[str, str]]) -> str:
    """Identity of a conversation state: image bytes, region identities, (role, text) turns."""
    document = {
        "image": image_digest,
        "regions": {str(k): regions[k] for k in sorted(regions)},
        "turns": [[role, text] for role, text in turns],
    }
    return hashlib.sha256(json.dumps(document, ensure_ascii=False).encode()).hexdigest()


class Conversations:
    """A bounded, least-recently-used store of conversations, with counters for /v1/stats."""

    def __init__(self, limit: int = 8):
        self.limit = max(0, limit)
        self._held: OrderedDict[str, ChatSession] = OrderedDict()
        self._lock = threading.Lock()
        self.reused = 0  # requests that continued a held conversation
        self.started = 0  # requests that started (or rebuilt) one
        self.dropped = 0  # conversations let go because the store was full

    def take(self, key: str) -> ChatSession | None:
        """The conversation held under ``key``, removed from the store (None if not held)."""
        with self._lock:
            session = self._held.pop(key, None)
            if session is None:
                self.started += 1
            else:
                self.reused += 1
            return session

    def keep(self, key: str, session: ChatSession) -> None:
        """Hold ``session`` under ``key``; drop the least recently used beyond the limit."""
        with self._lock:
            self._held.pop(key, None)
            self._held[key] = session
            while len(self._held) > self.limit:
                _key, old = self._held.popitem(last=False)
                old.release_cache()
                self.dropped += 1

    def __len__(self) -> int:
        return len(self._held)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "held": len(self._held),
                "limit": self.limit,
                "reused": self.reused,
                "started": self.started,
                "dropped": self.dropped,
            }
