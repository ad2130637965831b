"""Embedding on a Dask distributed cluster.

>>> Embedder(dask="tcp://scheduler:8786").fit(root, paths, cache_dir)   # an existing cluster
>>> Embedder(dask="local:4").fit(root, paths, cache_dir)                # a LocalCluster

The files are split into partitions; each worker loads the model once (per process), embeds
its share and writes shards into the same content-keyed cache folder, which must therefore
be reachable by every worker at the same path (one machine, or a shared file system). The
client records the outcome of each partition as it completes, so an interrupted run keeps
every finished partition.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Sequence

from .cache import EmbeddingCache


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


def embed_partition(files: Sequence[str], settings: dict, cache_dir: str):
    """Runs on a worker: embed ``files`` into the cache; returns (outcomes, new vectors)."""
    from .embed import Embedder

    embedder = Embedder(**settings, workers=0)  # a worker process decodes in its own thread
    cache = EmbeddingCache(Path(cache_dir), embedder.loaded().identity)
    outcomes = []
    embedded = embedder._embed_into_cache(files, cache, 0, outcomes.extend)
    return outcomes, embedded


def embed_on_dask(embedder, files: Sequence[str], cache_dir: Path, on_batch: Callable) -> int:
    """Embed ``files`` on the cluster named by ``embedder.dask``; ``on_batch(outcomes, offset)``
    is called as each partition completes. Returns how many new vectors were computed."""
    from distributed import as_completed

    # every setting but the Dask address and the client's worker count; the backend included:
    # workers load the ONNX export the client checked (Embedder._prepare_engine) from the cache
    names = ("model", "weights", "device", "batch_size", "max_pixels", "backend", "half")
    settings = {k: getattr(embedder, k) for k in names}
    with dask_client(embedder.dask) as client:
        n_workers = max(1, len(client.scheduler_info()["workers"]))
        size = max(embedder.batch_size, -(-len(files) // (4 * n_workers)))
        starts = list(range(0, len(files), size))
        futures = {
            client.submit(embed_partition, files[s : s + size], settings, str(cache_dir), pure=False): s
            for s in starts
        }
        embedded = 0
        for future in as_completed(futures):
            outcomes, count = future.result()
            on_batch(outcomes, futures[future])
            embedded += count
    return embedded
