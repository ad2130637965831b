"""Level 1: the per-session ResultsStore, selection geometry and thumbnails — no browser, no model."""
import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from bulk_panel import load_results
from bulk_panel.compute.results import Results, build_frame
from bulk_panel.compute.thumbs import ThumbnailCache, safe_name, write_image_zip
from bulk_panel.state import NOISE_COLOR, ResultsStore, points_in_box, points_in_polygon

from helpers import drawn_images, results_with_vectors, synthetic_results



@pytest.fixture
def store():
    return ResultsStore(results=synthetic_results())


def test_points_in_box_and_polygon_agree_on_a_rectangle():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-5, 5, (2, 10_000)).astype(np.float32)
    box = points_in_box(x, y, 1, -2, -1, 2)  # corners in any order
    poly = points_in_polygon(x, y, [-1, 1, 1, -1], [-2, -2, 2, 2])
    assert set(box) == set(poly)
    assert len(box) == int(((abs(x) <= 1) & (abs(y) <= 2)).sum())


def test_points_in_polygon_triangle_and_degenerate():
    x = np.array([0.1, 0.9, 0.5, 2.0])
    y = np.array([0.1, 0.8, 0.2, 0.0])
    assert list(points_in_polygon(x, y, [0, 1, 0], [0, 0, 1])) == [0, 2]
    assert len(points_in_polygon(x, y, [0, 1], [0, 1])) == 0


def test_selection_fills_labels_and_table(store):
    f = store.frame
    n = store.select_box(-3, -3, 3, 3)
    expected = np.flatnonzero(((f.x >= -3) & (f.x <= 3) & (f.y >= -3) & (f.y <= 3)).to_numpy())
    assert n == len(expected)
    assert list(store.selected_frame().index) == list(expected)
    assert set(store.selected_labels) == set(f.label.iloc[expected])
    assert (store.selected_frame()["name"] == f.path.iloc[expected].str.split("/").str[-1]).all()


def test_choosing_labels_filters_the_selection(store):
    store.select_box(-20, -20, 20, 20)
    store.selected_labels = ["cluster 1"]
    table = store.selected_frame()
    assert len(table) == (store.frame.label == "cluster 1").sum()
    assert set(table.label) == {"cluster 1"}
    store.clear_labels()
    assert len(store.selected_frame()) == len(store.frame)
    store.clear_selection()
    assert len(store.selected_frame()) == 0


def test_only_selected_off_adds_all_rows_of_chosen_labels(store):
    store.selection = np.array([0])
    store.only_selected = False
    store.selected_labels = ["cluster 2"]
    rows = set(store.selected_rows())
    assert rows == {0} | set(np.flatnonzero(store.frame.label == "cluster 2"))


def test_relabel_undo_redo_reassigns_frame(store):
    before = store.frame
    events = []
    store.param.watch(lambda e: events.append(e.name), "frame")
    store.selection = np.array([1, 2, 3])
    assert store.relabel("  my   cats ") == 3
    assert store.frame is not before and events == ["frame"]
    assert list(store.frame.label.iloc[[1, 2, 3]]) == ["my cats"] * 3
    assert before.label.iloc[1] != "my cats"  # the old frame was not changed in place
    assert store.selected_labels == ["my cats"] and store.can_undo and store.dirty
    assert store.colors["my cats"] not in {NOISE_COLOR} | {store.colors[k] for k in store.colors if k != "my cats"}
    assert store.undo()
    pd.testing.assert_series_equal(store.frame.label, before.label)
    assert store.can_redo and not store.can_undo
    assert store.redo()
    assert store.frame.label.iloc[2] == "my cats"
    assert not store.redo()
    with pytest.raises(ValueError):
        store.relabel("   ")


