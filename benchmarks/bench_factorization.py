"""Model-based CF: recforge vs scikit-surprise (SVD, SVD++, NMF) and implicit (ALS, BPR), side by side.

Every row names its protocol. Peers run in the same process, on the same splits (recforge's
``kfold`` reproduces scikit-surprise's ``KFold(5, random_state=0, shuffle=True)`` folds exactly) and
are scored by the same code (implicit's factors go through recforge's full-ranking evaluation), with
the same thread count on both sides (numba threads via ``FitOptions.threads``, implicit's
``num_threads``; BLAS held to one thread with threadpoolctl on both sides).

Times are medians of ``REPEATS`` runs unless a row says otherwise. Run with
``python -m benchmarks.bench_factorization [--quick]`` (``--quick``: one repeat, no Gowalla BPR).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import sys
import time
from typing import Any

import numpy as np

from benchmarks.common import RESULTS_DIR, machine, md_table, write_fragment
from recforge.config import FitOptions
from recforge.data import load
from recforge.data.interactions import Interactions
from recforge.evaluation.protocols import full_ranking
from recforge.models.factorization.ials import ImplicitALS
from recforge.splits import kfold, leave_one_out, random_split

REPEATS = 3
THREADS = 2

# recforge configurations compared; "surprise-equal" rows use the peer's own hyperparameters
OURS_RATING = {
    "svd": [
        ("recforge svd (defaults)", {}),
        (
            "recforge svd (surprise's: 100 f, 20 ep, lr .005, reg .02)",
            {"embedding_size": 100, "epochs": 20, "learning_rate": 0.005, "reg": 0.02, "reg_bias": 0.02},
        ),
    ],
    "svdpp": [
        ("recforge svdpp (defaults)", {}),
        (
            "recforge svdpp (surprise's: 20 f, 20 ep, lr .007, reg .02)",
            {
                "embedding_size": 20,
                "epochs": 20,
                "learning_rate": 0.007,
                "reg": 0.02,
                "reg_implicit": 0.02,
                "reg_bias": 0.02,
            },
        ),
    ],
    "nmf": [
        ("recforge nmf (defaults)", {}),
        (
            "recforge nmf (surprise's: 15 f, 50 ep, reg .06)",
            {"embedding_size": 15, "epochs": 50, "reg_user": 0.06, "reg_item": 0.06},
        ),
    ],
    "als": [("recforge als (defaults)", {})],
}
IALS_MATCHED = {"embedding_size": 64, "reg": 0.05, "epochs": 15, "alpha": 1.0, "cg_steps": 3}
BPR_MATCHED = {"embedding_size": 64, "epochs": 100, "learning_rate": 0.01, "reg": 0.01}
# implicit's BPR recipe: one negative per update in proportion to popularity, an update skipped
# when that negative is a positive, random pairs, and its initial scale ((U(0,1) - 0.5) / factors)
IMPLICIT_SAMPLING = {"negative_sampling": "popularity", "n_candidates": 1, "pair_sampling": "pairs",
                     "collisions": "skip", "init_std": 0.0045}
GOWALLA_BPR = {
    "embedding_size": 64,
    "epochs": 100,
    "learning_rate": 0.05,
    "learning_rate_decay": 0.96,
    "reg": 0.01,
    "init_std": 0.1,
    "negative_sampling": "uniform",
    "n_candidates": 32,
    "pair_sampling": "pairs",
    "parallel": "blocks",  # as configs/gowalla/bpr.toml: bit-reproducible on any thread count
}


# ---------------------------------------------------------------------------------------- helpers
def _blas_one_thread() -> Any:
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _timed(fn: Any) -> tuple[float, Any]:
    """Wall seconds of ``fn()`` and its result; the process CPU seconds go to ``_timed.cpu``."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = fn()
    _timed.cpu = time.process_time() - c0  # type: ignore[attr-defined]
    return time.perf_counter() - t0, out


def _peer_factors(train: Interactions, users: np.ndarray, items: np.ndarray) -> ImplicitALS:
    """A peer's learned factors loaded into a recforge model, so one evaluation code scores all.

    An :class:`ImplicitALS` scores ``x_u . y_i`` with no biases, as the peers' factor models do; its
    learned state is set through the public ``set_state`` (the attributes ``fit`` would set).
    """
    model = ImplicitALS(embedding_size=users.shape[1])
    model.set_state({
        "users_": train.users,
        "items_": train.items,
        "user_known_": train.user_counts() > 0,
        "item_known_": train.item_counts() > 0,
        "seen_": train.csr().astype(bool).astype(np.float32).tocsr(),
        "rating_min_": 1.0,
        "rating_max_": 1.0,
        "explicit_": False,
        "user_factors_": np.ascontiguousarray(users, dtype=np.float32),
        "item_factors_": np.ascontiguousarray(items, dtype=np.float32),
    })
    return model


