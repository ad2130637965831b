"""The bulk-panel command line, end to end in real subprocesses."""
import signal
import subprocess
import sys

import numpy as np
import pytest

from bulk_panel import load_results
from bulk_panel.cli import make_parser

from helpers import REPO, demo_subset, wait_until


def bulk_panel(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "bulk_panel", *map(str, args)], capture_output=True, text=True, **kwargs
    )


def test_the_cli_reference_in_docs_is_generated_from_the_parser():
    """docs/cli.md is what scripts/make_cli_docs.py makes now: a new flag, or a changed
    parameter doc, fails here until the page is regenerated."""
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "make_cli_docs.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for name in ("--umap-neighbors", "--min-cluster-size", "--allow-root", "--max-points"):
        assert f"`{name}`" in text


def test_help_lists_flags_generated_from_parameters():
    out = bulk_panel("run", "--help")
    assert out.returncode == 0
    for flag in ("--model", "--weights", "--batch-size", "--device", "--workers", "--cluster-dims",
                 "--umap-neighbors", "--min-dist", "--min-cluster-size", "--min-samples", "--seed",
                 "--cache-dir", "--selection-method", "--epsilon"):
        assert flag in out.stdout
    # the help text is the parameter's doc
    from bulk_panel.compute.project import Projector

    assert Projector.param.cluster_dims.doc.split(":")[0][:30] in " ".join(out.stdout.split())


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["run"], 2, "the following arguments are required: folder"),
        (["run", ".", "--min-dist", "5"], 2, "min_dist"),
        (["run", ".", "--metric", "manhattan"], 2, "invalid choice"),
        (["run", "/no/such/folder"], 1, "not a folder: /no/such/folder"),
        (["run", ".", "--model", "resnet9000"], 1, "unknown timm model 'resnet9000'"),
    ],
)
def test_usage_and_failure_exit_codes(tmp_path, args, code, message):
    (tmp_path / "a.png").write_bytes(b"")
    out = bulk_panel(*args, cwd=tmp_path)
    assert out.returncode == code, out.stderr
    assert message in out.stderr
    if code == 1:
        assert "Traceback" not in out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith("bulk-panel: error: ")


def test_empty_folder_is_a_clear_failure(tmp_path):
    out = bulk_panel("run", tmp_path, "-q")
    assert out.returncode == 1 and "no image files in" in out.stderr


def test_parser_maps_flags_to_stage_parameters(tmp_path):
    from bulk_panel.cli import build_pipeline

    args = make_parser().parse_args(
        ["run", str(tmp_path), "--umap-neighbors", "7", "--min-cluster-size", "9", "--no-recursive", "--weights", "w.pth"]
    )
    p = build_pipeline(args, tmp_path)
    assert p.projector.n_neighbors == 7 and p.clusterer.min_cluster_size == 9
    assert p.source.recursive is False and p.embedder.weights == "w.pth"
    assert p.clusterer.min_samples == p.clusterer.param.min_samples.default  # untouched flags keep the default


@pytest.mark.slow
def test_run_end_to_end_then_kill_9_and_resume(tmp_path, cache_dir):
    folder = demo_subset(tmp_path / "images", per_category=12)  # 36 real images
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    out_file = tmp_path / "out.parquet"
    args = ["run", folder, "-o", out_file, "--batch-size", "4", "--workers", "0", "--min-cluster-size", "5"]

    # 1. start, wait until a few batches are on disk, then kill -9 mid-embedding
    proc = subprocess.Popen([sys.executable, "-m", "bulk_panel", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    shards = lambda: list(cache_dir.glob("embeddings/*/*.npz"))
    wait_until(lambda: len(shards()) >= 3 or proc.poll() is not None, timeout=300, interval=0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = sum(len(np.load(s)["hashes"]) for s in shards())
    assert 0 < done_before < 36 and not out_file.exists()

    # 2. rerun: completes, and embeds only what was not cached (at most one batch was lost)
    out = bulk_panel(*args)
    assert out.returncode == 0, out.stderr
    assert "images found     37" in out.stdout
    embedded = int(out.stdout.split("embedded")[1].split()[0])
    cached = int(out.stdout.split("from cache")[1].split()[0])
    assert cached >= done_before and embedded + cached == 36
    assert "'broken.jpg'" in out.stdout
    assert "clusters" in out.stdout and "time " in out.stdout

    # 3. the results equal an uninterrupted run's (fresh cache, same settings)
    resumed = load_results(out_file)
    fresh_file = tmp_path / "fresh.parquet"
    fresh = bulk_panel(*args[:2], "-o", fresh_file, *args[4:], "--cache-dir", tmp_path / "fresh-cache", "-q")
    assert fresh.returncode == 0, fresh.stderr
    fresh = load_results(fresh_file)
    assert resumed.frame.path.tolist() == fresh.frame.path.tolist()
    np.testing.assert_allclose(resumed.embeddings, fresh.embeddings, atol=1e-5)
    assert resumed.skipped.path.tolist() == ["broken.jpg"]

    # 4. the seed-compatible CSV
    csv_file = tmp_path / "seed.csv"
    again = bulk_panel(*args, "--csv", csv_file, "--seed-csv", "-q")
    assert again.returncode == 0
    assert csv_file.read_text().splitlines()[0] == "text,x,y,filename,color"
    assert "embedded       0" in again.stdout
