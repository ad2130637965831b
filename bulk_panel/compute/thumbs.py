"""Thumbnails of the loaded results, made once and cached on disk, and the images zip.

No Panel import: the dashboard's route and table ask this module for bytes.

>>> thumbs = ThumbnailCache()                       # default_cache_dir()/thumbs
>>> thumbs.register(results.image_root, results.frame)
>>> jpeg = thumbs.get(results.frame.content_hash[0])  # bytes, or None for an unknown hash
>>> write_image_zip(fh, results.frame, results.image_root)   # label/filename entries

Thumbnails are keyed by the image's *content hash* (a renamed file reuses its thumbnail);
only hashes registered from a loaded results frame can be asked for, so a caller can never
make this module open a path of its choosing.
"""
from __future__ import annotations

import base64
import io
import re
import threading
import unicodedata
import zipfile
from pathlib import Path
from typing import IO, Iterable, Iterator, Optional

import pandas as pd

from .cache import atomic_write, default_cache_dir
from .images import ImageError, read_image, resolve_inside

__all__ = ["HASH_PATTERN", "ShownThumbnails", "ThumbnailCache", "data_uri", "make_thumbnail", "safe_name", "write_image_zip"]

THUMB_SIZE = 128
PREVIEW_SIZE = 640
HASH_PATTERN = re.compile(r"[0-9a-f]{32}")
_UNSAFE = re.compile(r"[^\w.\- ()\[\]+,@=]+", re.UNICODE)


def make_thumbnail(path: str | Path, size: int = THUMB_SIZE, quality: int = 85) -> bytes:
    """JPEG bytes of the image at ``path`` fitted inside ``size``×``size`` (aspect kept).

    Raises :class:`~bulk_panel.compute.images.ImageError` for an unusable file.

    >>> jpeg = make_thumbnail("photos/cat.jpg", 128)
    """
    from PIL import Image

    rgb, _ = read_image(path, draft_size=size)
    rgb.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()