# ---------------------------------------------------------------------------------------- rating
def _surprise_algo(name: str) -> Any:
    import surprise

    return {
        "svd": lambda: surprise.SVD(random_state=0),
        "svdpp": lambda: surprise.SVDpp(random_state=0),
        "nmf": lambda: surprise.NMF(random_state=0),
    }[name]()


def _rating_run_surprise(name: str, folds: list[Any]) -> dict[str, float]:
    from surprise import Dataset, Reader

    se, ae, fits, n = 0.0, 0.0, [], 0
    for split in folds:
        df = split.train.to_dataframe()
        data = Dataset.load_from_df(df[["user_id", "item_id", "value"]], Reader(rating_scale=(1, 5)))
        trainset = data.build_full_trainset()
        algo = _surprise_algo(name)
        fit_s, _ = _timed(lambda algo=algo, trainset=trainset: algo.fit(trainset))
        test = split.test.to_dataframe()
        pred = np.array([algo.predict(u, i).est for u, i in zip(test["user_id"], test["item_id"])])
        err = pred - test["value"].to_numpy()
        se += float((err**2).sum())
        ae += float(np.abs(err).sum())
        n += len(err)
        fits.append(fit_s)
    return {"RMSE": float(np.sqrt(se / n)), "MAE": ae / n, "fit": float(np.mean(fits))}


def _rating_run_ours(name: str, cfg: dict[str, Any], folds: list[Any], threads: int) -> dict[str, float]:
    from recforge.models.registry import make_model

    se, ae, fits, n = 0.0, 0.0, [], 0
    for split in folds:
        model = make_model(name, cfg)
        fit_s, _ = _timed(
            lambda model=model, split=split: model.fit(split.train, FitOptions(seed=0, threads=threads))
        )
        test = split.test
        pred = model.predict(test.users.ids[test.user_idx], test.items.ids[test.item_idx], fallback="mean")
        err = pred - test.values
        se += float((err**2).sum())
        ae += float(np.abs(err).sum())
        n += len(err)
        fits.append(fit_s)
    return {"RMSE": float(np.sqrt(se / n)), "MAE": ae / n, "fit": float(np.mean(fits))}


def rating_rows(repeats: int) -> list[dict[str, Any]]:
    ds = load("ml-100k")
    folds = kfold(ds.interactions, 5, seed=0)
    rows = []
    for name in ("svd", "svdpp", "nmf", "als"):
        peer = None
        if name != "als":
            runs = [_rating_run_surprise(name, folds) for _ in range(repeats)]
            peer = statistics.median(r["fit"] for r in runs)
            rows.append(
                {
                    "protocol": "rating-kfold5",
                    "model": f"surprise {name.upper()} (defaults)",
                    "threads": 1,
                    "RMSE": runs[0]["RMSE"],
                    "MAE": runs[0]["MAE"],
                    "fit s/fold": peer,
                    "peer/recforge fit": "",
                }
            )
        for label, cfg in OURS_RATING[name]:
            _rating_run_ours(name, cfg, folds[:1], 1)  # compile and warm caches outside the timing
            runs = [_rating_run_ours(name, cfg, folds, 1) for _ in range(repeats)]
            fit = statistics.median(r["fit"] for r in runs)
            rows.append(
                {
                    "protocol": "rating-kfold5",
                    "model": label,
                    "threads": 1,
                    "RMSE": runs[0]["RMSE"],
                    "MAE": runs[0]["MAE"],
                    "fit s/fold": fit,
                    "peer/recforge fit": f"{peer / fit:.1f}x" if peer else "",
                }
            )
        print(f"  rating {name} done", flush=True)
    return rows


# ---------------------------------------------------------------------------------------- ranking
def _implicit_model(kind: str, cfg: dict[str, Any], threads: int, seed: int) -> Any:
    import implicit

    if kind == "ials":
        return implicit.cpu.als.AlternatingLeastSquares(
            factors=cfg["embedding_size"],
            regularization=cfg["reg"],
            iterations=cfg["epochs"],
            alpha=cfg.get("alpha", 1.0),
            num_threads=threads,
            random_state=seed,
        )
    return implicit.cpu.bpr.BayesianPersonalizedRanking(
        factors=cfg["embedding_size"],
        iterations=cfg["epochs"],
        learning_rate=cfg.get("learning_rate", 0.01),
        regularization=cfg.get("reg", 0.01),
        num_threads=threads,
        random_state=seed,
    )


