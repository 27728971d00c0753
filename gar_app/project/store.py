"""The project store's one interface: what the app, the CLI and describe-all may ask of it.

The store is the source of truth of a project: a change is done when ``save_*`` returns,
because each save is one committed transaction. Everything behind ``ProjectStore`` can be
replaced (SQLite today, ``gar_app.project.sqlite``; a server database later) without
touching its callers, so the records here are plain data and the errors are the store's own.

Paths are the key: an image is named by its path relative to the project folder, with
``/`` separators (``"birds/heron.jpg"``), everywhere in this interface.

Concurrency, for two tabs or two servers on one store:

- **versions**: every file has a ``version`` that each annotation save increments. Saves
  take the version the caller last read (``expected_version``); a stale one raises
  ``ConflictError`` naming who saved in between and when, and changes nothing.
- **leases**: ``acquire`` marks an image as being edited by an owner for some seconds
  (renew by acquiring again). While a lease is live, saves by any other owner raise
  ``LockedError``; the gallery can show who holds it (``FileEntry.lease_owner``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from gar_app.errors import GarAppError
from gar_app.formats.caption_source import CaptionSource
from gar_app.formats.document import AnnotationDocument
from gar_app.formats.video_document import VideoDocument

STATUSES = ("new", "in_progress", "done", "skipped")
KINDS = ("image", "video", "other")  # "other": a file that is neither, listed as skipped
REPLACE = ("any", "model", "empty")  # which caption ``save_caption`` may replace

Document = AnnotationDocument | VideoDocument


# -- errors ------------------------------------------------------------------------------


class StoreError(GarAppError):
    """The store cannot do what was asked; the message says why and what to do."""


class DamagedStoreError(StoreError):
    """The store's file is not a readable database (truncated, overwritten, corrupted)."""


class NewerStoreError(StoreError):
    """The store was written by a newer GAR App, with a schema this one does not know."""


class StoreWriteError(StoreError):
    """A save could not be written (read-only, disk full, locked too long); nothing changed."""


class ConflictError(StoreError):
    """Someone else saved this image since the caller read it; nothing was overwritten."""

    def __init__(self, message: str, path: str, version: int, saved_by: str | None, saved_at: str | None):
        super().__init__(message)
        self.path, self.version, self.saved_by, self.saved_at = path, version, saved_by, saved_at


class LockedError(StoreError):
    """Another owner holds a live lease on the image (or job); nothing was changed."""

    def __init__(self, message: str, owner: str, expires: float):
        super().__init__(message)
        self.owner, self.expires = owner, expires


# -- records -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    """One file of the project as the gallery shows it."""

    path: str
    kind: str  # "image", "video" or "other"
    size: int  # bytes on disk at the last scan
    mtime_ns: int
    sha256: str | None  # of the file's bytes as last read; None until it is first opened
    width: int | None  # None until its header was read (``Project.probe``) or it was opened
    height: int | None
    problem: str | None  # why it cannot be used (unreadable, over the limits, not an image)
    missing: bool  # annotated, but the file is gone from the folder
    changed: bool  # the file is not the one its annotations were made on (other bytes)
    status: str  # one of STATUSES
    regions: int
    captioned: int
    version: int  # 0: never saved
    saved_by: str | None
    saved_at: str | None  # UTC, see conversation.utc_now
    lease_owner: str | None = None  # who is editing it now, when a lease is live

    @property
    def folder(self) -> str:
        return self.path.rpartition("/")[0]

    @property
    def annotated(self) -> bool:
        return self.regions > 0

    @property
    def uncaptioned(self) -> int:
        return self.regions - self.captioned

    @property
    def failed(self) -> bool:
        return self.kind != "other" and self.problem is not None


@dataclass(frozen=True)
class Filters:
    """What the gallery lists; ``None`` means any. Files of kind "other" are listed only when
    ``kinds`` asks for them."""

    status: tuple[str, ...] | None = None  # any of these STATUSES
    folder: str | None = None  # this folder and the folders under it ("" is the whole project)
    text: str | None = None  # in a region's caption, case-insensitive (images)
    kinds: tuple[str, ...] = ("image", "video")
    annotated: bool | None = None  # has regions / has none
    uncaptioned: bool | None = None  # has a region without a caption
    failed: bool | None = None
    changed: bool | None = None


EVERYTHING = Filters()  # every image and video


