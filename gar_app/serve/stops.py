"""Stop sequences (OpenAI's ``stop``) over streamed text.

Text that might be the start of a stop sequence is held back until the next piece shows
whether it is, so what has been streamed never has to be taken back, and the streamed
pieces join to exactly the non-streamed answer.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopScanner:
    """Feed pieces with ``push``; it returns the text safe to send and whether a stop was hit."""

    def __init__(self, stops: Sequence[str] = ()):
        self.stops = [s for s in stops if s]
        self.text = ""  # everything sent so far
        self._held = ""

    def push(self, piece: str) -> tuple[str, bool]:
        buffer = self._held + piece
        found = [at for at in (buffer.find(stop) for stop in self.stops) if at >= 0]
        if found:
            return self._send(buffer[: min(found)], ""), True
        keep = 0
        for length in range(min(len(buffer), max((len(s) for s in self.stops), default=1) - 1), 0, -1):
            if any(stop.startswith(buffer[-length:]) for stop in self.stops):
                keep = length
                break
        return self._send(buffer[: len(buffer) - keep], buffer[len(buffer) - keep :]), False

    def flush(self) -> str:
        """What was held back, once the answer ended without a stop sequence."""
        return self._send(self._held, "")

    def _send(self, text: str, held: str) -> str:
        self._held = held
        self.text += text
        return text