def _fit_implicit(
    kind: str, cfg: dict[str, Any], train: Interactions, threads: int, seed: int = 0
) -> tuple[float, Any]:
    model = _implicit_model(kind, cfg, threads, seed)
    X = train.csr()
    fit_s, _ = _timed(lambda: model.fit(X, show_progress=False))
    return fit_s, _peer_factors(train, model.user_factors, model.item_factors)


def _fit_ours(
    kind: str, cfg: dict[str, Any], train: Interactions, threads: int, seed: int = 0
) -> tuple[float, Any]:
    from recforge.models.registry import make_model

    model = make_model(kind, cfg)
    fit_s, _ = _timed(lambda: model.fit(train, FitOptions(seed=seed, threads=threads)))
    return fit_s, model


def _ranking_metrics(model: Any, test: Interactions, k: int, metrics: tuple[str, ...]) -> dict[str, float]:
    per, _, _ = full_ranking(model, test, k, metrics)
    return {m: float(np.nanmean(v)) for m, v in per.items()}


def loo_rows(repeats: int) -> list[dict[str, Any]]:
    ds = load("ml-100k")
    return ranking_rows(leave_one_out(ds.interactions), "loo-full (ML-100K, k=10)", 10, ("HR", "NDCG"), repeats)


def ratio_rows(repeats: int) -> list[dict[str, Any]]:
    ds = load("ml-100k")
    split = random_split(ds.interactions, test_fraction=0.2, seed=0)
    return ranking_rows(split, "ratio-full (ML-100K, k=20)", 20, ("Recall", "NDCG"), repeats, one_thread=False)


def ranking_rows(split: Any, protocol: str, k: int, metrics: tuple[str, ...], repeats: int,
                 one_thread: bool = True) -> list[dict[str, Any]]:
    train, test = split.train.to_implicit(), split.test
    rows = []
    # (kind, label, side, config, also at 1 thread)
    plan = [
        ("ials", "implicit ALS (64 f, reg .05, 15 it, alpha 1, CG 3)", "peer", IALS_MATCHED, True),
        ("ials", "recforge ials (same settings)", "ours", IALS_MATCHED, True),
        ("ials", "recforge ials (defaults: alpha 10, reg 30)", "ours", {}, False),
        ("bpr", "implicit BPR (64 f, 100 it, lr .01, reg .01)", "peer", BPR_MATCHED, True),
        (
            "bpr",
            "recforge bpr (implicit's recipe: popularity negatives, collisions skipped, pairs, its init scale; hogwild)",
            "ours",
            {**BPR_MATCHED, **IMPLICIT_SAMPLING},
            True,
        ),
        (
            "bpr",
            "recforge bpr (defaults: uniform negatives, best of 4 candidates, user sampling, hogwild)",
            "ours",
            {},
            True,
        ),
        (
            "bpr",
            "recforge bpr (popularity negatives, user sampling: the previous default)",
            "ours",
            {"negative_sampling": "popularity", "n_candidates": 1},
            False,
        ),
        (
            "bpr",
            "recforge bpr (implicit's recipe, parallel=blocks: deterministic)",
            "ours",
            {**IMPLICIT_SAMPLING, "parallel": "blocks"},
            False,
        ),
    ]
    for threads in (THREADS, 1) if one_thread else (THREADS,):
        todo = [p for p in plan if threads == THREADS or p[4]]
        for kind, _, side, cfg, _ in todo:
            if side == "ours":
                _fit_ours(kind, {**cfg, "epochs": 1}, train, threads)  # compile outside the timing
        fits: dict[str, list[float]] = {p[1]: [] for p in todo}
        cpus: dict[str, list[float]] = {p[1]: [] for p in todo}
        scores: dict[str, list[dict[str, float]]] = {p[1]: [] for p in todo}
        # repeats interleave the models (A B C A B C ...), so load drift on a shared machine hits all
        for seed in range(repeats):
            for kind, label, side, cfg, _ in todo:
                fitter = _fit_ours if side == "ours" else _fit_implicit
                fit_s, model = fitter(kind, cfg, train, threads, seed=seed)
                fits[label].append(fit_s)
                cpus[label].append(_timed.cpu)  # type: ignore[attr-defined]
                scores[label].append(_ranking_metrics(model, test, k, metrics))
        peer_fit: dict[str, float] = {}
        for kind, label, side, _, _ in todo:
            fit = statistics.median(fits[label])
            row: dict[str, Any] = {"protocol": protocol, "model": label, "threads": threads}
            row.update({m: float(np.mean([sc[m] for sc in scores[label]])) for m in scores[label][0]})
            row["fit s"] = fit
            row["CPU s"] = statistics.median(cpus[label])
            if side == "peer":
                peer_fit[kind] = fit
                row["peer/recforge fit"] = ""
            else:
                row["peer/recforge fit"] = f"{peer_fit[kind] / fit:.1f}x"
            rows.append(row)
        print(f"  {protocol} threads={threads} done", flush=True)
    return rows


