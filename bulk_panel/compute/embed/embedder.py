"""The :class:`Embedder`: image files → L2-normalised embedding vectors, cached by content hash.

>>> embedder = Embedder(model="tf_efficientnet_lite0")        # offline ImageNet weights
>>> embedder.fit("photos", ["a.jpg", "b/c.png"]).embeddings_.shape
(2, 1280)

On the CPU the model runs through ONNX Runtime by default (``backend='auto'``: exported once
into the cache and checked against PyTorch, see :mod:`.onnx`), on a GPU through PyTorch; with
``dask`` set, the files are embedded on Dask workers (:mod:`.distributed`, running :func:`embed_partition`).
torch is imported lazily, inside the functions that need it.
"""
from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import param

from ..cache import EmbeddingCache, l2_normalise, FileIndex, content_hash, default_cache_dir
from ..images import DEFAULT_MAX_PIXELS, ImageError, Skipped, decode_image
from . import models
from .distributed import run_partitions
from .engines import HALF_TOLERANCE, torch_features
from .models import DEFAULT_MODEL, EmbedError, LoadedModel
from .preprocess import Preprocess

log = logging.getLogger("bulk_panel")

Progress = Callable[[int, int], None]


class _ImageFiles:
    """A map-style dataset: index → (index, hash, width, height, tensor or None, error or None).

    Runs in decoding threads or DataLoader processes: reads the bytes once, hashes them, and decodes only
    when the hash is not cached already (a renamed file costs a read, not a forward pass).
    """

    def __init__(self, files: Sequence[str], preprocess: Preprocess, known: frozenset, draft_size: int, max_pixels: int):
        self.files = files
        self.transform = preprocess.image  # uint8 tensors (a quarter of the bytes to pass)
        self.grey = preprocess.takes_grey
        self.known = known
        self.draft_size = draft_size
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        path = self.files[i]
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except PermissionError:
            return i, "", 0, 0, None, "permission denied"
        except OSError as exc:
            return i, "", 0, 0, None, f"unreadable ({exc.strerror or exc})"
        digest = content_hash(data)
        try:
            image, (width, height) = decode_image(
                data, max_pixels=self.max_pixels, draft_size=self.draft_size, grey=self.grey
            )
        except ImageError as exc:
            return i, digest, 0, 0, None, str(exc)
        if digest in self.known:
            return i, digest, width, height, None, None
        return i, digest, width, height, self.transform(image), None


def _collate(items):
    """A batch of dataset items → (rows without their tensors, the tensors stacked or None),
    stacked here in the worker so that ``pin_memory`` pins the very tensor sent to the GPU."""
    import torch

    tensors = [item[4].numpy() for item in items if item[4] is not None]
    rows = [(i, digest, w, h, tensor is not None, error) for i, digest, w, h, tensor, error in items]
    # numpy's one-thread copy: torch.stack in the main process would wake torch's thread pool
    return rows, torch.from_numpy(np.stack(tensors)) if tensors else None


