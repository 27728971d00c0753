"""Describe all regions of a project: the resumable captioning job the app and the CLI share.

It walks the store's regions that have no caption (a page at a time, never the whole list in
memory), describes each with GAR's released single-region prompt (as ``Gar.describe``),
and saves each caption with its provenance (checkpoint and decoding settings) in its own
transaction as soon as it is made. So a run stopped any way — *Cancel*, Ctrl+C, a killed
process — keeps every caption written so far, and running again simply continues with the
regions still without one. Its progress is kept in the store too (``DescribeAll.unfinished``
finds a run that did not finish, for the app to offer resuming it).

It never replaces a caption a person wrote, edited or accepted: the save itself checks, in
its transaction, that the region still has the mask that was described and a caption it may
replace (``ProjectStore.save_caption(replace=...)``). An image someone holds a lease on is
left for last and then skipped if still held; an image changed on disk is skipped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from typing import Any

from gar_app.errors import GarAppError
from gar_app.formats.caption_source import CaptionSource
from gar_app.model.settings import GenerationSettings
from gar_app.project.owners import owner_gone, owner_id
from gar_app.project.project import OpenedImage, Project
from gar_app.project.store import ConflictError, LockedError, ProjectStore, RegionToDescribe
from gar_app.rle import rle_to_mask
from gar_app.tags import tag

JOB = "describe-all"
BATCH = 16  # regions read from the store per query
LEASE_SECONDS = 300.0  # renewed after every region; a dead owner on this machine is noticed at once
KEEP_ERRORS = 20


@dataclass
class DescribeProgress:
    """Where a run is; ``state``: running, finished, cancelled, interrupted or failed."""

    total: int = 0  # regions without a caption when the run started
    done: int = 0  # captions written
    skipped: int = 0  # changed meanwhile, captioned by a person, or its image held by someone
    failed: int = 0
    current: str | None = None  # the image being described
    state: str = "running"
    errors: list[str] = field(default_factory=list)  # the last few failures, one line each

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_region(
    gar, image, mask, settings: GenerationSettings, instruction: str | None, stop
) -> str | None:
    """The one model call of describe-all: GAR's released single-region caption of ``mask``
    (the region as ``<Prompt1>``, like ``Gar.describe``). None when ``stop`` was set before
    it finished (a partial caption is not a caption)."""
    session = gar.describe_chat(image, mask)
    text = "".join(session.stream_describe(None, settings, instruction, stop=stop))
    return None if stop.is_set() else text.strip()


class DescribeAll:
    """Caption every region of ``project`` that has none (``redo_model_captions``: also
    redo the captions a model wrote that no person touched), with ``gar``."""

    def __init__(
        self,
        project: Project,
        gar,
        settings: GenerationSettings | None = None,
        *,
        owner: str | None = None,
        redo_model_captions: bool = False,
        instruction: str | None = None,
    ):
        self.project = project
        self.store = project.store
        self.gar = gar
        self.settings = settings or GenerationSettings()
        self.owner = owner or owner_id(JOB)
        self.redo = redo_model_captions
        self.instruction = instruction
        self.progress = DescribeProgress(state="starting")
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._opened: tuple[str, OpenedImage | None] = ("", None)

    # -- running -------------------------------------------------------------------------

    def run(self, report: Callable[[DescribeProgress], object] | None = None) -> DescribeProgress:
        """Run to the end (or until ``cancel``); ``report`` gets the progress after each region.
        ``LockedError`` when another live process runs describe-all on this store."""
        progress = self.progress = DescribeProgress(total=self.store.count_to_describe(self.redo))
        self._save(progress)
        deferred: list[tuple[RegionToDescribe, str | None]] = []
        try:
            after = (0, -1)
            while not self._cancel.is_set():
                batch = self.store.regions_to_describe(after, BATCH, self.redo)
                if not batch:
                    break
                for item in batch:
                    if self._cancel.is_set():
                        break
                    after = (item.file_id, item.index)
                    self._one(item, None, deferred)
                    self._save(progress)
                    if report is not None:
                        report(progress)
            for item, text in deferred:  # images held by someone: once more, then skipped
                if self._cancel.is_set():
                    break
                self._one(item, text, None)
                self._save(progress)
            progress.current = None
            progress.state = "cancelled" if self._cancel.is_set() else "finished"
        except KeyboardInterrupt:
            progress.state = "interrupted"
            raise
        except BaseException as error:
            progress.state = "failed"
            progress.errors = [*progress.errors, str(error)][-KEEP_ERRORS:]
            raise
        finally:
            self._opened = ("", None)
            with suppress(LockedError):  # another process took the job over: its state wins
                self._save(progress, seconds=0)
            if report is not None:
                report(progress)
        return progress

    def start(self, report: Callable[[DescribeProgress], object] | None = None) -> threading.Thread:
        """Run in a background thread; read ``progress``, call ``cancel()`` to stop."""
        self._cancel.clear()
        self._thread = threading.Thread(target=self._background, args=(report,), name=JOB, daemon=True)
        self._thread.start()
        return self._thread

    def _background(self, report) -> None:
        try:
            self.run(report)
        except GarAppError as error:  # said in progress.errors (e.g. the store is read-only)
            self.progress.state = "failed"
            self.progress.errors = [*self.progress.errors, str(error)][-KEEP_ERRORS:]
            if report is not None:
                report(self.progress)

    def cancel(self) -> None:
        """Stop after the region being described (its partial caption is dropped)."""
        self._cancel.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @staticmethod
    def unfinished(store: ProjectStore) -> dict[str, Any] | None:
        """The last run's progress when it did not finish (cancelled, interrupted, or its
        process died), for offering to resume it; None when there is nothing to resume."""
        job = store.job(JOB)
        if job is None or job.state.get("state") == "finished":
            return None
        running = (
            job.state.get("state") == "running" and job.expires > time.time() and not owner_gone(job.owner)
        )
        return None if running else {**job.state, "owner": job.owner, "updated_at": job.updated_at}

    # -- one region ------------------------------------------------------------------------

    def _one(self, item: RegionToDescribe, text: str | None, deferred: list | None) -> None:
        progress = self.progress
        progress.current = item.path
        where = f"{item.path} {tag(item.index)}"
        try:
            entry = self.store.entry(item.path)
            if entry is not None and entry.lease_owner not in (None, self.owner):
                raise LockedError(f"{item.path} is being edited by {entry.lease_owner}", entry.lease_owner, 0)
            if text is None:
                opened = self._open(item.path)
                if opened.changed:
                    progress.skipped += 1
                    return
                text = describe_region(
                    self.gar,
                    opened.image,
                    rle_to_mask(item.mask),
                    self.settings,
                    self.instruction,
                    self._cancel,
                )
                if text is None:
                    return  # cancelled in the middle
                if not text:
                    raise GarAppError("the model gave an empty caption")
            source = CaptionSource.generated(self.gar.model_id, self.settings.to_dict())
            self.store.save_caption(
                item.path,
                item.index,
                text,
                source,
                self.owner,
                expected_mask=item.mask,
                replace="model" if self.redo else "empty",
            )
            progress.done += 1
        except LockedError:
            if deferred is None:
                progress.skipped += 1
            else:
                deferred.append((item, text))
        except ConflictError:
            progress.skipped += 1
        except GarAppError as error:
            progress.failed += 1
            progress.errors = [*progress.errors, f"{where}: {error}"][-KEEP_ERRORS:]

    def _open(self, path: str) -> OpenedImage:
        """The image being described (regions come grouped by image: one open each)."""
        if self._opened[0] != path or self._opened[1] is None:
            self._opened = (path, self.project.open_image(path))
        return self._opened[1]  # type: ignore[return-value]

    def _save(self, progress: DescribeProgress, seconds: float = LEASE_SECONDS) -> None:
        state = {
            **progress.to_dict(),
            "model": self.gar.model_id,
            "decoding": self.settings.to_dict(),
            "redo_model_captions": self.redo,
        }
        self.store.save_job(JOB, self.owner, state, seconds)
