"""Training on Ray, 1 vs 2 workers, next to one process: ials (ML-100K and a synthetic log) and mf-torch.

Every configuration runs in the same process, one after the other, on the same data, so the rows of
one table are comparable with each other (ratios, not absolute times: the machine may be shared).

- ``ials`` (64 factors, CG, 5 epochs): one process with 1 and 2 numba threads, and Ray with 1 and 2
  actors of one CPU each (:mod:`recforge.distributed.ials`). Per-epoch time is the median over the
  epochs after the first (timed by ``FitOptions.epoch_callback``, which runs in the driver); the
  start-up (actors, shipping the rows) is the fit's wall time minus its epochs. The factors of the
  2-actor fit are compared with the one-process fit's (max abs difference).
- ``mf-torch`` (ML-100K, random 80/20, 3 epochs): one process and Ray Train with 1 and 2 workers
  (DDP over gloo). Per-epoch time is timed on worker 0 by a Lightning callback; the start-up (worker
  group, process group, data and model shipped) is the wall time minus the epochs. NDCG@10 of the
  full ranking of the test users, local and on 2 workers.

Run: ``python -m benchmarks.bench_ray_train`` (``--quick``: ML-100K only, no Ray Train 1-worker
row). It starts a local Ray instance with 2 CPUs; writes ``benchmarks/results/ray_train.md`` and
``benchmarks/results/ray_train.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS_DIR, machine, md_table, write_fragment


class _EpochClock:
    """Lightning callback: appends ``(rank, epoch, seconds)`` of every training epoch to a file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.t0 = 0.0

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps([trainer.global_rank, trainer.current_epoch, time.perf_counter() - self.t0]) + "\n")


def _clock(path: str) -> Any:
    from lightning.pytorch.callbacks import Callback

    return type("EpochClock", (_EpochClock, Callback), {})(path)


def ials_rows(data: Any, name: str, epochs: int, rounds: int) -> list[dict[str, Any]]:
    from recforge.config import FitOptions
    from recforge.models.factorization.ials import ImplicitALS

    runs = [("one process, 1 thread", {"threads": 1}), ("one process, 2 threads", {"threads": 2}),
            ("Ray, 1 actor", {"backend": "ray", "workers": 1}), ("Ray, 2 actors", {"backend": "ray", "workers": 2})]
    epoch_s: dict[str, list[float]] = {label: [] for label, _ in runs}
    start_s: dict[str, list[float]] = {label: [] for label, _ in runs}
    factors: dict[str, np.ndarray] = {}
    for _ in range(rounds):  # the configurations interleaved, so a burst of load hits all of them
        for label, extra in runs:
            stamps: list[float] = []
            model = ImplicitALS(epochs=epochs, embedding_size=64)
            t0 = time.perf_counter()
            model.fit(data, FitOptions(seed=0, epoch_callback=lambda e, m: stamps.append(time.perf_counter()),
                                       **extra))
            wall = time.perf_counter() - t0
            # the first epoch is timed from the fit's start, so it includes the start-up
            per = statistics.median(b - a for a, b in zip(stamps, stamps[1:]))
            epoch_s[label].append(per)
            start_s[label].append(wall - per * epochs)
            factors[label] = model.item_factors_
    base = statistics.median(epoch_s[runs[0][0]])
    rows = []
    for label, _ in runs:
        e = statistics.median(epoch_s[label])
        rows.append({"data": name, "run": label, "epoch s (median)": e,
                     "start-up s": statistics.median(start_s[label]),
                     "speed-up per epoch vs 1 thread": base / e,
                     "max abs diff of Y vs 1 thread": float(np.abs(factors[label] - factors[runs[0][0]]).max())})
    return rows


