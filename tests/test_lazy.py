"""A results folder opened lazily (text columns left in the parts) answers exactly as the same
results read whole from one file: rows, tables, names, exports, zips, summaries, duplicates,
thumbnails, the share bundle, and labels saved back into the parts."""
import asyncio
import gzip
import io
import os
import zipfile

import numpy as np
import pandas as pd
import panel as pn
import pytest

import bulk_panel.compute.results.frame as frame_module
import bulk_panel.compute.results.parts as parts_module
from bulk_panel import ResultsError, load_results
from bulk_panel.compute.cache import content_hash
from bulk_panel.compute.results import Results, build_frame
from bulk_panel.compute.thumbs import ThumbnailCache
from bulk_panel.state import ResultsStore
from bulk_panel.views import (DuplicatesView, HoverPreview, ImagePreview, LabelSummary, SelectionTable,
                              ShownThumbnails, SimilarGallery, shown_hashes)

N, PER_PART, PER_GROUP = 40, 7, 3  # 6 parts (the last of 5 rows), row groups of 3, 3, 1 rows
SMALL = ["width", "height", "x", "y", "cluster", "probability", "outlier_score", "label"]
ORDERS = {
    "sorted, across parts": np.array([1, 6, 7, 8, 20, 33, 39]),
    "unsorted with repeats": np.array([38, 2, 15, 2, 7, 39, 0, 21, 21, 6, 14]),
    "one row": np.array([13]),
    "none": np.array([], dtype=np.int64),
}


def _names(n: int) -> list[str]:
    """Relative paths with text that must survive as it is (markup, quotes, a newline, accents)."""
    odd = ['<img src=x onerror=alert(1)>.png', 'q"uote\'s.png', "line\nbreak.png", "été 猫.png", "a&amp;b.png"]
    return [f"class_{i % 3}/{odd[i % len(odd)] if i % 4 == 0 else f'image_{i:07d}.png'}" for i in range(n)]


