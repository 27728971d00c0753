"""Writing result files so that a reader, a kill or a power cut never sees half of one."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any


def write_atomically(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path``: readers see the old file or the whole new one, never a mix.

    The text goes to a temporary file in the same folder (``os.replace`` is atomic only
    within one file system), is synced, and then replaces ``path``; the folder is synced
    too, so the new name survives a power cut. On any failure the temporary file is removed.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    # created like open(path, "w") would create it (0666 less the umask; mkstemp's 0600 is not)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def sync_folder(folder: str | os.PathLike) -> None:
    """Make a folder's entries (a new or renamed file's name) durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_json_atomically(path: str | os.PathLike, value: Any) -> None:
    """``value`` as one line of JSON (UTF-8, not escaped to ASCII), written atomically."""
    write_atomically(path, json.dumps(value, ensure_ascii=False) + "\n")