def test_rename_merge_and_colours_stay(store):
    colors = dict(store.colors)
    assert colors["noise"] == NOISE_COLOR
    n1 = (store.frame.label == "cluster 1").sum()
    assert store.rename_label("cluster 1", "dogs") == n1
    assert store.colors["dogs"] == colors["cluster 1"]
    assert store.colors["cluster 0"] == colors["cluster 0"]
    n = store.frame.label.isin(["cluster 0", "cluster 2"]).sum()
    n2 = (store.frame.label == "cluster 2").sum()
    assert store.merge_labels(["cluster 0", "cluster 2"], "cluster 0") == n2
    assert (store.frame.label == "cluster 0").sum() == n
    assert "cluster 2" not in store.param.selected_labels.objects
    store.undo(); store.undo()
    assert (store.frame.label == "cluster 1").sum() == n1


def test_label_summary(store):
    s = store.label_summary()
    assert list(s.columns) == ["label", "color", "count", "share", "mean_probability", "representative",
                            "content_hash"]
    assert s["count"].sum() == len(store.frame) and s.label.iloc[-1] == "noise"
    assert abs(s.share.sum() - 1) < 1e-9
    row = s.set_index("label").loc["cluster 0"]
    members = store.frame[store.frame.label == "cluster 0"]
    assert row["mean_probability"] == pytest.approx(members.probability.mean())
    assert store.frame.label.iloc[row["representative"]] == "cluster 0"
    store.select_labels(["cluster 0"])
    assert len(store.selection) == len(members)


def test_reset_and_save_labels_round_trip(tmp_path, store):
    path = store.results.save(tmp_path / "r.parquet")
    store.selection = np.array([0, 5])
    store.relabel("kept")
    store.save_labels()
    assert not store.dirty
    again = ResultsStore.from_path(path)
    assert list(again.frame.label.iloc[[0, 5]]) == ["kept", "kept"]
    again.selection = np.array([1])
    again.relabel("temp")
    again.reset()
    assert again.frame.label.iloc[1] != "temp" and len(again.selection) == 0
    assert load_results(path).frame.label.iloc[0] == "kept"


def test_exports(store):
    store.select_labels(["cluster 3"])
    csv = pd.read_csv(store.to_csv_bytes("selection"))
    assert len(csv) == (store.frame.label == "cluster 3").sum() and set(csv.label) == {"cluster 3"}
    assert len(pd.read_parquet(store.to_parquet_bytes("all"))) == len(store.frame)



def test_thumbnails_only_for_registered_hashes(tmp_path):
    root, paths, hashes = drawn_images(tmp_path)
    results = synthetic_results(len(paths), paths=paths, hashes=hashes, image_root=root)
    thumbs = ThumbnailCache(tmp_path / "cache")
    assert thumbs.get(hashes[0]) is None  # not registered yet
    assert thumbs.register(results.image_root, results.frame) == len(paths)
    jpeg = thumbs.get(hashes[1])
    assert jpeg[:2] == b"\xff\xd8"
    assert thumbs.file_for(hashes[1]).exists()
    assert thumbs.get("../../etc/passwd") is None and thumbs.get("f" * 32) is None
    assert thumbs.data_uris([hashes[0], "x"])[1] == ""


def test_image_zip_layout_and_names(tmp_path):
    root, paths, hashes = drawn_images(tmp_path)
    frame = pd.DataFrame({"path": paths + [paths[1], "missing.png"], "label": ["../up", "b/c", "b/c", "b/c", "b/c", "x"]})
    out = io.BytesIO()
    names = write_image_zip(out, frame, root)
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == names
        assert all(".." not in n.split("/") and n.count("/") == 1 for n in names)
        assert "up/evil name.png" in names and "b_c/pic 1-2.png" in names
        assert zf.read("b_c/pic 1.png") == (root / paths[1]).read_bytes()
    assert safe_name("../../etc/passwd") == "etc_passwd" and safe_name("..") == "unnamed"


def test_load_replaces_everything(store):
    store.selection = np.array([1, 2, 3])
    store.relabel("kept colour")
    store.focus, store.hover = 2, 3
    colour = store.colors["cluster 0"]
    frames = []
    store.param.watch(lambda e: frames.append(e.new), "frame")
    new = synthetic_results(50, clusters=2, seed=9)
    store.load(new)
    assert len(frames) == 1 and store.n_rows == 50 and store.results.frame is new.frame
    assert store.results is not new  # the session's own copy: saving never touches the caller's
    assert len(store.selection) == 0 and store.selected_labels == [] and store.focus is None
    assert store.hover is None and not store.can_undo and not store.can_redo and not store.dirty
    assert not store.undo()
    assert "kept colour" not in store.colors and store.colors["cluster 0"] == colour
    assert list(store.param.selected_labels.objects) == store.sorted_labels(new.frame)
    assert store.select_box(-20, -20, 20, 20) == 50


