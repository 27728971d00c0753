"""Progress of long jobs on the terminal (eval, judge, batch, track): one look, tqdm on stderr,
so stdout keeps only results and ``--no-progress`` turns every bar off the same way."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


def progress_bar(
    items: Iterable[Any] | None = None,
    *,
    what: str,
    unit: str,
    total: int | None = None,
    done: int = 0,
    shown: bool = True,
):
    """A tqdm bar over ``items`` (or updated by hand when there are none); ``done`` items
    were finished before (a resumed run), ``shown=False`` draws nothing."""
    from tqdm import tqdm

    return tqdm(items, desc=what, unit=unit, total=total, initial=done, disable=not shown, file=sys.stderr)


class ProgressCallback:
    """For jobs that report ``(done, total)`` themselves (tracking, rendering a preview): the
    bar opens on the first report and closes when ``done`` reaches ``total``."""

    def __init__(self, what: str, unit: str, shown: bool = True):
        self.what, self.unit, self.shown = what, unit, shown
        self._bar = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            self._bar = progress_bar(what=self.what, unit=self.unit, total=total, shown=self.shown)
        self._bar.total = total
        self._bar.update(done - self._bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressCallback:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # a job that stopped early leaves a finished line, not a half-drawn one