# ---------------------------------------------------------------------------------------- Gowalla
def _gowalla_child(side: str, kind: str, cfg: dict[str, Any], threads: int, repeats: int, queue: Any) -> None:
    """One Gowalla fit+evaluation in a fresh process, so its peak memory is its own."""
    with _blas_one_thread():
        ds = load("gowalla")
        split = ds.split("given")
        train, test = split.train, split.test
        train.csr()
        fitter = _fit_ours if side == "ours" else _fit_implicit
        if side == "ours":
            fitter(kind, {**cfg, "epochs": 1}, train, threads)
        base_rss = _reset_peak_rss()
        fits, cpus, model = [], [], None
        for _ in range(repeats):
            fit_s, model = fitter(kind, cfg, train, threads)
            fits.append(fit_s)
            cpus.append(_timed.cpu)  # type: ignore[attr-defined]
        peak_rss = _status_mb("VmHWM")
        t0 = time.perf_counter()
        per, _, _ = full_ranking(model, test, 20, ("Recall", "NDCG"))
        eval_s = time.perf_counter() - t0
        queue.put(
            {
                "Recall@20": float(np.nanmean(per["Recall@20"])),
                "NDCG@20": float(np.nanmean(per["NDCG@20"])),
                "fit s": statistics.median(fits),
                "fits": fits,
                "cpu": statistics.median(cpus),
                "eval s": eval_s,
                "base_rss": base_rss,
                "peak_rss": peak_rss,
            }
        )


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak_rss() -> float:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux); returns the current RSS in MB."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:  # not Linux, or not allowed: the peak then includes loading the data
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return _status_mb("VmRSS")


