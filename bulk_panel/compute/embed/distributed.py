"""Embedding on a Dask distributed cluster, part by part (the embedder's ``dask`` setting).

>>> Embedder(dask="tcp://scheduler:8786").fit(root, paths, cache_dir)   # an existing cluster
>>> Embedder(dask="local:4").fit(root, paths, cache_dir)                # a LocalCluster

The files are split into parts; each worker runs
:func:`~bulk_panel.compute.embed.embedder.embed_partition` on its share (load
the model once per process, embed, write shards into the same content-keyed cache folder,
which must therefore be reachable by every worker at the same path). The client records the
outcome of each part as it completes, so an interrupted run keeps every finished part.
:func:`run_partitions` and :func:`dask_client` know nothing of what the work is.
"""
from __future__ import annotations

import contextlib
import os
from typing import Callable, Sequence


@contextlib.contextmanager
def dask_client(address: str):
    """A ``distributed.Client`` for ``address``; ``local:N`` starts (and stops) a LocalCluster."""
    from distributed import Client, LocalCluster

    if address.startswith("local"):
        _, _, count = address.partition(":")
        workers = int(count) if count else (os.cpu_count() or 1)
        with LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster, Client(cluster) as client:
            yield client
    else:
        with Client(address) as client:
            yield client


def run_partitions(address: str, files: Sequence[str], work: Callable, on_batch: Callable, min_size: int = 1) -> int:
    """Run ``work(part)`` on the Dask cluster at ``address`` for parts of ``files`` (about four
    per worker, at least ``min_size`` files each); ``work`` gives ``(outcomes, count)`` and
    ``on_batch(outcomes, offset)`` is called as each part completes, ``offset`` being where the
    part starts in ``files``. Returns the sum of the counts.

    >>> run_partitions("local:2", files, functools.partial(embed_partition, settings=..., cache_dir=...), on_batch)
    """
    from distributed import as_completed

    with dask_client(address) as client:
        n_workers = max(1, len(client.scheduler_info()["workers"]))
        size = max(min_size, -(-len(files) // (4 * n_workers)))
        starts = list(range(0, len(files), size))
        futures = {client.submit(work, list(files[s : s + size]), pure=False): s for s in starts}
        total = 0
        for future in as_completed(futures):
            outcomes, count = future.result()
            on_batch(outcomes, futures[future])
            total += count
    return total
