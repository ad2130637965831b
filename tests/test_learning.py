"""The learning loop in the session state (state/learning.py): predictions learnt from the
person's labels only, sources and confidences in the frame, the saved file and the exports,
undo and redo, suggestions least certain first, accepting and correcting."""
import asyncio
import io

import numpy as np
import pandas as pd
import panel as pn
import pytest

from bulk_panel.compute.results import load_results
from bulk_panel.state import ResultsStore

from helpers import synthetic_results


def grouped_store(n=240, groups=4, seed=0) -> tuple[ResultsStore, np.ndarray]:
    """A store whose embeddings form ``groups`` clear groups (the truth), clusters unrelated."""
    rng = np.random.default_rng(seed)
    results = synthetic_results(n, seed=seed)
    truth = np.arange(n) % groups
    centres = rng.normal(size=(groups, 48))
    results._embeddings = (centres[truth] + 0.25 * rng.normal(size=(n, 48))).astype(np.float32)
    return ResultsStore(results=results), np.array([f"kind {t}" for t in truth], dtype=object)


def label_rows(store, rows, name):
    store.selection = np.asarray(rows)
    store.relabel(name)
    store.clear_selection()


def sources(store):
    return store.frame["label_source"].astype(str).to_numpy()


def test_labels_start_from_clusters_and_edits_are_the_persons():
    store, _ = grouped_store()
    assert store.source_counts() == {"cluster": 240, "person": 0, "prediction": 0}
    assert store.frame["confidence"].isna().all()
    label_rows(store, [0, 4, 8], "kind 0")
    store.rename_label("cluster 1", "ones")
    renamed = store.frame["label"].to_numpy() == "ones"
    assert (sources(store)[[0, 4, 8]] == "person").all() and (sources(store)[renamed] == "person").all()
    assert store.source_counts()["person"] == 3 + renamed[~np.isin(np.arange(240), [0, 4, 8])].sum()
    assert (store.frame["confidence"][sources(store) == "person"] == 1).all()


def test_learning_uses_the_persons_labels_only_and_predicts_the_rest():
    store, truth = grouped_store()
    given = np.concatenate([np.flatnonzero(truth == name)[:3] for name in np.unique(truth)])
    for name in np.unique(truth):
        label_rows(store, given[truth[given] == name], name)
    before = store.frame["label"].to_numpy(dtype=object).copy()
    assert store.learn() == 240 - len(given)
    labels, src = store.frame["label"].to_numpy(dtype=object), sources(store)
    assert (labels[given] == before[given]).all() and (src[given] == "person").all()
    rest = np.setdiff1d(np.arange(240), given)
    assert (src[rest] == "prediction").all() and np.mean(labels[rest] == truth[rest]) >= 0.95
    # never trained on cluster names: no prediction is one
    assert not any(label.startswith("cluster") or label == "noise" for label in labels)
    confidence = store.frame["confidence"].to_numpy()
    assert ((confidence[rest] > 0) & (confidence[rest] <= 1)).all()
    # relearning after more predictions changes nothing: predictions are never training data
    again = store.frame["label"].to_numpy(dtype=object).copy()
    store.learn()
    assert (store.frame["label"].to_numpy(dtype=object) == again).all()


def test_suggestions_are_least_certain_first_and_pages_accept():
    store, truth = grouped_store()
    for name in np.unique(truth):
        label_rows(store, np.flatnonzero(truth == name)[:2], name)
    store.learn()
    rows = store.suggestion_rows()
    confidence = store.frame["confidence"].to_numpy()
    assert len(rows) == store.source_counts()["prediction"]
    assert (np.diff(confidence[rows]) >= 0).all()
    page = rows[:10]
    assert store.accept_predictions(page) == 10
    assert (sources(store)[page] == "person").all() and store.source_counts()["prediction"] == len(rows) - 10
    assert store.accept_predictions(page) == 0  # the person's labels already
    sure = store.suggestion_rows()
    n_sure = int((store.frame["confidence"].to_numpy()[sure] >= 0.6).sum())
    assert store.accept_confident(0.6) == n_sure
    assert (store.frame["confidence"].to_numpy()[store.suggestion_rows()] < 0.6).all()


def test_undo_takes_back_an_edit_with_its_sources_and_the_predictions_after_it():
    store, truth = grouped_store()
    label_rows(store, np.flatnonzero(truth == "kind 0")[:3], "kind 0")
    label_rows(store, np.flatnonzero(truth == "kind 1")[:3], "kind 1")
    store.learn()
    learnt = {c: store.frame[c].copy() for c in ("label", "label_source", "confidence")}
    row = int(store.suggestion_rows()[0])
    store.correct(row, "kind 2")
    assert sources(store)[row] == "person" and store.frame["label"].iloc[row] == "kind 2"
    store.learn()
    assert store.undo()  # back to before the correction: its predictions too
    for column, values in learnt.items():
        pd.testing.assert_series_equal(store.frame[column], values)
    assert store.redo() and store.frame["label"].iloc[row] == "kind 2" and sources(store)[row] == "person"
    store.reset()
    assert store.source_counts() == {"cluster": 240, "person": 0, "prediction": 0}


