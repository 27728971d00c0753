"""Run the items on Ray Data: ``map_batches`` with one actor per worker, each loading GAR once.

The driver (this process) reads the results as the actors finish them and is the only
writer of the output, so the journal's exactly-once guarantee holds however many workers
run. With GPUs in the cluster each actor takes one; without, one CPU. Workers read the
images and the checkpoint from the same paths as the driver (shared storage on a cluster).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence

from gar_app.batch.worker import BatchOptions, Worker
from gar_app.errors import InputError

BATCH_SIZE = 4  # items per actor call: small, so results reach the output steadily


class RayWorker:
    """The Ray actor: a ``Worker`` over batches of JSON-encoded items."""

    def __init__(self, options: BatchOptions):
        self.worker = Worker(options)

    def __call__(self, batch: dict) -> dict:
        return {"result": [json.dumps(self.worker(json.loads(item))) for item in batch["item"]]}


def results(
    items: Sequence[dict], options: BatchOptions, address: str | None = None, workers: int | None = None
) -> Iterator[dict]:
    """Each item's result as Ray finishes it (in no particular order)."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise InputError('--ray needs Ray: pip install "gar-app[ray]"') from None
    if not items:
        return
    if not ray.is_initialized():
        # No address: start a local cluster on this machine's CPUs and GPUs.
        ray.init(
            address=address or None,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the command shows its own
    context.print_on_execution_start = False
    gpus = int(ray.cluster_resources().get("GPU", 0))
    size = workers or max(1, gpus)
    dataset = ray.data.from_items([{"item": json.dumps(item)} for item in items])
    dataset = dataset.map_batches(
        RayWorker,
        fn_constructor_kwargs={"options": options},
        batch_size=BATCH_SIZE,
        concurrency=(1, size),  # up to ``size`` actors, as many as the cluster can place
        num_gpus=1 if gpus else 0,
        num_cpus=1,
    )
    for batch in dataset.iter_batches(batch_size=None):
        for result in batch["result"]:
            yield json.loads(result)