def test_chooser_names_carry_counts(store):
    names = store.param.selected_labels.names
    n = int((store.frame.label == "cluster 2").sum())
    assert names[f"cluster 2 ({n})"] == "cluster 2"
    store.select_labels(["cluster 2"])
    store.relabel("x")
    assert store.param.selected_labels.names[f"x ({n})"] == "x" and "cluster 2" not in store.param.selected_labels.objects


def test_nearest_point():
    store = ResultsStore(results=synthetic_results(5_000, seed=4))
    f = store.frame
    for row in (0, 17, 4_999):
        assert store.nearest(float(f.x.iloc[row]), float(f.y.iloc[row])) == row
    d = np.hypot(f.x.to_numpy() - 3.3, f.y.to_numpy() + 1.1)
    assert store.nearest(3.3, -1.1) == int(np.argmin(d))
    assert store.nearest(1e6, 1e6, max_distance=1.0) is None


def test_nearest_point_scan_and_tree_agree():
    """Below SCAN_BELOW points a linear scan, from it a k-d tree: the same answers."""
    from bulk_panel.state.geometry import SCAN_BELOW, NearestPoint

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(2, SCAN_BELOW))
    scan, tree = NearestPoint(x[:-1], y[:-1]), NearestPoint(x, y)
    assert isinstance(scan._tree, np.ndarray) and not isinstance(tree._tree, np.ndarray)
    for qx, qy in rng.normal(size=(20, 2)):
        row, distance = tree.query(qx, qy)
        d = np.hypot(x - qx, y - qy)
        assert distance == pytest.approx(d.min()) and d[row] == pytest.approx(d.min())
        row, distance = scan.query(qx, qy)
        assert distance == pytest.approx(d[:-1].min()) and row == int(np.argmin(d[:-1]))


def test_zip_is_spooled_and_save_async(tmp_path):
    import asyncio
    import tempfile

    root, paths, hashes = drawn_images(tmp_path)
    results = synthetic_results(len(paths), paths=paths, hashes=hashes, image_root=root)
    store = ResultsStore(results=results)
    store.selection = np.arange(len(paths))
    fh = store.to_zip_file(max_memory=100)  # tiny: spills to disk
    assert isinstance(fh, tempfile.SpooledTemporaryFile) and fh._rolled and fh.tell() == 0
    with zipfile.ZipFile(fh) as zf:
        assert len(zf.namelist()) == len(paths)
    path = results.save(tmp_path / "r.parquet")
    store = ResultsStore.from_path(path)
    store.selection = np.array([0])
    store.relabel("async")
    assert asyncio.run(store.save_labels_async()) == path and not store.dirty
    assert store.message.startswith("Labels saved")
    assert load_results(path).frame.label.iloc[0] == "async"


def test_relabel_rows_chosen_by_label_keeps_them_chosen(store):
    store.selected_labels = ["cluster 2"]
    n = len(store.selected_rows())
    assert store.relabel("owls") == n
    assert store.selected_labels == ["owls"] and len(store.selected_frame()) == n


def test_chooser_names_are_html_escaped(store):
    store.select_labels(["cluster 0"])
    store.relabel("<img src=x onerror=alert(1)>")
    names = store.param.selected_labels.names
    shown = [k for k, v in names.items() if v == "<img src=x onerror=alert(1)>"]
    assert len(shown) == 1 and shown[0].startswith("&lt;img src=x") and "<" not in shown[0]


