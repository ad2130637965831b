"""The content-keyed embedding cache and the file index (no model needed)."""
import os

import numpy as np
import pytest

from bulk_panel.compute import cache as cache_mod
from bulk_panel.compute.cache import EmbeddingCache, FileIndex, atomic_write, content_hash, default_cache_dir


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BULK_PANEL_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("BULK_PANEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "bulk_panel"


def test_shards_round_trip_and_are_seen_by_a_second_process_view(tmp_path):
    identity = {"model": "m", "weights": "w"}
    a = EmbeddingCache(tmp_path, identity)
    vectors = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    hashes = [content_hash(bytes([i])) for i in range(3)]
    a.add(hashes, vectors)
    b = EmbeddingCache(tmp_path, identity)  # a fresh view reads the shard from disk
    assert len(b) == 3
    np.testing.assert_array_equal(b.get(hashes[::-1]), vectors[::-1])
    other = EmbeddingCache(tmp_path, {"model": "m", "weights": "other"})
    assert len(other) == 0 and other.folder != a.folder


def test_a_damaged_or_partial_shard_is_ignored(tmp_path):
    c = EmbeddingCache(tmp_path, {"model": "m"})
    c.add(["a" * 32], np.ones((1, 4), np.float32))
    (c.folder / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (c.folder / ".x.npz.1234.tmp").write_bytes(b"partial write")
    fresh = EmbeddingCache(tmp_path, {"model": "m"})
    assert fresh.known() == {"a" * 32}


def test_compaction_keeps_every_vector(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "COMPACT_ROWS", 20)
    c = EmbeddingCache(tmp_path, {"model": "m"})
    rng = np.random.default_rng(1)
    expected = {}
    for batch in range(12):
        hashes = [content_hash(f"{batch}-{i}".encode()) for i in range(3)]
        vectors = rng.normal(size=(3, 5)).astype(np.float32)
        c.add(hashes, vectors)
        expected.update(zip(hashes, vectors))
    assert len(c.shards()) == 12
    removed = c.compact()
    assert removed > 0 and len(c.shards()) < 12
    fresh = EmbeddingCache(tmp_path, {"model": "m"})
    keys = list(expected)
    np.testing.assert_array_equal(fresh.get(keys), np.stack([expected[k] for k in keys]))


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_file_index_forgets_changed_files(tmp_path):
    f = tmp_path / "img.png"
    f.write_bytes(b"one")
    index = FileIndex(tmp_path / "cache")
    index.record([(str(f), "h1", 10, 20)])
    assert index.lookup([str(f)]) == {str(f): ("h1", 10, 20)}
    f.write_bytes(b"three")  # size (and mtime) change
    os.utime(f, ns=(1, 1))
    assert index.lookup([str(f)]) == {}
    assert index.sizes(["h1"]) == {"h1": (10, 20)}


def test_atomic_write_clears_stale_temporaries(tmp_path):
    """A writer killed mid-write leaves '.name.<hex>.tmp'; the next write removes it once it is old."""
    import os
    import time

    from bulk_panel.compute.cache import atomic_write

    target = tmp_path / "r.parquet"
    stale = tmp_path / ".r.parquet.0123abcd.tmp"
    fresh = tmp_path / ".r.parquet.89abcdef.tmp"
    other = tmp_path / ".other.parquet.0123abcd.tmp"
    for f in (stale, fresh, other):
        f.write_bytes(b"partial")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    atomic_write(target, lambda fh: fh.write(b"new"))
    assert target.read_bytes() == b"new"
    assert not stale.exists() and fresh.exists() and other.exists()
