"""The results file contract: Parquet round trip, DocArray round trip, CSV, bad files."""
import io

import numpy as np
import pandas as pd
import pytest

from bulk_panel import ResultsError, load_results
from bulk_panel.compute.records import ImageRecord, frame_from_docs
from bulk_panel.compute.results import Results, build_frame


def make_results(n=7, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    clusters = rng.integers(-1, 3, n)
    frame = build_frame(
        paths=[f"folder {i % 2}/img <{i}>.png" for i in range(n)],
        hashes=[f"{i:032x}" for i in range(n)],
        sizes=rng.integers(1, 500, (n, 2)),
        xy=rng.normal(size=(n, 2)),
        clusters=clusters,
        probabilities=rng.random(n),
        outlier_scores=rng.random(n),
        labels=["noise" if c == -1 else f"cluster {c}" for c in clusters],
    )
    skipped = pd.DataFrame({"path": ["bad.jpg"], "reason": ["truncated image data"]})
    return Results(
        frame=frame,
        skipped=skipped,
        meta={"model": "m", "image_root": "/data/imgs", "counts": {"used": n}},
        _embeddings=rng.normal(size=(n, dim)).astype(np.float32),
        _cluster_coords=rng.normal(size=(n, 5)).astype(np.float32),
    )


def test_parquet_round_trip(tmp_path):
    original = make_results()
    path = original.save(tmp_path / "r.parquet")
    loaded = load_results(path)
    pd.testing.assert_frame_equal(loaded.frame, original.frame)
    for col in ("path", "x", "y", "cluster", "label", "probability", "outlier_score", "width", "height"):
        assert col in loaded.frame.columns
    assert loaded._embeddings is None  # read lazily
    np.testing.assert_array_equal(loaded.embeddings, original.embeddings)
    assert loaded.embeddings.dtype == np.float32
    np.testing.assert_array_equal(loaded.cluster_coords, original.cluster_coords)
    assert loaded.skipped.to_dict("list") == {"path": ["bad.jpg"], "reason": ["truncated image data"]}
    assert loaded.meta["model"] == "m"


def test_docs_round_trip(tmp_path):
    original = make_results()
    loaded = load_results(original.save(tmp_path / "r.parquet"))
    docs = loaded.docs
    assert len(docs) == len(original.frame)
    assert isinstance(docs[0], ImageRecord)
    assert docs[3].path == original.frame.path[3]
    np.testing.assert_array_equal(np.asarray(docs[3].embedding), original.embeddings[3])
    frame, emb = frame_from_docs(docs)
    pd.testing.assert_frame_equal(frame, original.frame, check_dtype=False)
    np.testing.assert_array_equal(emb, original.embeddings)


def test_seed_csv_columns(tmp_path):
    r = make_results()
    text = r.to_csv(seed_columns=True)
    csv = pd.read_csv(io.StringIO(text))
    assert list(csv.columns) == ["text", "x", "y", "filename", "color"]
    assert csv.text[1] == "img <1>.png"
    assert csv.filename[1] == "/data/imgs/folder 1/img <1>.png"
    assert csv.color.tolist() == r.frame.cluster.tolist()
    full = pd.read_csv(io.StringIO(r.to_csv()))
    assert full.label.tolist() == r.frame.label.tolist()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a readable Parquet file"),
        (b"PAR1 garbage garbage PAR1", "not a readable Parquet file"),
        (b"path,x\n", "not a readable Parquet file"),
    ],
)
def test_corrupt_file_gives_a_clear_error(tmp_path, content, message):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(content)
    with pytest.raises(ResultsError, match=message) as info:
        load_results(bad)
    assert "bad.parquet" in str(info.value) and "\n" not in str(info.value)


def test_truncated_file_gives_a_clear_error(tmp_path):
    path = make_results().save(tmp_path / "r.parquet")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultsError, match="r.parquet"):
        load_results(path)


def test_foreign_parquet_and_unknown_version(tmp_path):
    foreign = tmp_path / "foreign.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(foreign)
    with pytest.raises(ResultsError, match="not bulk_panel results"):
        load_results(foreign)

    import json

    import pyarrow.parquet as pq

    path = make_results().save(tmp_path / "r.parquet")
    table = pq.read_table(path)
    payload = json.loads(table.schema.metadata[b"bulk_panel"])
    payload["version"] = 99
    table = table.replace_schema_metadata({b"bulk_panel": json.dumps(payload).encode()})
    pq.write_table(table, path)
    with pytest.raises(ResultsError, match="version 99"):
        load_results(path)


def test_missing_file(tmp_path):
    with pytest.raises(ResultsError, match="no such results file"):
        load_results(tmp_path / "nope.parquet")


def test_results_folder_of_parts_round_trips_through_dask(tmp_path):
    """A results folder (Parquet parts) reads through Dask DataFrames into the same rows, vectors
    and metadata; saving labels into it keeps it a folder of parts."""
    from bulk_panel.state import ResultsStore

    original = make_results(n=20)
    folder = original.save(tmp_path / "results", rows_per_part=7)
    assert sorted(p.name for p in folder.iterdir()) == [f"part-0000{i}.parquet" for i in range(3)]
    loaded = load_results(folder)
    pd.testing.assert_frame_equal(loaded.frame, original.frame)
    np.testing.assert_array_equal(loaded.embeddings, original.embeddings)
    np.testing.assert_array_equal(loaded.cluster_coords, original.cluster_coords)
    assert loaded.meta == original.meta and loaded.skipped.to_dict() == original.skipped.to_dict()
    assert loaded.path == folder

    store = ResultsStore(results=loaded)
    store.select_box(-10, -10, 10, 10)
    store.relabel("seen")
    assert store.save_labels() == folder and len(list(folder.glob("part-*.parquet"))) == 1  # PART_ROWS per part
    again = load_results(folder)
    assert set(again.frame.label) == {"seen"} and len(again.frame) == 20
    np.testing.assert_array_equal(again.embeddings, original.embeddings)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind

    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="without Parquet parts"):
        load_results(tmp_path / "empty")


def test_a_results_folder_opens_in_the_dashboard_not_the_pipeline(tmp_path):
    from bulk_panel.compute.results import is_results_folder
    from bulk_panel.server.session import make_dashboard

    folder = make_results(n=12).save(tmp_path / "parts", rows_per_part=5)
    (tmp_path / "images").mkdir()
    assert is_results_folder(folder) and not is_results_folder(tmp_path / "images")
    assert not is_results_folder(tmp_path / "missing")
    dashboard = make_dashboard(folder)
    assert dashboard.store.n_rows == 12 and dashboard.store.results.path == folder