@dataclass(frozen=True)
class Counts:
    """``"37 of 500 done"``: ``done`` of ``images + videos``; regions over all of them."""

    images: int = 0
    videos: int = 0
    annotated: int = 0  # images and videos with at least one region
    regions: int = 0
    captioned: int = 0
    new: int = 0
    in_progress: int = 0
    done: int = 0
    skipped: int = 0  # marked skipped by a person (status)
    failed: int = 0
    changed: int = 0
    missing: int = 0
    not_images: int = 0  # files in the folder that are neither image nor video

    @property
    def total(self) -> int:
        return self.images + self.videos

    def to_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Stored:
    """A file and its annotations as last saved (``document`` is None when never saved)."""

    entry: FileEntry
    document: Document | None


@dataclass(frozen=True)
class RegionToDescribe:
    """A region describe-all should caption: where it is and the mask it had when listed."""

    file_id: int
    path: str
    index: int
    mask: dict[str, Any]  # COCO RLE, counts as text


@dataclass(frozen=True)
class KnownFile:
    """What the store remembers of a file on disk, for the incremental scan."""

    name: str  # within its folder
    size: int
    mtime_ns: int
    annotated_sha256: str | None  # the file hash its annotations were made on; None: none
    missing: bool
    keep: bool  # has annotations or a status: kept (as missing) when the file goes


@dataclass(frozen=True)
class FileChange:
    """One file found, changed or gone, as the scan decided (see ``Project.scan``)."""

    path: str
    kind: str
    size: int = 0
    mtime_ns: int = 0
    sha256: str | None = None  # the new hash when the scan had to read the file
    changed: bool = False  # other bytes than the annotated file
    problem: str | None = None
    gone: bool = False  # the file is no longer there


@dataclass(frozen=True)
class Probe:
    """A file's size as read from it, or why it cannot be used (then width and height are None)."""

    path: str
    width: int | None
    height: int | None
    problem: str | None


@dataclass(frozen=True)
class Job:
    """A background job's saved state (describe-all), and who runs it."""

    name: str
    owner: str
    expires: float  # the owner's claim lapses then (epoch seconds)
    state: dict[str, Any]
    updated_at: str


# -- the interface ---------------------------------------------------------------------


class ProjectStore(Protocol):
    """Everything the app, the CLI and the jobs read from or write to a project's store."""

    location: str  # where it lives, as shown in messages

    # files (the scan keeps them in step with the folder)
    def folders(self) -> set[str]: ...
    def known_files(self, folder: str) -> dict[str, KnownFile]: ...
    def apply_changes(self, changes: list[FileChange]) -> None: ...
    def record_probes(self, probes: list[Probe]) -> None: ...
    def record_hash(self, path: str, sha256: str, width: int, height: int) -> None: ...
    def unprobed(self, kind: str, limit: int) -> list[str]: ...

    # reading
    def entry(self, path: str) -> FileEntry | None: ...
    def load(self, path: str) -> Stored: ...
    def page(
        self, filters: Filters = EVERYTHING, after: str | None = None, limit: int = 100
    ) -> list[FileEntry]: ...
    def neighbour(
        self, path: str | None, filters: Filters = EVERYTHING, forward: bool = True, wrap: bool = False
    ) -> FileEntry | None: ...
    def position(self, path: str, filters: Filters = EVERYTHING) -> int: ...
    def counts(self, filters: Filters = EVERYTHING) -> Counts: ...
    def documents(self, filters: Filters = EVERYTHING) -> Iterator[Stored]: ...

    # writing annotations (each one transaction; versions and leases as the module says)
    def save_document(
        self, path: str, document: Document, expected_version: int | None, owner: str
    ) -> int: ...
    def save_caption(
        self,
        path: str,
        index: int,
        caption: str,
        source: CaptionSource | None,
        owner: str,
        expected_version: int | None = None,
        expected_mask: dict[str, Any] | None = None,
        replace: str = "any",
    ) -> int: ...
    def set_status(self, path: str, status: str, owner: str) -> None: ...
    def discard(self, path: str, owner: str) -> None: ...
    def rebase(self, path: str, owner: str) -> int: ...

    # editing leases
    def acquire(self, path: str, owner: str, seconds: float = 60.0) -> None: ...
    def release(self, path: str, owner: str) -> None: ...

    # describe-all
    def regions_to_describe(
        self, after: tuple[int, int], limit: int, redo_model: bool = False
    ) -> list[RegionToDescribe]: ...
    def count_to_describe(self, redo_model: bool = False) -> int: ...
    def job(self, name: str) -> Job | None: ...
    def save_job(self, name: str, owner: str, state: dict[str, Any], seconds: float) -> None: ...

    def close(self) -> None: ...