def data_uri(jpeg: bytes) -> str:
    """A ``data:image/jpeg;base64,...`` URI of JPEG bytes (for inline display)."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


class ThumbnailCache:
    """Content-hash-keyed JPEG thumbnails under ``cache_dir/thumbs/<size>/<ab>/<hash>.jpg``.

    Only images registered with :meth:`register` can be asked for; :meth:`get` of any other
    key gives ``None``. Safe to share between sessions and threads (it holds no session state,
    only the append-only map from content hash to the file it was read from).

    >>> thumbs = ThumbnailCache()
    >>> thumbs.register("/photos", frame)
    >>> thumbs.get(frame.content_hash[0], size=640)
    """

    def __init__(self, cache_dir: Optional[str | Path] = None):
        self.folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.folder = self.folder / "thumbs"
        self._sources: dict[str, Path] = {}
        self._lock = threading.Lock()

    def register(self, image_root: Optional[str | Path], frame: pd.DataFrame) -> int:
        """Allow the images of ``frame`` (paths relative to ``image_root``); returns how many."""
        if image_root is None or "content_hash" not in frame or len(frame) == 0:
            return 0
        new = {}
        for digest, rel in zip(frame["content_hash"].tolist(), frame["path"].tolist()):
            if isinstance(digest, str) and HASH_PATTERN.fullmatch(digest) and digest not in self._sources:
                source = resolve_inside(image_root, rel)  # a crafted results file reaches nothing outside
                if source is not None:
                    new[digest] = Path(source)
        with self._lock:
            for digest, source in new.items():
                self._sources.setdefault(digest, source)
        return len(new)

    def __contains__(self, digest: str) -> bool:
        return digest in self._sources

    def source(self, digest: str) -> Optional[Path]:
        """The image file a registered hash was read from, else ``None``."""
        return self._sources.get(digest)

    def file_for(self, digest: str, size: int = THUMB_SIZE) -> Path:
        return self.folder / str(int(size)) / digest[:2] / f"{digest}.jpg"

    def get(self, digest: str, size: int = THUMB_SIZE) -> Optional[bytes]:
        """JPEG bytes of a registered image's thumbnail (made and cached on first use).

        ``None`` when the hash is unknown or the image cannot be read any more.
        """
        if not isinstance(digest, str) or digest not in self._sources:
            return None
        cached = self.file_for(digest, size)
        try:
            return cached.read_bytes()
        except OSError:
            pass
        try:
            jpeg = make_thumbnail(self._sources[digest], size)
        except ImageError:
            return None
        try:
            atomic_write(cached, lambda fh: fh.write(jpeg))
        except OSError:  # a read-only cache still serves, just uncached
            pass
        return jpeg

    def data_uris(self, digests: Iterable[str], size: int = THUMB_SIZE) -> list[str]:
        """Inline ``data:`` URIs of thumbnails ('' where there is none), for a page of rows."""
        out = []
        for digest in digests:
            jpeg = self.get(digest, size)
            out.append(data_uri(jpeg) if jpeg else "")
        return out


class ShownThumbnails(ThumbnailCache):
    """A :class:`ThumbnailCache` that also serves the images views have shown from results
    whose paths stay on disk: :meth:`allow` notes (content hash → image folder, path) for the
    rows shown, a dict entry each (the newest ``limit`` kept), and a hash is checked against
    its folder (:func:`~bulk_panel.compute.images.resolve_inside`) and registered only when a
    thumbnail of it is asked for. A table of 10,000 rows so costs milliseconds, not a second.

    >>> thumbs = ShownThumbnails(); thumbs.allow("/photos", ["0f…"], ["cats/tom.jpg"])
    >>> thumbs.get("0f…")   # resolved and made on first ask
    """

    def __init__(self, cache_dir: Optional[str | Path] = None, limit: int = 200_000):
        super().__init__(cache_dir)
        self.limit = int(limit)
        self._shown: "dict[str, tuple[Path, str]]" = {}

    def allow(self, image_root: Optional[str | Path], hashes, paths) -> None:
        """Allow the images at ``paths`` (relative to ``image_root``), keyed by ``hashes``."""
        if image_root is None:
            return
        root = Path(image_root)
        with self._lock:
            for digest, rel in zip(hashes, paths):
                if isinstance(digest, str) and digest not in self._sources and HASH_PATTERN.fullmatch(digest):
                    self._shown.pop(digest, None)
                    self._shown[digest] = (root, rel)  # newest last
            while len(self._shown) > self.limit:
                del self._shown[next(iter(self._shown))]

    def _resolve(self, digest) -> None:
        with self._lock:
            shown = self._shown.pop(digest, None) if isinstance(digest, str) else None
        if shown is not None:
            source = resolve_inside(*shown)  # a crafted results file reaches nothing outside
            if source is not None:
                with self._lock:
                    self._sources.setdefault(digest, Path(source))

    def __contains__(self, digest: str) -> bool:
        self._resolve(digest)
        return super().__contains__(digest)

    def source(self, digest: str) -> Optional[Path]:
        self._resolve(digest)
        return super().source(digest)

    def get(self, digest: str, size: int = THUMB_SIZE) -> Optional[bytes]:
        self._resolve(digest)
        return super().get(digest, size)


def safe_name(name: str, fallback: str = "unnamed", limit: int = 120) -> str:
    """A zip-entry-safe single path component: no separators, no '..', no control characters.

    >>> safe_name("../../etc/passwd")
    'etc_passwd'
    """
    text = unicodedata.normalize("NFC", str(name))
    text = _UNSAFE.sub("_", text).strip(" ._")
    text = text[:limit].strip(" ._")
    return text or fallback


class _ChunkSink:
    """A write-only file object that collects what zipfile writes until it is taken."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def iter_image_zip(
    frame: pd.DataFrame, image_root: Optional[str | Path], names: Optional[list[str]] = None,
    chunk_size: int = 1 << 20,
) -> Iterator[bytes]:
    """The zip of ``frame``'s images as ``label/filename`` entries, yielded in pieces.

    Each image is copied from its file in ``chunk_size`` pieces (images are already
    compressed, so entries are stored) and every piece is yielded as soon as it is written,
    so memory stays bounded by about one piece whatever the selection's size: a web handler
    can stream it. Names are sanitised; clashes get a ``-2``, ``-3`` suffix; unreadable
    files and paths outside ``image_root`` are skipped. The entry names written are appended
    to ``names``.

    >>> for piece in iter_image_zip(store.selected_frame(), results.image_root): response.write(piece)
    """
    names = [] if names is None else names
    seen: set[str] = set()
    root = Path(image_root) if image_root is not None else None
    sink = _ChunkSink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        rows = zip(frame["path"].tolist(), frame["label"].tolist()) if root is not None else ()
        for rel, label in rows:
            source = resolve_inside(root, rel)
            if source is None:  # outside the image folder (a crafted results file): never read
                continue
            stem = safe_name(rel.rsplit("/", 1)[-1])
            folder = safe_name(label, fallback="unlabelled")
            entry = f"{folder}/{stem}"
            n = 1
            while entry.lower() in seen:
                n += 1
                base, dot, ext = stem.rpartition(".")
                entry = f"{folder}/{base}-{n}.{ext}" if dot else f"{folder}/{stem}-{n}"
            try:
                src = open(source, "rb")
            except OSError:
                continue
            with src, zf.open(entry, "w", force_zip64=True) as dst:
                while True:
                    try:
                        chunk = src.read(chunk_size)
                    except OSError:  # the file went bad mid-read: the entry keeps what was read
                        break
                    if not chunk:
                        break
                    dst.write(chunk)
                    yield sink.take()
            seen.add(entry.lower())
            names.append(entry)
    yield sink.take()  # the central directory


def write_image_zip(fh: IO[bytes], frame: pd.DataFrame, image_root: Optional[str | Path]) -> list[str]:
    """Write :func:`iter_image_zip` into ``fh``; returns the entry names written.

    >>> write_image_zip(open("out.zip", "wb"), store.selected_frame(), results.image_root)
    """
    names: list[str] = []
    for piece in iter_image_zip(frame, image_root, names):
        fh.write(piece)
    return names
