"""Compare the blend's training procedures on ML-100K's u1.base only (u1.test is never read).

u1.base is cut into T (90%) and a pseudo-test V (the blend's own carve: a random 10%, seed 0).
Every procedure is run on T and scored on V:

- ``holdout``: members fitted on T minus a random 10% carve of T, the combiner learned on the
  carve, members refitted on T (the blend's ``validation_split = "random"``);
- ``kfold``: members fitted ``--folds`` times on T minus one fold, the combiner learned on the
  out-of-fold predictions of all of T (stacking, Wolpert 1992), members refitted on T (the
  blend's ``validation_split = "kfold"``).

Member predictions are cached per (member spec, training part) under ``--cache`` so that each
member is fitted once per part; combiners (ridge, boosted trees, with and without support counts)
are then compared on the same predictions. Forward selection (``--forward``) picks members by the
V RMSE of one procedure/combiner.

    python -m benchmarks.blend_protocols --candidates '[{"model": "autorec"}, {"model": "svdpp"}]'
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def parts(folds: int) -> tuple[Any, Any, dict[str, tuple[Any, Any]]]:
    """``(T, V, {part name: (fit on, predict)})`` for every training part the procedures need."""
    from recforge.data import load
    from recforge.evaluation.protocols import get_protocol
    from recforge.models.ensemble.blend import RatingBlend
    from recforge.splits import kfold, random_split

    ds = load("ml-100k")
    (split,) = list(get_protocol("rating-u1").splits(ds))[:1]
    T, V = RatingBlend()._carve(split.train, 0)
    inner = random_split(T, test_fraction=0.1, seed=0)
    out = {"T": (T, V), "holdout": (inner.train, inner.test)}
    for s in kfold(T, n_folds=folds, seed=0):
        out[f"fold{s.fold}"] = (s.train, s.test)
    return T, V, out


def predictions(spec: dict[str, Any], name: str, fit_on: Any, target: Any, cache: Path) -> np.ndarray:
    from recforge.config import FitOptions
    from recforge.models._members import fit_member

    key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    path = cache / f"{key}-{name}.npy"
    if path.exists():
        return np.load(path)
    t0 = time.perf_counter()
    model = fit_member(spec["model"], {k: v for k, v in spec.items() if k != "model"}, fit_on,
                       FitOptions(seed=0, threads=1))
    pred = model.predict(target.users.ids[target.user_idx], target.items.ids[target.item_idx], fallback="mean")
    rmse = float(np.sqrt(np.mean((pred - target.values) ** 2)))
    print(f"  {json.dumps(spec)} on {name}: RMSE {rmse:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, pred)
    return pred


def support(fit_on: Any, target: Any, scale: float) -> np.ndarray:
    """log(1 + n_u), log(1 + n_i) of ``fit_on`` (rescaled by ``scale``) for the target's pairs."""
    nu = fit_on.user_counts()[target.user_idx] * scale
    ni = fit_on.item_counts()[target.item_idx] * scale
    return np.column_stack([np.log1p(nu), np.log1p(ni)])


