"""What one browser tab keeps between events: the workspace, plus state only the page needs.

The library's ``Workspace`` holds the work; ``Session`` adds what exists because of the page:
which images and masks the browser already has (so an update sends only new ones), a
question waiting for an answer (switch images with unsaved work?), the folder of this tab's
export files, and a lock so two quick clicks do not edit the regions at once. ``close``
frees it all when the tab closes or the session times out.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from components.memory import give_back
from gar_app.formats.document import VideoFrame
from gar_app.workspace import Services, Workspace

if TYPE_CHECKING:  # imported when a video is tracked (OpenCV), not with every page
    from gar_app.tracking.video_workspace import VideoWorkspace


@dataclass
class PendingImage:
    """An image (a path or a video frame) the person asked for while there was unsaved work."""

    source: object
    name: str
    video: VideoFrame | None = None  # of a frame


@dataclass(eq=False)
class Session:
    workspace: Workspace
    sent: set[str] = field(default_factory=set)  # canvas payload keys the browser holds
    pending_image: PendingImage | None = None
    renders: int = 0  # canvas updates so far; each carries a new number
    export_paths: list[str] = field(default_factory=list)  # the files of the last export
    tracking: VideoWorkspace | None = None  # while a video is tracked on the canvas
    lock: threading.RLock = field(default_factory=threading.RLock)
    _exports: Path | None = None

    @property
    def tracking_unsaved(self) -> bool:
        """A video is being tracked and has work since its last export or import."""
        return self.tracking is not None and self.tracking.unsaved

    @property
    def export_folder(self) -> Path | None:
        """Where this tab's export files are (None before its first export)."""
        return self._exports

    def exports(self) -> Path:
        """This tab's folder for export files (emptied before each export, removed on close)."""
        if self._exports is None or not self._exports.exists():
            self._exports = Path(tempfile.mkdtemp(prefix="gar-export-"))
        for old in self._exports.iterdir():
            old.unlink(missing_ok=True)
        return self._exports

    def close(self) -> None:
        """Let go of everything heavy: the conversation's model state, the image, the export files."""
        ws = self.workspace
        ws.stop.set()
        ws.conversation.clear()
        ws.image = ws.marking = None
        self.sent.clear()
        self.pending_image = None
        self.export_paths = []
        if self.tracking is not None:
            self.tracking.close()
            self.tracking = None
        if self._exports is not None:
            shutil.rmtree(self._exports, ignore_errors=True)


def session_of(state: Session | None, services: Services) -> Session:
    """This tab's session, made on first use (gr.State must not deep-copy the model)."""
    return state if isinstance(state, Session) else Session(Workspace(services))


def close_session(state: Session | None) -> None:
    """gr.State's delete callback: the tab closed or the session was idle too long."""
    if isinstance(state, Session):
        state.close()
        give_back()