def test_zip_pieces_stay_bounded(tmp_path):
    """The zip is produced piece by piece: no piece is much bigger than one read chunk, and the
    pieces joined are a valid zip of the images (what the served route streams)."""
    from bulk_panel.compute.thumbs import iter_image_zip

    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    payloads = {f"a/big{i}.bin": np.random.default_rng(i).bytes(300_000) for i in range(3)}
    for rel, data in payloads.items():
        (root / rel).write_bytes(data)
    frame = pd.DataFrame({"path": list(payloads), "label": ["x", "y", "x"]})
    names: list = []
    pieces = list(iter_image_zip(frame, root, names, chunk_size=64 << 10))
    assert len(pieces) > 12 and max(map(len, pieces)) <= (64 << 10) + 1024
    with zipfile.ZipFile(io.BytesIO(b"".join(pieces))) as zf:
        assert zf.namelist() == names == ["x/big0.bin", "y/big1.bin", "x/big2.bin"]
        assert zf.read("y/big1.bin") == payloads["a/big1.bin"]


def test_table_lists_at_most_table_limit_rows():
    store = ResultsStore(results=synthetic_results(500), table_limit=40)
    store.select_box(-100, -100, 100, 100)
    assert len(store.selected_rows()) == 500 and len(store.selected_frame()) == 40
    assert list(store.selected_frame().index) == list(store.selected_rows()[:40])
    assert len(store.export_frame()) == 500  # exports use every selected row



def test_more_like_this_finds_near_copies_and_selects_them():
    store = ResultsStore(results=results_with_vectors())
    assert store.more_like_this() == 0 and "Click" in store.message  # nothing focused
    store.focus = 0
    assert store.more_like_this(k=5) == 5
    assert set(store.similar[:2]) == {1, 2} and 0 not in store.similar
    assert np.all(np.diff(store.similar_scores) <= 1e-6) and store.similar_scores[0] > 0.99
    store.select_similar()
    assert list(store.selection) == [0, *store.similar]
    store.load(results_with_vectors(seed=2))
    assert len(store.similar) == 0


def test_outliers_duplicates_and_gallery():
    store = ResultsStore(results=results_with_vectors())
    f = store.frame
    n = store.select_outliers(share=0.05, include_noise=False)
    assert n == 6 and set(store.selection) == set(np.argsort(-f.outlier_score.to_numpy())[:6])
    store.select_outliers(share=0.0)
    assert set(store.selection) == set(np.flatnonzero(f.cluster.to_numpy() < 0))
    groups = store.duplicates(threshold=0.98)
    first = groups[groups.row.isin([0, 1, 2])]
    assert first.group.nunique() == 1 and len(first) == 3 and first.keep.sum() == 1
    assert set(first.kind) == {"exact", "near"} and (first.label == f.label.to_numpy()[first.row]).all()
    gallery = store.cluster_gallery(k=3)
    for label, part in gallery.groupby("label"):
        rows = part.row.to_numpy()
        assert (f.label.to_numpy()[rows] == label).all() and len(rows) == min(3, (f.label == label).sum())
        members = f[f.label == label]
        assert f.probability.to_numpy()[rows[0]] == members.probability.max()