def combine(kind: str, X: np.ndarray, y: np.ndarray, Xv: np.ndarray, **kw: Any) -> np.ndarray:
    from recforge.models.ensemble._combiners import fit_gbdt, fit_ridge, predict_trees

    if kind == "ridge":
        w, b = fit_ridge(X, y, kw.get("reg", 1.0))
        return Xv @ w + b
    nodes, roots, base = fit_gbdt(X, y, n_trees=kw.get("n_trees", 200), learning_rate=kw.get("lr", 0.05),
                                  max_leaf_nodes=kw.get("leaves", 15), min_samples_leaf=kw.get("min_leaf", 100),
                                  l2_regularization=0.0, seed=0, threads=1)
    return predict_trees(nodes, roots, base, Xv)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", required=True, help="JSON list of member specs")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--procedures", default="holdout,kfold")
    ap.add_argument("--forward", default="", help="procedure:combiner to run forward selection with")
    ap.add_argument("--sets", default="[]", help="JSON list of member index lists to score with every combiner")
    ap.add_argument("--gbdt", default="[[200, 0.05, 15, 100], [400, 0.03, 15, 200], [300, 0.05, 31, 300]]",
                    help="JSON list of [n_trees, learning_rate, max_leaf_nodes, min_samples_leaf]")
    ap.add_argument("--cache", default="/tmp/recforge-blend-protocols")
    args = ap.parse_args(argv)
    specs = json.loads(args.candidates)
    T, V, pts = parts(args.folds)
    cache = Path(args.cache)
    yv = V.values.astype(np.float64)
    procs = args.procedures.split(",")
    # per procedure: (combiner-training matrix X, its targets y, support X, V's member matrix, V's support)
    pv = np.column_stack([predictions(s, "T", *pts["T"], cache) for s in specs])
    data: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for proc in procs:
        if proc == "holdout":
            fit_on, target = pts["holdout"]
            X = np.column_stack([predictions(s, "holdout", fit_on, target, cache) for s in specs])
            data[proc] = (X, target.values.astype(np.float64), support(fit_on, target, 1.0))
        else:
            Xs, ys, Ss = [], [], []
            for f in range(args.folds):
                fit_on, target = pts[f"fold{f}"]
                Xs.append(np.column_stack([predictions(s, f"fold{f}", fit_on, target, cache) for s in specs]))
                ys.append(target.values.astype(np.float64))
                Ss.append(support(fit_on, target, 1.0))
            data[proc] = (np.vstack(Xs), np.concatenate(ys), np.vstack(Ss))
    for s, j in zip(specs, range(len(specs)), strict=True):
        print(f"single {json.dumps(s)}: V RMSE {np.sqrt(np.mean((pv[:, j] - yv) ** 2)):.4f}")

    def score(proc: str, comb: str, cols: list[int], **kw: Any) -> float:
        X, y, S = data[proc]
        fit_frac = (len(y) / len(T)) if proc == "holdout" else (args.folds - 1) / args.folds
        frac = {"holdout": 0.9 * 1.0, "kfold": fit_frac}[proc]
        Xv = pv[:, cols]
        Xt = X[:, cols]
        if kw.pop("support", False):
            Xt = np.column_stack([Xt, S])
            Xv = np.column_stack([Xv, support(T, V, frac)])
        pred = combine(comb, Xt, y, Xv, **kw)
        return float(np.sqrt(np.mean((pred - yv) ** 2)))

    for cols in json.loads(args.sets) or [list(range(len(specs)))]:
        for proc in procs:
            print(f"{cols} {proc}: ridge {score(proc, 'ridge', cols):.4f}  ridge+support "
                  f"{score(proc, 'ridge', cols, support=True):.4f}", flush=True)
            for n_trees, lr, leaves, min_leaf in json.loads(args.gbdt):
                kw = dict(n_trees=n_trees, lr=lr, leaves=leaves, min_leaf=min_leaf)
                print(f"{cols} {proc}: gbdt({n_trees},{lr},{leaves},{min_leaf}) {score(proc, 'gbdt', cols, **kw):.4f}"
                      f"  +support {score(proc, 'gbdt', cols, support=True, **kw):.4f}", flush=True)
    if args.forward:
        proc, comb = args.forward.split(":")
        support_on = comb.endswith("+support")
        comb = comb.removesuffix("+support")
        chosen: list[int] = []
        while len(chosen) < len(specs):
            scores = {j: score(proc, comb, chosen + [j], support=support_on)
                      for j in range(len(specs)) if j not in chosen}
            j = min(scores, key=scores.__getitem__)
            chosen.append(j)
            print(f"forward {len(chosen)}: + {json.dumps(specs[j])}: {scores[j]:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