@pytest.fixture
def saved(tmp_path, monkeypatch):
    """(results, single file, folder of parts): 40 real images (two exact copies), vectors."""
    from PIL import Image

    monkeypatch.setattr(frame_module, "ROW_GROUP_ROWS", PER_GROUP)
    root = tmp_path / "images"
    paths, hashes = _names(N), []
    for i, rel in enumerate(paths):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        colour = (0, 0, 0) if i in (5, 30) else (6 * i, 255 - 5 * i, (37 * i) % 256)  # rows 5 and 30: one image
        Image.new("RGB", (10 + i % 5, 8), colour).save(root / rel)
        hashes.append(content_hash((root / rel).read_bytes()))
    rng = np.random.default_rng(3)
    clusters = rng.integers(-1, 4, N)
    frame = build_frame(paths, hashes, rng.integers(5, 50, (N, 2)), rng.normal(size=(N, 2)), clusters,
                        rng.random(N), rng.random(N), ["noise" if c < 0 else f"cluster {c}" for c in clusters])
    vectors = rng.normal(size=(N, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    results = Results(frame=frame, meta={"image_root": str(root), "model": "m"},
                      skipped=pd.DataFrame({"path": ["bad.png"], "reason": ["truncated"]}),
                      _embeddings=vectors, _cluster_coords=rng.normal(size=(N, 5)).astype(np.float32))
    file = results.save(tmp_path / "r.parquet")
    folder = results.save(tmp_path / "parts", rows_per_part=PER_PART)
    return results, file, folder


def _layout(folder):
    import pyarrow.parquet as pq

    return [(p.name, [pq.read_metadata(p).row_group(g).num_rows for g in range(pq.read_metadata(p).num_row_groups)])
            for p in sorted(folder.glob("*.parquet"))]


def test_lazy_frame_holds_only_the_small_columns(saved):
    results, file, folder = saved
    lazy = load_results(folder, lazy=True)
    assert list(lazy.frame.columns) == SMALL and lazy.on_disk == ("path", "content_hash")
    assert lazy.columns == list(results.frame.columns)
    # the session adds each label's source and confidence (small columns too)
    assert list(ResultsStore.from_path(folder).frame.columns) == [*SMALL, "label_source", "confidence"]
    # the pipeline's, the CLI's and any other caller's default stays eager; a single file is always whole
    assert list(load_results(folder).frame.columns) == list(results.frame.columns)
    whole = load_results(file, lazy=True)
    assert whole.on_disk == () and list(whole.frame.columns) == list(results.frame.columns)
    parts = [(f"part-0000{i}.parquet", [3, 3, 1]) for i in range(5)] + [("part-00005.parquet", [3, 2])]
    assert _layout(folder) == parts  # row groups start at each part's first row


@pytest.mark.parametrize("cache_bytes", [parts_module.PART_CACHE_BYTES, 1])  # 1: every read from disk
def test_take_and_column_read_only_the_rows_asked_in_their_order(saved, cache_bytes):
    results, file, folder = saved
    eager, lazy = load_results(file), load_results(folder, lazy=True)
    lazy._parts.cache_bytes = cache_bytes
    for name, rows in ORDERS.items():
        pd.testing.assert_frame_equal(lazy.take(rows), eager.take(rows), obj=name)
        for column in ("path", "content_hash", "label"):
            np.testing.assert_array_equal(lazy.column(column, rows), eager.frame[column].to_numpy()[rows])
    pd.testing.assert_frame_equal(lazy.take(), eager.frame)
    assert lazy.to_csv() == eager.to_csv() and lazy.to_csv(seed_columns=True) == eager.to_csv(seed_columns=True)
    if cache_bytes == 1:
        assert len(lazy._parts._cache) <= 1
    with pytest.raises(IndexError):
        lazy.column("path", [N])


def test_the_part_cache_stays_bounded_and_keeps_what_fits_of_a_wide_read(saved, monkeypatch):
    results, file, folder = saved
    parts = load_results(folder, lazy=True)._parts
    reads = []
    real = parts._read
    monkeypatch.setattr(parts, "_read", lambda *args: reads.append(args[1:3]) or real(*args))
    groups = len(parts._groups)
    parts.read(["path"], [0])
    parts.cache_bytes = 5 * parts._cached  # about five row groups' paths
    for _ in range(3):
        reads.clear()
        np.testing.assert_array_equal(parts.read(["path"], np.arange(N)[::-1])["path"].to_numpy(zero_copy_only=False),
                                      results.frame["path"].to_numpy()[::-1])
        assert parts._cached <= parts.cache_bytes and 0 < len(parts._cache) < groups
    assert groups - len(parts._cache) == len(reads)  # a wide read again: only what did not fit is read


def _stores(file, folder):
    eager, lazy = ResultsStore.from_path(file), ResultsStore.from_path(folder)
    assert lazy.results.on_disk and not eager.results.on_disk
    return eager, lazy


def _selections(store):
    """The same selections, made the ways a user makes them."""
    yield "box", lambda: store.select_box(-0.8, -1.5, 1.2, 0.9)
    for name, rows in ORDERS.items():
        yield name, lambda rows=rows: setattr(store, "selection", rows)
    yield "labels", lambda: store.select_labels(["cluster 1", "noise"])
    yield "narrowed", lambda: (store.select_box(-3, -3, 3, 3), setattr(store, "selected_labels", ["cluster 2"]))


def _zip_names(store) -> list[str]:
    with store.to_zip_file() as fh:
        return zipfile.ZipFile(fh).namelist()


def test_a_lazy_store_shows_and_exports_what_an_eager_one_does(saved):
    results, file, folder = saved
    eager, lazy = _stores(file, folder)
    tables = {id(s): SelectionTable(store=s).table for s in (eager, lazy)}
    eager.table_limit = lazy.table_limit = 9  # the table cut crosses parts too
    for (name, select_e), (_, select_l) in zip(_selections(eager), _selections(lazy)):
        select_e(), select_l()
        rows = eager.selected_rows()
        np.testing.assert_array_equal(lazy.selected_rows(), rows)
        pd.testing.assert_frame_equal(lazy.selected_frame(), eager.selected_frame(), obj=name)
        pd.testing.assert_frame_equal(tables[id(lazy)].value, tables[id(eager)].value, obj=name)
        np.testing.assert_array_equal(lazy.file_names(rows), eager.file_names(rows))
        for scope in ("selection", "all"):
            assert lazy.to_csv_bytes(scope).getvalue() == eager.to_csv_bytes(scope).getvalue(), (name, scope)
            assert lazy.to_parquet_bytes(scope).getvalue() == eager.to_parquet_bytes(scope).getvalue(), (name, scope)
        pd.testing.assert_frame_equal(lazy.zip_source()[0], eager.zip_source()[0])
        assert _zip_names(lazy) == _zip_names(eager)
    assert len(_zip_names(lazy)) > 0
    pd.testing.assert_frame_equal(lazy.label_summary(), eager.label_summary())
    np.testing.assert_array_equal(lazy.file_names(), eager.file_names())
    pd.testing.assert_frame_equal(lazy.duplicates(), eager.duplicates())
    assert set(lazy.duplicates()["row"]) >= {5, 30}  # the exact copy, found through the hashes on disk


def test_views_on_a_lazy_store_match_and_allow_only_the_shown_thumbnails(saved, tmp_path):
    results, file, folder = saved
    eager, lazy = _stores(file, folder)
    thumbs = ShownThumbnails(tmp_path / "cache")
    hashes = results.frame["content_hash"].to_numpy()
    table = SelectionTable(store=lazy, thumbnails=thumbs).table
    lazy.selection = np.array([17, 3])
    assert list(table.value["thumb"]) == [hashes[17], hashes[3]]
    assert hashes[17] in thumbs and hashes[3] in thumbs and hashes[20] not in thumbs  # never shown: not served
    assert thumbs.get(hashes[17])[:2] == b"\xff\xd8" and thumbs.get(hashes[20]) is None
    pd.testing.assert_frame_equal(LabelSummary(store=lazy, thumbnails=thumbs).table.value,
                                  LabelSummary(store=eager).table.value)
    for store in (eager, lazy):
        store.hover = 20  # a name with markup: the caption is text
    hover = HoverPreview(store=lazy, thumbnails=thumbs)
    caption = "<img src=x onerror=alert(1)>.png\n" + eager.frame.label[20]
    assert hover._caption(20) == HoverPreview(store=eager)._caption(20) == caption
    assert hover._jpeg(20)[:2] == b"\xff\xd8"
    registered = ThumbnailCache(tmp_path / "eager")
    registered.register(results.image_root, eager.results.frame)
    previews = [ImagePreview(store=s, thumbnails=t)._image(24, s.frame)
                for s, t in ((lazy, thumbs), (eager, registered))]
    assert [type(o) for o in previews[0].objects] == [pn.pane.JPG, type(previews[1].objects[1])]
    assert previews[0].objects[1].object == previews[1].objects[1].object
    assert previews[0].objects[0].object == previews[1].objects[0].object  # the same preview JPEG
    # a plain cache (no deferred checks) is registered row by row, the same rows only
    plain = ThumbnailCache(tmp_path / "plain")
    assert list(shown_hashes(lazy, [3, 9], plain)) == [hashes[3], hashes[9]] and hashes[3] in plain
    assert hashes[4] not in plain
    gallery = SimilarGallery(store=lazy, thumbnails_url=None, thumbnails=thumbs)
    lazy.more_like_this(24, k=3)
    eager.more_like_this(24, k=3)
    assert gallery._html(lazy.similar, lazy.similar_scores) == SimilarGallery(
        store=eager, thumbnails_url=None, thumbnails=thumbs)._html(eager.similar, eager.similar_scores)
    dups = {}
    for store in (eager, lazy):
        view = DuplicatesView(store=store)
        asyncio.run(view._find())
        dups[id(store)] = (view.table.value, view._csv().getvalue())
    pd.testing.assert_frame_equal(dups[id(lazy)][0], dups[id(eager)][0])
    assert dups[id(lazy)][1] == dups[id(eager)][1]


def test_share_bundle_of_a_lazy_folder_is_the_same(saved, tmp_path):
    from bulk_panel.share import write_bundle

    results, file, folder = saved
    for name, path in (("eager", file), ("lazy", folder)):
        write_bundle(load_results(path, lazy=True), tmp_path / name, max_points=25, seed=3, thumb_size=0)
    points = [gzip.decompress((tmp_path / name / "points.csv.gz").read_bytes()) for name in ("eager", "lazy")]
    assert points[0] == points[1] and len(pd.read_csv(io.BytesIO(points[0]))) == 25


def test_labels_saved_into_a_lazy_folder_keep_its_parts_paths_hashes_and_vectors(saved):
    results, file, folder = saved
    eager, lazy = _stores(file, folder)
    other = ResultsStore(results=lazy.results)  # a second session on the same opened results
    layout = _layout(folder)
    for store in (eager, lazy):
        store.selection = np.array([39, 0, 12, 12, 26])
        store.relabel("picked")
        store.rename_label("cluster 1", "dogs")
        assert store.save_labels() in (file, folder) and not store.dirty
    assert _layout(folder) == layout and not [p for p in folder.parent.iterdir() if p.name.startswith(".")]
    again, whole = load_results(folder), load_results(file)
    pd.testing.assert_frame_equal(again.frame, whole.frame)
    edited = ["label", "label_source", "confidence"]
    pd.testing.assert_frame_equal(again.frame.drop(columns=edited), results.frame.drop(columns="label"))
    assert (again.frame.label.iloc[[0, 12, 26, 39]] == "picked").all() and "dogs" in set(again.frame.label)
    # each label's source is saved with it: the person's where they labelled, the clusters' elsewhere
    person = again.frame.label.isin(["picked", "dogs"]).to_numpy()
    assert (again.frame.label_source[person] == "person").all() and (again.frame.confidence[person] == 1).all()
    assert (again.frame.label_source[~person] == "cluster").all() and again.frame.confidence[~person].isna().all()
    np.testing.assert_array_equal(again.embeddings, results.embeddings)
    np.testing.assert_array_equal(again.cluster_coords, results.cluster_coords)
    assert again.meta == results.meta and again.skipped.to_dict() == results.skipped.to_dict()
    # the sessions that opened the old parts read the new ones (the same paths), reopened or not
    rows = ORDERS["unsorted with repeats"]
    for store in (lazy, other, ResultsStore.from_path(folder)):
        np.testing.assert_array_equal(store.values("path", rows), results.frame["path"].to_numpy()[rows])
    pd.testing.assert_frame_equal(ResultsStore.from_path(folder).rows_frame(), eager.rows_frame())
    # saved elsewhere, a lazy store writes one complete file
    target = lazy.save_labels(folder.parent / "copy.parquet")
    pd.testing.assert_frame_equal(load_results(target).frame, whole.frame)


def test_a_failed_save_leaves_the_folder_and_the_session_as_they_were(saved, monkeypatch):
    results, file, folder = saved
    store = ResultsStore.from_path(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    real = frame_module._write_tables

    def failing(tables, sizes, writer_for):
        def some():
            for number, table in enumerate(tables):
                if number == 4:
                    raise OSError("No space left on device")
                yield table
        real(some(), sizes, writer_for)

    monkeypatch.setattr(frame_module, "_write_tables", failing)
    store.selection = np.array([1, 2])
    store.relabel("lost?")
    with pytest.raises(OSError, match="No space"):
        store.save_labels()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]
    assert store.dirty and list(store.values("path", [1, 2])) == list(results.frame.path.iloc[[1, 2]])


def test_a_part_gone_or_rewritten_after_opening_is_a_one_line_error(saved):
    results, file, folder = saved
    lazy = load_results(folder, lazy=True)
    assert lazy.column("path", [0])[0] == results.frame.path.iloc[0]
    part = folder / "part-00002.parquet"
    stat = part.stat()
    os.utime(part, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(ResultsError, match="part-00002.parquet: this part changed") as err:
        lazy.column("path", [15])
    part.unlink()
    with pytest.raises(ResultsError, match="part-00002.parquet: this part of the results is gone") as err:
        ResultsStore(results=lazy).values("content_hash", [3, 15])
    assert "\n" not in str(err.value)
    assert lazy.column("path", [30])[0] == results.frame.path.iloc[30]  # the other parts still answer


def test_the_shared_cache_allows_only_shown_images_for_results_in_memory_too(saved, tmp_path):
    """A dashboard on results read whole no longer checks every image on load (~20 µs each,
    seconds at 1M rows): the shared cache allows the rows the views show, as they show them."""
    from bulk_panel.views import Dashboard

    results, file, folder = saved
    eager, _ = _stores(file, folder)
    thumbs = ShownThumbnails(tmp_path / "cache")
    hashes = results.frame["content_hash"].to_numpy()
    dashboard = Dashboard(store=eager, thumbnails=thumbs)
    assert not thumbs._shown and not thumbs._sources  # the first screen shows no image yet
    dashboard.open_tab("labels")  # the label summary's representatives are shown, so only they are allowed
    assert set(thumbs._shown) == set(hashes[eager.label_summary()["representative"]]) and not thumbs._sources
    eager.selection = np.array([11, 2])
    assert list(dashboard.table.table.value["thumb"]) == [hashes[11], hashes[2]]
    assert thumbs.get(hashes[11])[:2] == b"\xff\xd8" and hashes[2] in thumbs
    assert hashes[12] not in thumbs and thumbs.get(hashes[12]) is None  # never shown: not served


def test_a_part_gone_under_an_open_table_is_the_status_line_not_a_crash(saved):
    results, file, folder = saved
    store = ResultsStore(results=load_results(folder, lazy=True))
    store.selection = np.arange(0, 10)
    assert len(store.selected_frame()) == 10
    (folder / "part-00002.parquet").unlink()
    store.selection = np.arange(12, 20)  # rows 14-19 live in part 2
    assert store.selected_frame().empty
    assert "part-00002.parquet: this part of the results is gone" in store.message and "\n" not in store.message
    store.selection = np.arange(0, 5)  # the other parts still answer
    assert list(store.selected_frame().index) == [0, 1, 2, 3, 4]
