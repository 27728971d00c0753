"""The output file: JSON Lines that survive being killed at any moment.

Each result is one line written by a single append and fsync'd before the next item is
counted as done, so after ``kill -9`` (or a power cut) the file holds every finished result
plus at most one torn last line. Opening it again drops that torn tail, and the keys of the
complete lines are the items a rerun skips: every item ends up in the file exactly once.
One file appended line by line (rather than a file per item, merged later) keeps the output
one ordinary JSON Lines file at every moment, readable while the run goes on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from gar_app.errors import InputError
from gar_app.files import sync_folder


class Journal:
    """Append-only JSON Lines with crash-safe resume; ``key_of(record)`` names a record's item."""

    def __init__(self, path: str | os.PathLike, key_of: Callable[[dict], str]):
        self.path = Path(path)
        self.key_of = key_of
        self.done: set[str] = set()
        self.records: list[dict] = []
        self._fd: int | None = None

    def open(self) -> set[str]:
        """Read the finished items (dropping a torn last line) and get ready to append."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        data = self.path.read_bytes() if existed else b""
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) < len(data):  # the last write was cut off: that item is not done
            os.ftruncate(self._fd, len(complete))
            os.fsync(self._fd)
        for number, line in enumerate(complete.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = self.key_of(record)
            except (ValueError, InputError):
                raise InputError(
                    f"line {number} of {self.path} is not a result of gar-app batch; "
                    "remove it (or choose another --out)"
                ) from None
            if key in self.done:
                raise InputError(f"{self.path} holds item {key} twice (line {number}); was it edited?")
            self.done.add(key)
            self.records.append(record)
        if not existed:
            sync_folder(self.path.parent)  # the new file's name survives a power cut too
        return self.done

    def write(self, record: dict) -> bool:
        """Append one result as a whole line and make it durable; False (and nothing written)
        when its item is already in the file."""
        key = self.key_of(record)
        if key in self.done:
            return False
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        written = 0
        while written < len(line):
            written += os.write(self._fd, line[written:])
        os.fsync(self._fd)
        self.done.add(key)
        self.records.append(record)
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Journal:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
