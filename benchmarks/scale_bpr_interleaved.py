"""recforge's ``bpr`` and implicit's BPR fitted in turn in one process, on one saved training log.

On a shared machine the load changes from minute to minute, so the per-stage processes of
:mod:`benchmarks.bench_scale` can see different loads for recforge and its peer. Here the fits
alternate (``--order implicit,default,recipe,implicit,default``), each reporting the median wall
and CPU seconds per epoch after the first (64 factors, 2 threads), so neighbouring fits saw about
the same machine. ``recipe`` is implicit's sampling recipe in recforge
(:data:`benchmarks.bench_scale.BPR_IMPLICIT_RECIPE`).

Run: ``python -m benchmarks.scale_bpr_interleaved /tmp/recforge-scale/train-20M`` (a folder written by
``bench_scale``'s split stage).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.bench_scale import BPR_IMPLICIT_RECIPE


def per_epoch(marks: list[tuple[float, float]]) -> tuple[float, float]:
    """Median (wall, CPU) seconds per epoch after the first (which also compiles) when there are 3+."""
    gaps = np.diff(np.asarray(marks), axis=0)
    use = gaps[1:] if len(gaps) > 2 else gaps
    return float(np.median(use[:, 0])), float(np.median(use[:, 1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("train", help="a saved Interactions folder (bench_scale's train-<size>)")
    ap.add_argument("--order", default="implicit,default,recipe,implicit,default")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    from recforge.config import FitOptions
    from recforge.data.interactions import Interactions
    from recforge.models.registry import make_model

    train = Interactions.open(args.train)
    for which in args.order.split(","):
        marks = [(time.perf_counter(), time.process_time())]

        def callback(*_: object, marks: list = marks) -> None:
            marks.append((time.perf_counter(), time.process_time()))

        if which == "implicit":
            import implicit

            model = implicit.cpu.bpr.BayesianPersonalizedRanking(
                factors=64, iterations=args.epochs, num_threads=args.threads, random_state=0)
            model.fit(train.csr().copy(), show_progress=False, callback=callback)
        else:
            params = {"epochs": args.epochs, **(BPR_IMPLICIT_RECIPE if which == "recipe" else {})}
            make_model("bpr", params).fit(train, FitOptions(seed=0, threads=args.threads, epoch_callback=callback))
        wall, cpu = per_epoch(marks)
        print(f"{which:9s} per epoch: wall {wall:.2f} s, CPU {cpu:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
