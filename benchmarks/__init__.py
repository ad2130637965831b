"""bulk_panel's benchmarks: figures printed and written as reports, never asserted. Not part of
the installed package; run them from the repository root:

    python -m benchmarks.bench --folder DIR [--only embed|clusters]   # embedding, backend, clusters
    python -m benchmarks.bench_scale --rows map incremental memory cold
    python -m benchmarks.bench_ui --sizes 100000 1000000              # the served dashboard

docs/performance.md gives the current figures and the command behind each.
"""
