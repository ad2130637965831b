"""What learning from a person's labels costs (printed, not asserted).

    python -m benchmarks.bench_learn [--sizes 10000 100000 1000000] [--labelled 2000] [--dims 1280]

For each size: synthetic embeddings (``dims`` wide, 10 groups), reduced once to the learner's
space (``Reduced.of``), then one retrain as the dashboard runs it after a labelling action:
fit on ``labelled`` person-labelled rows, predict every other row (label and confidence), for
each method. Medians of 3.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from bulk_panel.compute.learn import METHODS, LabelLearner, Reduced


def _median_seconds(run, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_learn", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--labelled", type=int, default=2_000)
    parser.add_argument("--dims", type=int, default=1280)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, args.dims)).astype(np.float32)
    print(f"| images | reduce once | {' | '.join(f'retrain ({m})' for m in METHODS)} |")
    print("|---|---|" + "---|" * len(METHODS))
    for n in args.sizes:
        truth = rng.integers(0, 10, n)
        x = rng.standard_normal((n, args.dims), dtype=np.float32)
        for start in range(0, n, 100_000):  # in place: one n × dims array at 1M (5 GB at 1,280)
            x[start:start + 100_000] += centres[truth[start:start + 100_000]]
        start = time.perf_counter()
        space = Reduced.of(x).vectors
        reduce_s = time.perf_counter() - start
        del x
        given = rng.choice(n, size=min(args.labelled, n), replace=False)
        rest = np.setdiff1d(np.arange(n), given)
        names = np.array([f"group {t}" for t in range(10)], dtype=object)[truth[given]]
        cells = [f"{_median_seconds(lambda: LabelLearner(method=m).fit(space[given], names).predict(space[rest])):.2f} s"
                 for m in METHODS]
        print(f"| {n:,} | {reduce_s:.2f} s | {' | '.join(cells)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
