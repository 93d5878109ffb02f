"""The scale curve: every stage of a recforge pipeline at growing log sizes, beside implicit.

For each size (interactions; default 1M and 10M, ``--sizes 1M,10M,20M,100M``) a synthetic log of
the ML-20M shape is written (:mod:`recforge.data.synth`: 26,744 items, users scaled with the size so
each has ~144 rows as in ML-20M, power-law popularity and activity, seed 0), then each stage runs
in its own Python process, which reports its wall time, CPU time (user + system, all threads) and
peak RSS (``VmHWM``, the interpreter and imports included), so one stage's memory never hides in another's:

==============  ===================================================================================
``load``        stream the Parquet file into ``Interactions`` (:func:`read_interactions`) and save
                it as memory-mapped arrays (``Interactions.save``)
``open``        ``Interactions.open`` of that folder, the CSR matrix touched (the second run's load)
``split``       random 80/20 over interactions, seed 0 (``ratio-full``'s split), both parts saved
``fit-ials``    ``ials`` 64 factors, CG 3 steps, ``--epochs`` sweeps: seconds per epoch (median)
``fit-bpr``     ``bpr`` defaults (users sampling, hogwild), seconds per epoch
``fit-bpr-recipe``  ``bpr`` with implicit's sampling recipe (``pair_sampling="pairs"``: each epoch
                one draw per training pair; popularity negatives, one candidate, a collision
                skipped, ``init_std=0.0045``), seconds per epoch
``fit-knn``     ``item-knn-implicit`` (100 neighbours), whole fit
``eval``        full ranking (k=10, all unseen items) of 10,000 sampled test users, ``ials`` model
``batch-sqlite``  every user's top 10 into SQLite (``run_batch``: staging table, atomic swap)
``batch-postgres``  the same into PostgreSQL (``--postgres URL``), when it answers
``implicit-*``  implicit 0.7's ALS (64 factors, CG 3 steps, same reg), BPR (64 factors),
                CosineRecommender (K=100) on the same training CSR with the same threads; ALS's
                process also ranks the same 10,000 users (``implicit-eval``)
==============  ===================================================================================

Then the log-log slope of each stage's time against the number of interactions is fitted and
printed (1.0 = linear). Results go to ``benchmarks/results/scale.json`` and a Markdown table on
stdout. The 100M row needs ~2 GB of arrays per stage process (20 bytes a row) plus the models;
run it with ``--sizes 100M`` on a machine with room (see RESULTS.md for the projection).

Run: ``python -m benchmarks.bench_scale --sizes 1M,10M`` (``make bench-scale``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ITEMS = 26_744  # ML-20M's catalogue
# implicit's BPR sampler in BPRConfig's terms (see its ``collisions`` field)
BPR_IMPLICIT_RECIPE = {"pair_sampling": "pairs", "negative_sampling": "popularity", "n_candidates": 1,
                       "collisions": "skip", "init_std": 0.0045}
ROWS_PER_USER = 20_000_263 / 138_493  # ML-20M's mean activity
STAGES = ("load", "open", "split", "fit-ials", "fit-bpr", "fit-bpr-recipe", "fit-knn", "eval", "batch-sqlite",
          "batch-postgres", "implicit-als", "implicit-bpr", "implicit-cosine")


def parse_size(text: str) -> int:
    text = text.strip().upper()
    mult = {"K": 10**3, "M": 10**6, "B": 10**9}.get(text[-1:], 1)
    return int(float(text[:-1] if mult > 1 else text) * mult)


def label(n: int) -> str:
    return f"{n // 10**6}M" if n % 10**6 == 0 else f"{n / 1e6:g}M"


# ---------------------------------------------------------------------------------------- one stage
def _peak_rss_mb() -> float:
    """This process's peak RSS: ``VmHWM`` (``ru_maxrss`` survives ``exec`` on Linux, so a child would
    report its parent's peak), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _usage() -> dict[str, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu": ru.ru_utime + ru.ru_stime, "rss_mb": _peak_rss_mb()}