class Embedder(param.Parameterized):
    """Turns image files into L2-normalised embedding vectors with a timm model.

    Fitted attributes: ``embeddings_`` (float32, L2-normalised, one row per used file),
    ``classes_`` (top ImageNet classes per image from the model's own head, or None), ``paths_`` (the used
    files, relative), ``hashes_``, ``sizes_`` (width, height), ``skipped_`` (list of Skipped),
    ``weights_`` (where the weights came from), ``counts_`` (``embedded``: the new vectors
    computed; ``cached``, files whose vector was in the cache before the run; ``skipped``),
    ``identical_`` (files with the same content as another file whose vector this run computed:
    they share it; ``embedded + cached + identical_`` = the files used),
    ``backend_`` (the engine that computed the new vectors: onnx, torch, torch-fp16; None if none).
    """

    model = param.String(
        default=DEFAULT_MODEL,
        doc="timm model name; the default ships with offline ImageNet weights",
    )
    weights = param.String(
        default=None,
        allow_None=True,
        doc="weights: empty for the offline default (else the hub), 'hub', or a local file path",
    )
    batch_size = param.Integer(default=32, bounds=(1, 4096), doc="images per forward pass")
    device = param.String(default="auto", doc="torch device: auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")
    workers = param.Integer(
        default=min(4, os.cpu_count() or 1),
        bounds=(0, 64),
        doc="images read and decoded at once: on the CPU, threads between forward passes; on a GPU, "
        "DataLoader processes beside them (0: one at a time, in the main process)",
    )
    dask = param.String(
        default=None,
        allow_None=True,
        doc="embed on Dask: a scheduler address (tcp://host:8786) or local:N for N local workers",
    )
    max_pixels = param.Integer(
        default=DEFAULT_MAX_PIXELS, bounds=(1, None), doc="skip images declaring more pixels than this"
    )
    backend = param.Selector(
        default=os.environ.get("BULK_PANEL_BACKEND", "auto") if os.environ.get("BULK_PANEL_BACKEND") in (
            "auto", "torch", "onnx") else "auto",
        objects=["auto", "torch", "onnx"],
        doc="inference engine: auto (ONNX Runtime on CPU when installed and equal to PyTorch, "
        "PyTorch on a GPU), torch, or onnx (exported once into the cache, runs on the CPU)",
    )
    half = param.Boolean(
        default=False,
        doc="CUDA only: run the model in float16 when its output matches float32 on the first batch",
    )
    precision = param.Selector(
        default="float32", objects=["float32", "int8"],
        doc="float32, or int8 on the CPU: ONNX Runtime's static int8 quantization, calibrated on "
        "this cache's first images (faster; vectors a little different, cached apart)",
    )

    #: parameters that change the vectors (the rest only change speed); int8 vectors are
    #: cached apart from float ones (:meth:`cache_identity`).
    #: ``backend`` and ``half`` are not among them, nor in the cache key: an engine is used only
    #: after its output matched PyTorch float32 on a real batch (ONNX: max abs diff ~3e-5 on raw
    #: features, tolerance 1e-3), the same order as CPU vs CUDA or channels_last differences,
    #: which are not keyed either. Keying them would re-embed a whole collection when a cache
    #: filled on a GPU is read on a CPU, or when ONNX Runtime is installed later.
    result_params = ("model", "weights", "precision")

    def __init__(self, **params):
        super().__init__(**params)
        self._engine: Optional[tuple] = None  # (settings, backend name, forward)
        self._calibrate_on: Sequence[str] = ()  # the files an int8 model would be calibrated on

    def cache_identity(self) -> dict:
        """What the cached vectors depend on: the loaded model's identity, and int8 when it is."""
        identity = self.loaded().identity
        return identity if self.precision == "float32" else {**identity, "precision": self.precision}

    def loaded(self) -> LoadedModel:
        """The model, loaded once per process for each (model, weights, device)."""
        return models.shared_model(self.model, self.weights, self.device)  # at call time: tests replace it

    def engine(self, sample, folder: Optional[Path] = None) -> tuple[str, Callable]:
        """``(backend name, forward)`` for this embedder's settings, chosen once (per settings)
        with ``sample``, a real preprocessed batch, to check an ONNX export or float16 against
        PyTorch float32; ``folder`` keeps the ONNX export (None: memory only). ``forward(batch)``
        gives raw pooled features as float32 numpy."""
        settings = (self.model, self.weights, self.device, self.backend, self.half, self.precision, folder)
        if self._engine is None or self._engine[0] != settings:
            self._engine = (settings, *self._choose_engine(sample, folder))
        return self._engine[1:]

    def _choose_engine(self, sample, folder: Optional[Path]) -> tuple[str, Callable]:
        lm = self.loaded()
        plain = ("torch", functools.partial(torch_features, lm.model, lm.device))
        if self.precision == "int8":
            return self._int8_engine(lm, sample, folder, plain[1])
        if self.half and not lm.device.startswith("cuda"):
            log.info("float16 is a CUDA option; embedding in float32 on %s", lm.device)
        if self.backend == "torch" or (self.backend == "auto" and lm.device != "cpu"):
            if self.half and lm.device.startswith("cuda"):
                return self._half_engine(lm, sample) or plain
            return plain
        from .onnx import OnnxUnavailable, onnx_model

        try:
            model = onnx_model(lm, sample, folder, plain[1])
        except OnnxUnavailable as exc:
            log.warning("ONNX backend not used for %s: %s; embedding with PyTorch", self.model, exc)
            return plain
        log.info("embedding with ONNX Runtime on the CPU (max abs diff vs PyTorch %.1e)", model.max_abs_diff)
        return "onnx", model

    def _int8_engine(self, lm, sample, folder: Optional[Path], reference: Callable) -> tuple[str, Callable]:
        """The int8 ONNX Runtime model (see :func:`.onnx.int8_model`), calibrated on up to
        ``CALIBRATION_IMAGES`` of the files being embedded; EmbedError when it cannot run."""
        from .onnx import CALIBRATION_IMAGES, OnnxUnavailable, int8_model, onnx_model

        if self.backend == "torch":
            raise EmbedError("precision int8 runs with ONNX Runtime, not with backend torch (use --backend auto)")
        if lm.device != "cpu":
            raise EmbedError(f"precision int8 runs on the CPU, not on {lm.device} (use --device cpu, or --half on a GPU)")

        def calibration():
            files = self._calibrate_on
            spread = files[:: max(1, len(files) // CALIBRATION_IMAGES)][:CALIBRATION_IMAGES]
            batch = self._sample(spread, CALIBRATION_IMAGES)
            return None if batch is None else np.ascontiguousarray(batch.numpy(), dtype=np.float32)

        try:
            model = int8_model(lm, onnx_model(lm, sample, folder, reference), calibration, folder)
        except OnnxUnavailable as exc:
            raise EmbedError(f"precision int8 is not available: {exc}") from exc
        log.info("embedding in int8 with ONNX Runtime (calibrated on %d images; median cosine to float %.3f)",
                 model.images, model.cosine["median"])
        return "onnx-int8", model

    def _half_engine(self, lm, sample) -> Optional[tuple[str, Callable]]:
        """float16 on CUDA when its features match float32 on ``sample``, else None (logged)."""
        import copy

        model = copy.deepcopy(lm.model).half()  # a copy: classify() keeps the float32 head
        full = torch_features(lm.model, lm.device, sample)
        diff = float(np.abs(torch_features(model, lm.device, sample, half=True) - full).max())
        if diff <= HALF_TOLERANCE * float(np.abs(full).max()):
            log.info("embedding in float16 on %s (max abs diff vs float32 %.1e)", lm.device, diff)
            return "torch-fp16", functools.partial(torch_features, model, lm.device, half=True)
        log.warning("float16 not used: its features differ from float32 by %.1e; embedding in float32", diff)
        return None

    def embed_tensors(self, batch, normalise: bool = True, folder: Optional[Path] = None) -> np.ndarray:
        """Forward a batch of preprocessed images with the chosen :meth:`engine`: pooled pre-logits
        features, L2-normalised unless ``normalise=False`` (the cache keeps them raw, so the
        classifier head still applies)."""
        _, forward = self.engine(batch, folder)
        feats = np.asarray(forward(batch), dtype=np.float32)
        return l2_normalise(feats, out=feats) if normalise else feats

    def classify(self, features: np.ndarray, k: int = 5, chunk: int = 65_536):
        """Top-``k`` classes of raw pooled ``features`` through the model's own classifier head:
        ``(indices int16 n×k, probabilities float16 n×k)``, or None for a model without a
        1000-class (ImageNet) head."""
        import torch

        lm = self.loaded()
        head = lm.model.get_classifier() if hasattr(lm.model, "get_classifier") else None
        if not isinstance(head, torch.nn.Linear) or head.out_features != 1000 or head.in_features != features.shape[1]:
            return None
        idx = np.empty((len(features), k), np.int16)
        prob = np.empty((len(features), k), np.float16)
        with torch.inference_mode():
            for start in range(0, len(features), chunk):
                part = torch.from_numpy(np.ascontiguousarray(features[start : start + chunk])).to(lm.device)
                p, i = head(part).softmax(dim=1).topk(k, dim=1)
                idx[start : start + chunk] = i.cpu().numpy()
                prob[start : start + chunk] = p.cpu().numpy()
        return idx, prob

    def _dataset(self, files: Sequence[str], known: frozenset = frozenset()) -> "_ImageFiles":
        lm = self.loaded()
        size = lm.data_config["input_size"][-1]
        return _ImageFiles(files, lm.preprocess, known, 2 * size, self.max_pixels)

    def _sample(self, files: Sequence[str], count: int):
        """Up to ``count`` of ``files`` decoded and transformed here, as one float batch (or None)."""
        import torch

        dataset = self._dataset(files)
        tensors = []
        for i in range(len(dataset)):
            tensor = dataset[i][4]
            if tensor is not None and len(tensors) < count:
                tensors.append(tensor)
        return self._normalise(torch.stack(tensors)) if tensors else None

    def _normalise(self, stacked, device: str = "cpu"):
        """:meth:`Preprocess.normalise` into the layout the chosen engine takes without a copy
        (ONNX Runtime: contiguous NCHW; PyTorch: channels_last)."""
        onnx = self._engine is not None and self._engine[1].startswith("onnx")
        return self.loaded().preprocess.normalise(stacked, device, channels_last=not onnx)

    def _prepare_engine(self, files: Sequence[str], folder: Path, count: int = 8) -> None:
        """Choose the engine here on the first decodable of ``files`` (exporting and checking
        ONNX once), so Dask workers load the export from ``folder`` instead of each exporting it."""
        sample = self._sample(files[: 4 * count], count)
        if sample is not None:
            self.engine(sample, folder)

    def _batches_between_forwards(self, dataset: "_ImageFiles", threads: int):
        """Batches of ``dataset`` for a forward pass on the CPU: each decoded by ``threads``
        threads while the model waits, none while it runs.

        The model's threads use every core, and work beside them (DataLoader processes, as
        :meth:`_batches_alongside_forwards`) preempts one of them now and then: every parallel
        step of the forward pass then waits for its slowest thread. Pillow's decoders and
        resizes let go of the GIL, so threads share out a batch of large images (1.9× on 2
        cores for openclipart); small ones decode at one thread's speed either way."""
        from concurrent.futures import ThreadPoolExecutor

        size = self.batch_size
        threads = max(1, min(threads, os.cpu_count() or 1))
        with ThreadPoolExecutor(threads, thread_name_prefix="bulk-panel-decode") as pool:
            for start in range(0, len(dataset), size):
                indices = range(start, min(start + size, len(dataset)))
                yield _collate(list(pool.map(dataset.__getitem__, indices)))

    def _batches_alongside_forwards(self, dataset: "_ImageFiles", workers: int, pin_memory: bool):
        """Batches of ``dataset`` decoded by DataLoader processes while the model runs on a
        GPU (the CPU is free then), pinned for a non-blocking copy to CUDA."""
        from torch.utils.data import DataLoader

        workers = min(workers, max(0, len(dataset) // self.batch_size))
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=pin_memory,
            prefetch_factor=4 if workers else None,
        )

    def embed_into_cache(self, files: Sequence[str], cache: EmbeddingCache, workers: int, on_batch) -> int:
        """Read, hash, decode and embed ``files`` (absolute) into ``cache``, batch by batch.

        After each batch is safely on disk, ``on_batch`` gets ``[(j, hash, width, height,
        error), ...]`` for the batch's files (``j`` indexes ``files``). Returns how many new
        vectors were computed.
        """
        lm = self.loaded()
        dataset = self._dataset(files, cache.known())
        self._calibrate_on = files
        forward_on_cpu = lm.device == "cpu" or self.backend == "onnx"  # ONNX Runtime runs on the CPU
        if forward_on_cpu:
            batches = self._batches_between_forwards(dataset, workers)
        else:
            batches = self._batches_alongside_forwards(dataset, workers, pin_memory=lm.device.startswith("cuda"))
        embedded = 0
        # normalise on the GPU when PyTorch runs there (uint8 crosses the bus), else on the CPU
        on_gpu = lm.device.startswith("cuda") and not forward_on_cpu
        for rows, stacked in batches:
            fresh: dict[str, int] = {}  # new hash -> its row in ``stacked`` (duplicates: the first)
            for row, digest in enumerate(digest for _, digest, _, _, has, _ in rows if has):
                if digest not in cache:
                    fresh.setdefault(digest, row)
            if fresh:
                picked = stacked if len(fresh) == len(stacked) else stacked[list(fresh.values())]
                batch = self._normalise(picked, lm.device if on_gpu else "cpu")
                cache.add(list(fresh), self.embed_tensors(batch, normalise=False, folder=cache.folder))
                embedded += len(fresh)
            on_batch([(j, digest, width, height, error) for j, digest, width, height, _, error in rows])
        return embedded

    def fit(
        self,
        root: str | os.PathLike,
        paths: Sequence[str],
        cache_dir: str | os.PathLike | None = None,
        progress: Optional[Progress] = None,
    ) -> "Embedder":
        """Embed the files ``paths`` (relative to ``root``), reusing and filling the cache.

        With ``dask`` set, the files not cached yet are embedded on Dask workers instead.
        """
        root = Path(root)
        cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        lm = self.loaded()
        cache = EmbeddingCache(cache_dir, self.cache_identity())
        index = FileIndex(cache_dir)
        absolute = [os.path.join(root, p) for p in paths]
        n = len(paths)

        hashes: list[str] = [""] * n
        sizes = np.zeros((n, 2), np.int64)
        errors: dict[int, str] = {}
        known = index.lookup(absolute)
        todo = []
        for i, a in enumerate(absolute):
            hit = known.get(a)
            if hit is not None and hit[0] in cache:
                hashes[i] = hit[0]
                sizes[i] = hit[1:]
            else:
                todo.append(i)
        done = n - len(todo)
        if progress:
            progress(done, n)

        def on_batch(outcomes, offset: int = 0) -> None:
            nonlocal done
            seen = []
            for j, digest, width, height, error in outcomes:
                i = todo[offset + j]
                if error is not None:
                    errors[i] = error
                    continue
                hashes[i], sizes[i] = digest, (width, height)
                seen.append((absolute[i], digest, width, height))
            index.record(seen)
            done += len(outcomes)
            if progress:
                progress(done, n)

        files = [absolute[i] for i in todo]
        cached_before = cache.known()  # to tell cache hits from files identical to a file embedded now
        try:
            if self.dask and files:
                if self.backend != "torch":
                    self._calibrate_on = files
                    self._prepare_engine(files, cache.folder)
                # every setting but the Dask address and the client's worker count; the backend
                # included: workers load the ONNX export the client checked (_prepare_engine)
                settings = {k: getattr(self, k) for k in DASK_SETTINGS}
                work = functools.partial(embed_partition, settings=settings, cache_dir=str(cache_dir))
                embedded = run_partitions(self.dask, files, work, on_batch, min_size=self.batch_size)
                cache.refresh()
            else:
                embedded = self.embed_into_cache(files, cache, self.workers, on_batch)
        finally:
            cache.compact()

        ok = [i for i in range(n) if i not in errors]
        self.paths_ = [paths[i] for i in ok]
        self.hashes_ = [hashes[i] for i in ok]
        self.sizes_ = sizes[ok]
        features = cache.get(self.hashes_) if ok else np.zeros((0, 0), np.float32)
        self.classes_ = self.classify(features) if ok else None
        self.embeddings_ = l2_normalise(features, out=features)
        self.skipped_ = [Skipped(paths[i], errors[i]) for i in sorted(errors)]
        self.weights_ = lm.weights
        self.backend_ = self._engine[1] if embedded and self._engine else None
        cached = sum(digest in cached_before for digest in self.hashes_)
        self.identical_ = max(0, len(ok) - cached - embedded)  # no forward pass and no cache hit of their own
        self.counts_ = {"embedded": embedded, "cached": cached, "skipped": len(errors)}
        return self


#: the settings a Dask worker's embedder takes from the client's
DASK_SETTINGS = ("model", "weights", "device", "batch_size", "max_pixels", "backend", "half", "precision")


def embed_partition(files: Sequence[str], settings: dict, cache_dir: str) -> tuple[list, int]:
    """What a Dask worker runs: embed ``files`` into the cache with an :class:`Embedder` of
    ``settings``; returns (outcomes, new vectors) for :meth:`Embedder.embed_into_cache`'s
    ``on_batch``.

    >>> embed_partition(files, {"model": "resnet18"}, "/shared/cache")
    """
    embedder = Embedder(**settings, workers=0)  # a worker process decodes in its own thread
    cache = EmbeddingCache(Path(cache_dir), embedder.cache_identity())
    outcomes: list = []
    embedded = embedder.embed_into_cache(files, cache, 0, outcomes.extend)
    return outcomes, embedded