def torch_rows(ds: Any, epochs: int, workers: list[int]) -> list[dict[str, Any]]:
    from recforge.config import FitOptions
    from recforge.evaluation.protocols import get_protocol
    from recforge.models.registry import get_model_class

    proto = get_protocol("ratio-full")
    split = proto.splits(ds, 0)[0]
    rows = []
    for n in [0, *workers]:
        log = tempfile.NamedTemporaryFile(prefix="recforge-epochs-", suffix=".jsonl", delete=False).name
        opts = FitOptions(seed=1, callbacks=(_clock(log),))
        if n:
            opts = opts.replace(backend="ray", workers=n)
        model = get_model_class("mf-torch")(epochs=epochs)
        t0 = time.perf_counter()
        model.fit(split.train, opts)
        wall = time.perf_counter() - t0
        lines = [json.loads(x) for x in Path(log).read_text().splitlines()]
        Path(log).unlink()
        per = [s for rank, _, s in lines if rank == 0]
        epoch = statistics.median(per)
        ndcg = proto.score(model, split, k=10, dataset=ds, seed=0).metrics["NDCG@10"]
        rows.append({"run": "one process" if not n else f"Ray Train, {n} worker{'s' * (n > 1)}",
                     "epoch s (median)": epoch, "start-up s": wall - sum(per), "fit s": wall, "NDCG@10": ndcg})
    for r in rows:
        r["speed-up per epoch"] = rows[0]["epoch s (median)"] / r["epoch s (median)"]
    return rows


def render(out: dict[str, Any], args: argparse.Namespace) -> str:
    """The Markdown fragment of a run (``out`` as written to ``ray_train.json``)."""
    argv = out.get("argv") or []
    cmd = "python -m benchmarks.bench_ray_train" + (" " + " ".join(argv) if argv else "")
    rows = [{**r, "max abs diff of Y vs 1 thread": f"{r['max abs diff of Y vs 1 thread']:.1e}"} for r in out["ials"]]
    return (
        "## Training on Ray: 1 vs 2 workers (ials, mf-torch)\n\n"
        f"Measured with `{cmd}` on {out['machine']}; a local Ray instance with 2 CPUs, every row in the same "
        "process one after another. **The machine was shared with other jobs (load average above 10 on "
        "2 cores)**: compare the rows of one table with each other, not with other tables.\n\n"
        f"`ials`, 64 factors, CG solver, {args.epochs} epochs; seconds per epoch: median over the epochs after the "
        f"first (the driver times them), then median over {args.rounds} interleaved rounds; start-up = fit "
        "minus epochs (Ray: the actors started and the rows shipped once); the last column compares the "
        "item factors with the one-thread fit's (same seed):\n\n"
        + md_table(rows, 3) + "\n\n"
        "`mf-torch` on ML-100K (ratio-full: random 80/20, full ranking), per-epoch seconds timed on "
        "worker 0; start-up = Ray Train's worker group, the gloo process group, model and data shipped:\n\n"
        + md_table(out["mf_torch"], 4) + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="ML-100K only; no Ray Train 1-worker row")
    ap.add_argument("--synth-rows", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=5, help="ials epochs")
    ap.add_argument("--torch-epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="ials: interleaved repeats of every configuration")
    ap.add_argument("--render", action="store_true", help="only rewrite the fragment from ray_train.json")
    args = ap.parse_args(argv)
    if args.render:
        write_fragment("ray_train", render(json.loads((RESULTS_DIR / "ray_train.json").read_text()), args))
        return 0

    import ray

    from recforge.data import load

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, address="local", logging_level="WARNING")
    ds = load("ml-100k")
    rows = ials_rows(ds.interactions, "ML-100K", args.epochs, args.rounds)
    if not args.quick:
        from recforge.data.streaming import read_interactions
        from recforge.data.synth import SynthSpec, write_synth

        with tempfile.TemporaryDirectory() as tmp:
            n = args.synth_rows
            spec = SynthSpec(max(1, n // 145), 26_744, n, seed=0, min_per_user=20, half_stars=True)
            path = Path(tmp) / "synth.parquet"
            write_synth(spec, path)
            synth = read_interactions(path, name="synth")
        label = f"synthetic {n:,} rows ({synth.n_users:,} x {synth.n_items:,})"
        rows += ials_rows(synth, label, args.epochs, args.rounds)
    trows = torch_rows(ds, args.torch_epochs, [2] if args.quick else [1, 2])
    out = {"machine": machine(), "ials": rows, "mf_torch": trows, "argv": list(argv or [])}
    (RESULTS_DIR / "ray_train.json").write_text(json.dumps(out, indent=1))
    text = render(out, args)
    write_fragment("ray_train", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