def _in_child(*args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_gowalla_child, args=(*args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def gowalla_rows(repeats: int, with_bpr: bool) -> list[dict[str, Any]]:
    rows = []
    plan = [
        ("peer", "ials", "implicit ALS (64 f, reg .05, 15 it, alpha 1, CG 3)", IALS_MATCHED, repeats),
        ("ours", "ials", "recforge ials (same settings)", IALS_MATCHED, repeats),
        ("ours", "ials", "recforge ials (defaults: alpha 10, reg 30)", {}, 1),
    ]
    if with_bpr:
        plan += [
            ("peer", "bpr", "implicit BPR (64 f, 100 it, lr .01, reg .01)", BPR_MATCHED, 1),
            ("ours", "bpr", "recforge bpr (same settings and sampling, hogwild)", {**BPR_MATCHED, **IMPLICIT_SAMPLING}, 1),
            (
                "ours",
                "bpr",
                "recforge bpr ("
                + ", ".join(f"{k} {v}" for k, v in GOWALLA_BPR.items() if k != "embedding_size")
                + ")",
                GOWALLA_BPR,
                1,
            ),
        ]
    # one process per fit; repeats interleave peer and recforge (P O P O ...) against load drift
    results: dict[str, list[dict[str, Any]]] = {p[2]: [] for p in plan}
    for rep in range(max(p[4] for p in plan)):
        for side, kind, label, cfg, reps in plan:
            if rep < reps:
                results[label].append(_in_child(side, kind, cfg, THREADS, 1))
    peer_fit: dict[str, float] = {}
    for side, kind, label, cfg, _ in plan:
        runs = results[label]
        res = runs[0]
        epochs = cfg.get("epochs", 15)
        fit = statistics.median(r["fit s"] for r in runs)
        row = {
            "protocol": "given-split (Gowalla, k=20)",
            "model": label,
            "threads": THREADS,
            "Recall@20": res["Recall@20"],
            "NDCG@20": res["NDCG@20"],
            "fit s": fit,
            "CPU s": statistics.median(r["cpu"] for r in runs),
            "s/iteration": fit / epochs,
            "runs": len(runs),
            "peak RSS MB during fit (before fit)": (
                f"{max(r['peak_rss'] for r in runs):.0f} ({res['base_rss']:.0f})"
            ),
            "eval s": res["eval s"],
        }
        if side == "peer":
            peer_fit[kind] = row["s/iteration"]
            row["peer/recforge s/it"] = ""
        else:
            # a ratio only where an iteration is the same work (not for the DNS configuration)
            same_work = cfg.get("n_candidates", 1) == 1
            row["peer/recforge s/it"] = f"{peer_fit[kind] / row['s/iteration']:.1f}x" if same_work else ""
        rows.append(row)
        print(
            f"  gowalla {label}: {json.dumps({k: row[k] for k in ('Recall@20', 'NDCG@20', 'fit s')})}",
            flush=True,
        )
    return rows


# ---------------------------------------------------------------------------------------- main
PARTS: dict[str, Any] = {"rating": rating_rows, "loo": loo_rows, "ratio": ratio_rows, "gowalla": None}


def _kept_sections() -> dict[str, str]:
    """The sections of the last fragment, by part, so ``--only`` reruns replace just their own."""
    path = RESULTS_DIR / "factorization.md"
    if not path.exists():
        return {}
    out = {}
    for chunk in path.read_text().split("<!-- part: ")[1:]:
        name, _, body = chunk.partition(" -->")
        out[name.strip()] = body.split("\nRatios are peer fit time")[0].strip()
    return out


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one repeat and no Gowalla BPR")
    parser.add_argument("--only", choices=list(PARTS), action="append",
                        help="run these parts; the others keep their last results")
    args = parser.parse_args(argv if argv is not None else [])
    repeats = 1 if args.quick else REPEATS
    parts = args.only or list(PARTS)
    t_all = time.perf_counter()
    titles = {
        "rating": (
            "Rating prediction, ML-100K `rating-kfold5` (recforge and surprise single-threaded; "
            "fit s/fold: mean over the 5 folds, median of the runs)"
        ),
        "loo": (
            "Implicit feedback, ML-100K `loo-full` (every rating an interaction; latest per user held out, "
            "ties to the larger item id; all unseen items ranked; HR/NDCG: mean over seeds 0..R-1, "
            "fit s: median)"
        ),
        "ratio": (
            "Implicit feedback, ML-100K `ratio-full` (random 80/20 of the interactions, seed 0; all unseen "
            "items ranked; Recall/NDCG: mean over seeds 0..R-1, fit s: median)"
        ),
        "gowalla": (
            "Gowalla `given-split` (NGCF/LightGCN train.txt/test.txt; all unseen items ranked in user "
            "blocks; each model fitted and evaluated in its own process)"
        ),
    }
    kept = _kept_sections()
    with _blas_one_thread():
        for part in ("rating", "loo", "ratio"):
            if part in parts:
                kept[part] = f"### {titles[part]}\n\n" + md_table(PARTS[part](repeats))
    if "gowalla" in parts:
        kept["gowalla"] = f"### {titles['gowalla']}\n\n" + md_table(gowalla_rows(repeats, with_bpr=not args.quick))
    text = "## Model-based collaborative filtering (factorization)\n\n"
    for part in PARTS:
        if part in kept:
            text += f"<!-- part: {part} -->\n{kept[part].strip()}\n\n"
    text += (
        "Ratios are peer fit time / recforge fit time at the same thread count (> 1: recforge faster). "
        f"Fit times are medians of {repeats} run(s) unless `runs` says otherwise; repeated runs interleave "
        "the models compared (A B A B ...). `CPU s` is the process CPU time of the fit (all threads; "
        "spin-waiting OpenMP threads count too), less sensitive than wall time to other load. implicit's "
        "ALS confidence is `alpha * r` (so alpha 1 weights positives like unobserved cells), recforge's is "
        "`1 + alpha * r`; the work per iteration is the same. The machine is shared by several agents, so "
        "absolute times drift; compare rows of one run (parts run separately carry their own date). "
        f"Last run: {', '.join(parts)} in {time.perf_counter() - t_all:.0f} s.\n\n_Measured on {machine()}._\n"
    )
    write_fragment("factorization", text)
    return text


if __name__ == "__main__":
    print(main(sys.argv[1:]))
