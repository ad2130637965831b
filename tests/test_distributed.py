"""Embedding on a real Dask LocalCluster gives the same vectors as in-process."""
import numpy as np
import pytest

pytest.importorskip("distributed")

from bulk_panel.compute.embed import Embedder  # noqa: E402

pytestmark = pytest.mark.slow  # the real model, in Dask workers


def test_local_cluster_of_two_workers_matches_in_process(image_folder, tmp_path):
    paths = sorted(str(p.relative_to(image_folder)) for p in image_folder.rglob("*.png"))
    (image_folder / "bad.png").write_bytes(b"not a png")
    paths = paths + ["bad.png"]

    local = Embedder(workers=0, batch_size=8).fit(image_folder, paths, tmp_path / "cache-local")
    remote = Embedder(dask="local:2", batch_size=4).fit(image_folder, paths, tmp_path / "cache-dask")

    assert remote.paths_ == local.paths_ and len(remote.paths_) == 24
    assert remote.hashes_ == local.hashes_
    np.testing.assert_allclose(remote.embeddings_, local.embeddings_, atol=1e-5)
    np.testing.assert_array_equal(remote.sizes_, local.sizes_)
    assert [s.path for s in remote.skipped_] == ["bad.png"]
    assert remote.counts_ == {"embedded": 24, "cached": 0, "skipped": 1}

    # the workers wrote into the shared cache: a rerun in-process embeds nothing
    again = Embedder(workers=0).fit(image_folder, paths, tmp_path / "cache-dask")
    assert again.counts_["embedded"] == 0
    np.testing.assert_array_equal(again.embeddings_, remote.embeddings_)