class _Clock:
    """Wall and CPU time of a stage, from after the imports and set-up it does not own."""

    def __init__(self) -> None:
        self.base = _usage()
        self.t0 = time.perf_counter()

    def result(self, **extra: Any) -> dict[str, Any]:
        now = _usage()
        return {"wall_s": time.perf_counter() - self.t0, "cpu_s": now["cpu"] - self.base["cpu"],
                "peak_rss_mb": now["rss_mb"], "base_rss_mb": self.base["rss_mb"], **extra}


def _epochs_timer() -> tuple[list[tuple[float, float]], Any]:
    """Marks of (wall, process CPU) at the start and after every epoch, and the callback that adds them."""
    marks: list[tuple[float, float]] = [(time.perf_counter(), time.process_time())]

    def callback(*_: Any) -> None:
        marks.append((time.perf_counter(), time.process_time()))

    return marks, callback


def _per_epoch(marks: list[tuple[float, float]]) -> dict[str, Any]:
    """Median wall and CPU seconds per epoch, after the first (which also compiles) when there are 3+."""
    gaps = np.diff(np.asarray(marks), axis=0)
    use = gaps[1:] if len(gaps) > 2 else gaps
    return {"per_epoch_s": float(np.median(use[:, 0])), "per_epoch_cpu_s": float(np.median(use[:, 1])),
            "epochs": len(gaps)}


def _sample_users(test: Any, n: int) -> np.ndarray:
    users = np.flatnonzero(np.diff(test.csr().indptr) > 0)
    rng = np.random.default_rng(0)
    return np.sort(rng.choice(users, size=min(n, len(users)), replace=False))