def test_split_selection_separates_two_blobs_and_undoes():
    rng = np.random.default_rng(0)
    n = 200
    xy = np.concatenate([rng.normal(0, 0.3, (n // 2, 2)), rng.normal(8, 0.3, (n // 2, 2))])
    frame = build_frame(paths=[f"p{i}.png" for i in range(n)], hashes=[f"{i:032x}" for i in range(n)],
                        sizes=np.full((n, 2), 8), xy=xy, clusters=np.zeros(n, int), probabilities=np.ones(n),
                        outlier_scores=np.zeros(n), labels=["birds"] * n)
    store = ResultsStore(results=Results(frame=frame))
    store.select_labels(["birds"])
    assert store.split_selection() == 2
    labels = store.frame.label.to_numpy()
    assert set(labels) <= {"birds · 1", "birds · 2", "birds"}
    assert len(set(labels[: n // 2]) - {"birds"}) == 1 and set(labels[: n // 2]) != set(labels[n // 2:])
    store.undo()
    assert set(store.frame.label) == {"birds"}


def test_first_min_per_code_matches_groupby_idxmin():
    from bulk_panel.state.labels import _first_min_per_code

    rng = np.random.default_rng(1)
    codes = rng.integers(0, 7, 5_000)
    values = rng.integers(0, 50, 5_000).astype(float)  # ties: the first row of the minimum wins
    expected = pd.Series(values).groupby(codes).idxmin().to_numpy()
    assert np.array_equal(_first_min_per_code(values, codes, 7), expected)
    values[codes == 3] = np.nan  # all NaN: the code's first row; a code with no rows: -1
    best = _first_min_per_code(values, codes, 8)
    assert best[3] == np.flatnonzero(codes == 3)[0] and best[7] == -1


def test_file_names_cut_at_the_last_slash_even_across_newlines():
    """The table's file name and the map's hover caption agree for hostile names."""
    paths = ["a/b.png", "top.png", "odd\nfolder/x\ny.png", "c/d/\n.png"]
    store = ResultsStore(results=synthetic_results(n=4, paths=paths))
    assert list(store.file_names()) == [p.rsplit("/", 1)[-1] for p in paths]


def test_memo_keys_objects_by_identity_and_plain_values_by_equality():
    from bulk_panel.state.memo import Memo

    memo, calls = Memo(), []

    def compute():
        calls.append(1)
        return len(calls)

    rows = np.arange(3)
    assert memo.get((rows, "a", 1), compute) == 1
    assert memo.get((rows, "a", 1), compute) == 1  # same object, equal plain values: remembered
    assert memo.get((np.arange(3), "a", 1), compute) == 2  # an equal but other array: computed anew
    frame = pd.DataFrame({"x": [1]})
    memo.get((frame,), compute)
    del frame  # the memo holds its key: no later object can take its place at the same address
    assert memo.get((pd.DataFrame({"x": [1]}),), compute) == 4
    assert memo.get((1,), compute) == 5 and memo.get((True,), compute) == 6  # 1 == True, other types


def test_sessions_on_one_results_share_what_it_gives_until_they_change_a_label(tmp_path):
    """Two stores on the same results (two browser sessions) share the frame and every lookup made
    from it (label codes, file names, the nearest-point tree, vectors read from the file) instead
    of making their own; a relabel gives that session its own frame and codes, the other keeps
    the shared ones, and both stay right."""
    path = results_with_vectors(200).save(tmp_path / "r.parquet")
    shared = load_results(path)
    a, b = ResultsStore(results=shared), ResultsStore(results=shared)
    assert a.frame is b.frame and a.label_codes()[0] is b.label_codes()[0]
    assert a.file_names() is b.file_names()
    assert a.nearest(0.0, 0.0, max_distance=1e9) == b.nearest(0.0, 0.0, max_distance=1e9)
    assert a._of_results("nearest point").get((), lambda: None) is b._of_results("nearest point").get((), lambda: None)
    assert a.results is not b.results and a.results.embeddings is b.results.embeddings  # read once
    a.select_rows([0, 1, 2])
    a.relabel("mine")
    assert a.frame is not b.frame and a.label_codes()[0] is not b.label_codes()[0]
    codes, names = a.label_codes()
    assert list(names[codes[[0, 1, 2]]]) == ["mine"] * 3 and "mine" not in set(b.label_codes()[1])
    assert a.file_names() is b.file_names()  # paths never change with labels
    a.save_labels()  # a's own copy of the results moves to the saved file; b's does not
    assert b.results.frame is shared.frame and "mine" not in set(b.frame["label"])


def test_a_shared_memo_goes_with_its_owner():
    import gc

    from bulk_panel.state import memo as memos

    owner = pd.DataFrame({"x": np.arange(5)})
    first, total = memos.shared_memo(owner, "sum"), int(owner["x"].sum())
    assert first.get((), lambda: total) == 10 and first.get((), lambda: 0) == 10
    assert memos.shared_memo(owner, "sum") is first and memos.shared_memo(owner, "other") is not first
    key = id(owner)
    del owner
    gc.collect()
    assert key not in memos._owned


def test_selected_rows_follow_each_new_selection(store):
    store.select_rows([1, 2, 3])
    first = store.selected_rows()
    store.selection = np.array([4, 5], dtype=np.int64)
    assert list(store.selected_rows()) == [4, 5] and list(first) == [1, 2, 3]
