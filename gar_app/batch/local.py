"""Run the items in this process, one after the other, with one loaded model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from gar_app.batch.worker import BatchOptions, Worker


def results(items: Sequence[dict], options: BatchOptions) -> Iterator[dict]:
    """Each item's result as soon as it is ready, in item order."""
    if not items:
        return
    worker = Worker(options)
    for item in items:
        yield worker(item)