def run_stage(stage: str, work: Path, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run one stage in this process (the parent starts one process per stage)."""
    from recforge.config import FitOptions
    from recforge.data.interactions import Interactions

    tag = label(n)
    store, train_dir, test_dir = work / f"log-{tag}", work / f"train-{tag}", work / f"test-{tag}"
    opts = FitOptions(seed=0, threads=args.threads)
    if stage == "synth":
        return synth(work, n)
    if stage == "load":
        from recforge.data.streaming import check_duplicates, read_interactions

        check_duplicates(np.zeros(2, np.int32), np.arange(2, dtype=np.int32), 2)  # load the compiled kernel first
        clock = _Clock()
        data = read_interactions(work / f"log-{tag}.parquet", rating="rating", timestamp="timestamp")
        arrays = sum(a.nbytes for a in (data.user_idx, data.item_idx, data.values, data.timestamps))
        read = clock.result()
        data.save(store)
        m = data.csr()  # built by the save, which writes it to the store too
        stored = arrays + m.indptr.nbytes + m.indices.nbytes + m.data.nbytes
        return clock.result(read_s=read["wall_s"], read_peak_rss_mb=read["peak_rss_mb"],
                            arrays_mb=arrays / 2**20, store_mb=stored / 2**20, users=data.n_users,
                            items=data.n_items)
    if stage == "open":
        clock = _Clock()
        data = Interactions.open(store)
        m = data.csr()
        touched = float(m.data.sum()) + float(data.values.sum())  # read every page once
        return clock.result(touched=touched)
    if stage == "split":
        from recforge.splits import random_split

        clock = _Clock()
        sp_ = random_split(Interactions.open(store).to_implicit(), test_fraction=0.2, seed=0)
        sp_.train.save(train_dir)
        sp_.test.save(test_dir, csr=True)
        return clock.result(train_rows=len(sp_.train), test_rows=len(sp_.test))
    if stage.startswith("fit-"):
        from recforge.models.registry import make_model

        name, params = {
            "fit-ials": ("ials", {"embedding_size": 64, "epochs": args.epochs}),
            "fit-bpr": ("bpr", {"epochs": args.epochs}),
            "fit-bpr-recipe": ("bpr", {"epochs": args.epochs, **BPR_IMPLICIT_RECIPE}),
            "fit-knn": ("item-knn-implicit", {}),
        }[stage]
        train = Interactions.open(train_dir)
        marks, callback = _epochs_timer()
        model = make_model(name, params)
        clock = _Clock()
        model.fit(train, opts.replace(epoch_callback=callback) if name != "item-knn-implicit" else opts)
        res = clock.result()
        if name != "item-knn-implicit":
            res.update(_per_epoch(marks))
        if stage == "fit-ials":
            model.save(work / f"ials-{tag}.npz")
        return res
    if stage == "eval":
        from recforge.evaluation.protocols import full_ranking
        from recforge.models.base import Recommender

        model = Recommender.load(work / f"ials-{tag}.npz")
        test = Interactions.open(test_dir)
        users = _sample_users(test, args.eval_users)
        clock = _Clock()
        per, _, _ = full_ranking(model, test, 10, ("HR", "NDCG", "Recall"), users=users)
        return clock.result(users=len(users), **{m: float(np.nanmean(v)) for m, v in per.items()})
    if stage.startswith("batch-"):
        from recforge.models.base import Recommender
        from recforge.serving.batch import run_batch

        model = Recommender.load(work / f"ials-{tag}.npz")
        if stage == "batch-sqlite":
            url: Any = work / f"recs-{tag}.db"
            if Path(url).exists():
                Path(url).unlink()
        else:
            url = args.postgres
        clock = _Clock()
        res = run_batch(model, url, k=10, table=f"scale_recs_{n}", batch_size=2000, version=f"scale-{tag}")
        out = clock.result(rows=res.n_rows, users=res.n_users)
        if stage == "batch-postgres":
            import sqlalchemy as sa

            eng = sa.create_engine(str(url).replace("postgresql://", "postgresql+psycopg://"))
            with eng.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS scale_recs_{n}"))
        return out
    if stage.startswith("implicit-"):
        return _implicit_stage(stage, work, tag, args)
    raise SystemExit(f"unknown stage {stage!r}")


def _implicit_stage(stage: str, work: Path, tag: str, args: argparse.Namespace) -> dict[str, Any]:
    import implicit

    from recforge import metrics as M
    from recforge.data.interactions import Interactions

    train = Interactions.open(work / f"train-{tag}")
    x = train.csr().copy()  # implicit's Cython needs writable buffers (the store is mapped read-only)
    marks, callback = _epochs_timer()
    if stage == "implicit-als":
        model = implicit.cpu.als.AlternatingLeastSquares(
            factors=64, regularization=30.0, alpha=10.0, iterations=args.epochs, use_cg=True,
            num_threads=args.threads, random_state=0, calculate_training_loss=False)
    elif stage == "implicit-bpr":
        model = implicit.cpu.bpr.BayesianPersonalizedRanking(
            factors=64, iterations=args.epochs, num_threads=args.threads, random_state=0)
    else:
        model = implicit.nearest_neighbours.CosineRecommender(K=100, num_threads=args.threads)
    clock = _Clock()
    if stage == "implicit-cosine":
        model.fit(x, show_progress=False)
    else:
        model.fit(x, show_progress=False, callback=callback)
    res = clock.result()
    if stage != "implicit-cosine":
        res.update(_per_epoch(marks))
    if stage == "implicit-als":
        test = Interactions.open(work / f"test-{tag}")
        users = _sample_users(test, args.eval_users)
        c2 = _Clock()
        ids, scores = model.recommend(users, x[users], N=10, filter_already_liked_items=True)
        recs = np.where(np.isfinite(scores) & (scores > -1e30), ids, -1).astype(np.int64)
        truth = test.csr()[users]
        ev = c2.result(users=len(users), **{f"{m}@10": float(np.nanmean(f(recs, truth, 10))) for m, f in
                                            (("HR", M.hit_rate_at_k), ("NDCG", M.ndcg_at_k), ("Recall", M.recall_at_k))})
        res["eval"] = ev
    return res


# ---------------------------------------------------------------------------------------- the curve
def _postgres_ok(url: str | None) -> bool:
    if not url:
        return False
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


def _child(stage: str, work: Path, n: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.bench_scale", "--stage", stage, "--n", str(n), "--work", str(work),
           "--threads", str(args.threads), "--epochs", str(args.epochs), "--eval-users", str(args.eval_users)]
    if args.postgres:
        cmd += ["--postgres", args.postgres]
    env = {**os.environ, "NUMBA_NUM_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads),
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.stage_timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail), "process_s": time.perf_counter() - t0}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t0
    return out


def synth(work: Path, n: int) -> dict[str, Any]:
    from recforge.data.synth import SynthSpec, write_synth

    path = work / f"log-{label(n)}.parquet"
    spec = SynthSpec(max(1, round(n / ROWS_PER_USER)), ITEMS, n, seed=0, min_per_user=20, half_stars=True)
    if path.exists():
        return {"skipped": "exists", "users": spec.n_users}
    c = _Clock()
    info = write_synth(spec, path)
    return c.result(users=spec.n_users, row_groups=info["row_groups"])


def slope(ns: list[int], ts: list[float]) -> float | None:
    pts = [(np.log(n), np.log(t)) for n, t in zip(ns, ts, strict=True) if t and t > 0]
    if len(pts) < 2:
        return None
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


def _time_of(rec: dict[str, Any], key: str) -> float | None:
    if "error" in rec or "skipped" in rec:
        return None
    return rec.get("per_epoch_s") if key == "epoch" and "per_epoch_s" in rec else rec.get(key)


def report(results: dict[str, dict[str, Any]]) -> str:
    sizes = sorted(results, key=int)
    rows = ["| stage | " + " | ".join(f"{label(int(s))} wall s | CPU s | peak RSS MB" for s in sizes)
            + " | slope (wall) | slope (CPU) |",
            "|---|" + "---|---|---|" * len(sizes) + "---|---|"]
    names: list[tuple[str, str, str]] = [("synth", "synth", "")]
    for st in STAGES:
        names.append((st, st, ""))
        if st in ("fit-ials", "fit-bpr", "fit-bpr-recipe", "implicit-als", "implicit-bpr"):
            names.append((f"{st} per epoch", st, "epoch"))
        if st == "implicit-als":
            names.append(("implicit-eval", st, "eval"))
    for title, key, sub in names:
        cells, walls, cpus, ns = [], [], [], []
        for s in sizes:
            rec = results[s].get(key, {})
            if sub == "eval":
                rec = rec.get("eval", {}) if "error" not in rec else rec
            if not rec or "error" in rec or "skipped" in rec:
                cells.append(("n/a" if not rec else ("err" if "error" in rec else "skip")) + " | | ")
                continue
            if sub == "epoch":
                wall = rec.get("per_epoch_s")
                cpu = rec.get("per_epoch_cpu_s", rec["cpu_s"] / max(1, rec.get("epochs", 1)))
                cells.append(f"{wall:.3g} | {cpu:.3g} | ")
            else:
                wall, cpu = rec["wall_s"], rec["cpu_s"]
                cells.append(f"{wall:.3g} | {cpu:.3g} | {rec['peak_rss_mb']:.0f}")
            walls.append(wall)
            cpus.append(cpu)
            ns.append(int(s))
        sw, sc = slope(ns, walls), slope(ns, cpus)
        rows.append(f"| {title} | " + " | ".join(cells) + f" | {'' if sw is None else f'{sw:.2f}'} | "
                    f"{'' if sc is None else f'{sc:.2f}'} |")
    return "\n".join(rows)


PEERS = (("ALS per epoch, 64 factors, CG 3", "fit-ials", "implicit-als", "epoch"),
         ("BPR per epoch, defaults", "fit-bpr", "implicit-bpr", "epoch"),
         ("BPR per epoch, implicit's sampling recipe", "fit-bpr-recipe", "implicit-bpr", "epoch"),
         ("item kNN fit, 100 neighbours", "fit-knn", "implicit-cosine", "fit"))


def side_by_side(results: dict[str, dict[str, Any]]) -> str:
    """recforge against implicit per size: CPU and wall seconds, their ratios, peak RSS; and the
    streaming read's peak above its baseline against the final arrays."""
    rows = ["| size | what | recforge CPU s | implicit CPU s | CPU ratio | wall ratio | peak RSS ratio |",
            "|---|---|---|---|---|---|---|"]
    for s in sorted(results, key=int):
        res = results[s]
        for title, ours, theirs, sub in PEERS:
            a, b = res.get(ours, {}), res.get(theirs, {})
            if not a or not b or any(k in r for r in (a, b) for k in ("error", "skipped")):
                continue
            ca, cb = (a["per_epoch_cpu_s"], b["per_epoch_cpu_s"]) if sub == "epoch" else (a["cpu_s"], b["cpu_s"])
            wa, wb = (a["per_epoch_s"], b["per_epoch_s"]) if sub == "epoch" else (a["wall_s"], b["wall_s"])
            rows.append(f"| {label(int(s))} | {title} | {ca:.3g} | {cb:.3g} | {ca / cb:.2f} | {wa / wb:.2f} | "
                        f"{a['peak_rss_mb'] / b['peak_rss_mb']:.2f} |")
    lines = ["\n".join(rows), ""]
    for s in sorted(results, key=int):
        ld = results[s].get("load", {})
        if "read_peak_rss_mb" in ld and ld.get("arrays_mb"):
            read = (ld["read_peak_rss_mb"] - ld["base_rss_mb"]) / ld["arrays_mb"]
            store = ld.get("store_mb") or ld["arrays_mb"]
            whole = (ld["peak_rss_mb"] - ld["base_rss_mb"]) / store
            lines.append(f"{label(int(s))}: streaming read peak {read:.2f}x the final row arrays "
                         f"({ld['arrays_mb']:.0f} MB); read + save {whole:.2f}x the stored arrays "
                         f"({store:.0f} MB: rows and CSR)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1M,10M", help="comma-separated interaction counts (1M,10M,20M,100M)")
    ap.add_argument("--work", default="/tmp/recforge-scale", help="folder for the logs, stores and models")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3, help="ials/bpr epochs (per-epoch time: median after the first)")
    ap.add_argument("--eval-users", type=int, default=10_000)
    ap.add_argument("--postgres", default=None, help="PostgreSQL URL for batch-postgres (skipped without one)")
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of the stages")
    ap.add_argument("--no-peers", action="store_true", help="skip implicit's rows")
    ap.add_argument("--output", default="benchmarks/results/scale.json")
    ap.add_argument("--stage-timeout", type=float, default=3600)
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    work = Path(args.work)
    if args.stage:
        print(json.dumps(run_stage(args.stage, work, args.n, args)))
        return 0
    work.mkdir(parents=True, exist_ok=True)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    stages = [s for s in args.stages.split(",") if s in STAGES]
    if args.no_peers:
        stages = [s for s in stages if not s.startswith("implicit-")]
    out_path = Path(args.output)
    results: dict[str, dict[str, Any]] = {}
    if out_path.exists():
        results = json.loads(out_path.read_text()).get("results", {})
    for n in sizes:
        res = results.setdefault(str(n), {})
        res["synth"] = _child("synth", work, n, args)
        print(f"[{label(n)}] synth {res['synth']}", flush=True)
        for st in stages:
            if st == "batch-postgres" and not _postgres_ok(args.postgres):
                res[st] = {"skipped": "no PostgreSQL URL given or none answers at 127.0.0.1:5432"}
                continue
            res[st] = _child(st, work, n, args)
            print(f"[{label(n)}] {st}: {json.dumps(res[st])}", flush=True)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps({"argv": sys.argv[1:], "threads": args.threads, "epochs": args.epochs,
                                            "results": results}, indent=1))
    print(report(results))
    print()
    print(side_by_side(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