def test_sources_and_confidence_are_saved_and_exported(tmp_path):
    store, truth = grouped_store()
    for name in np.unique(truth):
        label_rows(store, np.flatnonzero(truth == name)[:3], name)
    store.learn()
    path = store.save_labels(tmp_path / "labelled.parquet")
    again = ResultsStore(results=load_results(path))
    assert again.source_counts() == store.source_counts()
    np.testing.assert_allclose(again.frame["confidence"], store.frame["confidence"])
    exported = pd.read_csv(io.BytesIO(store.to_csv_bytes("all").getvalue()))
    assert {"label_source", "confidence"} <= set(exported.columns)
    assert exported["label_source"].value_counts().to_dict() == {k: v for k, v in store.source_counts().items() if v}


def test_learning_off_the_event_loop_drops_stale_predictions():
    store, truth = grouped_store()
    for name in np.unique(truth)[:2]:
        label_rows(store, np.flatnonzero(truth == name)[:3], name)

    async def edit_while_learning():
        task = asyncio.ensure_future(store.learn_async())
        await asyncio.sleep(0)
        label_rows(store, [5], "late")  # an edit while the learner fits
        return await task

    assert asyncio.run(edit_while_learning()) == 0
    assert store.source_counts()["prediction"] == 0
    assert asyncio.run(store.learn_async()) > 0


def test_no_embeddings_no_person_labels_clear_messages():
    store = ResultsStore(results=synthetic_results(30))  # no vectors
    assert store.learn() == 0 and "no embeddings" in store.message
    store, _ = grouped_store()
    assert store.learn() == 0 and "Label some images first" in store.message


@pytest.mark.parametrize("method", ["logistic", "knn"])
def test_either_method_learns(method):
    store, truth = grouped_store()
    store.learn_method = method
    for name in np.unique(truth):
        label_rows(store, np.flatnonzero(truth == name)[:3], name)
    store.learn()
    predicted = sources(store) == "prediction"
    assert np.mean(store.frame["label"].to_numpy()[predicted] == truth[predicted]) >= 0.95


def test_a_shared_page_carries_sources_and_confidences(tmp_path):
    from bulk_panel.share import write_bundle
    from bulk_panel.share.bundle import read_bundle

    store, truth = grouped_store()
    for name in np.unique(truth):
        label_rows(store, np.flatnonzero(truth == name)[:3], name)
    store.learn()
    saved = load_results(store.save_labels(tmp_path / "labelled.parquet"))
    write_bundle(saved, tmp_path / "bundle", max_points=100, seed=1, thumb_size=0)
    shared = ResultsStore(results=read_bundle(tmp_path / "bundle"))  # the static page's store
    by_path = dict(zip(saved.frame.path, zip(saved.frame.label_source.astype(str), saved.frame.confidence)))
    for path, source, confidence in zip(shared.frame.path, shared.frame.label_source.astype(str), shared.frame.confidence):
        assert by_path[path][0] == source and by_path[path][1] == pytest.approx(confidence, abs=1e-6)
    exported = pd.read_csv(io.BytesIO(shared.to_csv_bytes("all").getvalue()))
    assert set(exported.label_source) <= {"person", "prediction"} and len(exported) == 100
    # the page says whose labels they are
    from bulk_panel.share.app import StaticDashboard

    page = StaticDashboard.from_bundle(tmp_path / "bundle")
    counts = page.store.source_counts()
    lines = [p.object for p in page.sidebar() if isinstance(p, pn.pane.Markdown) and "predicted" in str(p.object)]
    assert lines == [f"**{counts['person']}** labelled by a person · **{counts['prediction']}** predicted · "
                     "**0** not labelled yet"]
    assert "confidence" in page.scatter.param.color_by.objects


@pytest.mark.parametrize("rasterize_above", [10_000, 10])
def test_the_map_colours_by_confidence(rasterize_above):
    import panel as pn
    from bokeh.document import Document

    from bulk_panel.views import ScatterView
    from bulk_panel.views._shading import CONFIDENCE_CMAP, rgb255

    store, truth = grouped_store()
    for name in np.unique(truth)[:2]:
        label_rows(store, np.flatnonzero(truth == name)[:3], name)
    store.learn()
    view = ScatterView(store=store, color_by="confidence", rasterize_above=rasterize_above)
    pn.panel(view).get_root(Document())
    if not view.rasterized:  # each point's confidence, on the confidence palette
        points = view._points(view.frame_version)
        np.testing.assert_allclose(points.data["confidence"], store.frame["confidence"].to_numpy(), rtol=1e-6)
        assert view._points_memo[2]["cmap"] == CONFIDENCE_CMAP
        return
    frame = store.frame
    image = view._map_image(view.frame_version, x_range=(float(frame.x.min()), float(frame.x.max())),
                            y_range=(float(frame.y.min()), float(frame.y.max())), width=60, height=60)
    rgba = np.stack([image.dimension_values(c) for c in ("R", "G", "B", "A")], axis=-1)
    drawn = rgba[rgba[:, 3] > 0, :3].astype(int)
    assert len(drawn)
    # every drawn pixel lies on the palette's span: no label colours
    palette = np.array([rgb255(c) for c in CONFIDENCE_CMAP])
    low, high = palette.min(axis=0) - 2, palette.max(axis=0) + 2
    assert ((drawn >= low) & (drawn <= high)).all()
