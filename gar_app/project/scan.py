"""Keeping the store's list of files in step with the folder, incrementally.

A file is compared by size and modification time first; its bytes are read (sha256) only
when it changed *and* has annotations, to tell whether the annotations still belong to it
(a touched file with the same bytes keeps them; other bytes flag it ``changed``). Nothing
else is read, so re-opening a 10,000-image project costs one ``stat`` per file, and the
store is read one folder at a time so memory stays bounded by the largest folder.

Hidden files and folders (a leading dot, the store's own ``.gar-project`` among them) are
not part of the project; symbolic links to folders are not followed (no loops).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gar_app.formats.document import file_sha256
from gar_app.project.store import FileChange, ProjectStore

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v")


def kind_of(name: str) -> str:
    suffix = os.path.splitext(name)[1].lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    return "video" if suffix in VIDEO_SUFFIXES else "other"


def _not_media(name: str) -> str:
    suffix = os.path.splitext(name)[1].lower()
    return f"not an image or a video ({suffix or 'no extension'})"


@dataclass
class ScanReport:
    files: int = 0  # found in the folder (images, videos and others)
    added: int = 0
    updated: int = 0  # size or time changed
    gone: int = 0
    changed: list[str] = field(default_factory=list)  # annotated, now with other bytes
    unreadable: list[str] = field(default_factory=list)  # folders that could not be listed
    seconds: float = 0.0


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def walk(root: Path, exclude: Path | None = None) -> Iterator[tuple[str, list[tuple[str, int, int]], bool]]:
    """``(folder, [(name, size, mtime_ns)], listed)`` for every folder under ``root``, in
    name order; ``listed`` is False for a folder that could not be read."""
    stack = [""]
    excluded = exclude.resolve() if exclude is not None else None
    while stack:
        folder = stack.pop()
        files, folders = [], []
        try:
            with os.scandir(root / folder if folder else root) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if excluded is None or Path(entry.path).resolve() != excluded:
                                folders.append(entry.name)
                        elif entry.is_file():
                            stat = entry.stat()
                            files.append((entry.name, stat.st_size, stat.st_mtime_ns))
                    except OSError:
                        continue  # vanished or a dangling link: not a file of the project
        except OSError:
            yield folder, [], False
            continue
        files.sort()
        yield folder, files, True
        stack.extend(_join(folder, name) for name in sorted(folders, reverse=True))


def scan(root: Path, store: ProjectStore, exclude: Path | None = None) -> ScanReport:
    """Bring the store's file list up to date with ``root`` (see the module docstring)."""
    started = time.perf_counter()
    report = ScanReport()
    known_folders = store.folders()
    seen: set[str] = set()
    for folder, files, listed in walk(root, exclude):
        if not listed:
            report.unreadable.append(folder or ".")
            seen.add(folder)  # keep what the store knows of it; it may be readable again
            continue
        seen.add(folder)
        known = store.known_files(folder) if folder in known_folders else {}
        changes: list[FileChange] = []
        for name, size, mtime_ns in files:
            report.files += 1
            old = known.pop(name, None)
            if old is not None and not old.missing and (old.size, old.mtime_ns) == (size, mtime_ns):
                continue
            path, kind = _join(folder, name), kind_of(name)
            sha, changed, problem = None, False, None if kind != "other" else _not_media(name)
            if old is not None and old.annotated_sha256 is not None:  # which bytes is it now?
                try:
                    sha = file_sha256(root / path)
                except OSError as error:
                    problem = f"cannot read it: {error.strerror or error}"
                changed = sha is not None and sha != old.annotated_sha256
                if changed:
                    report.changed.append(path)
            if old is None:
                report.added += 1
            else:
                report.updated += 1
            changes.append(FileChange(path, kind, size, mtime_ns, sha, changed, problem))
        for name, old in known.items():
            if not old.missing:
                report.gone += 1
                changes.append(FileChange(_join(folder, name), kind_of(name), gone=True))
        store.apply_changes(changes)
    for folder in sorted(known_folders - seen):
        gone = [
            FileChange(_join(folder, name), kind_of(name), gone=True)
            for name, old in store.known_files(folder).items()
            if not old.missing
        ]
        report.gone += len(gone)
        store.apply_changes(gone)
    report.seconds = time.perf_counter() - started
    return report
