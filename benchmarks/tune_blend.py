"""Choose the blend's members on the validation carve of ML-100K's u1.base (u1.test is never read).

The carve is the blend's own (:meth:`RatingBlend._carve`: a random 10% of u1.base, seed 0). Each
candidate member is fitted on the other 90% and predicts the carve's ratings; its predictions are
cached (``--cache``, one ``.npz`` per member spec) so that members are fitted once. A set of members
is scored by the 5-fold cross-validated RMSE of the ridge combiner over the carve (the combiner
learns on 4/5 of the carve's ratings, is scored on the last 1/5). ``--forward`` runs forward
selection from the candidates; ``--sets`` scores given index sets.

    python -m benchmarks.tune_blend --candidates '[{"model": "autorec"}, {"model": "glocal-k"}]' --forward
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def carve() -> tuple[Any, Any]:
    """(carve-train, carve-valid) of u1.base, exactly as the blend carves it (random 10%, seed 0)."""
    from recforge.data import load
    from recforge.evaluation.protocols import get_protocol
    from recforge.models.ensemble.blend import RatingBlend

    ds = load("ml-100k")
    (split,) = list(get_protocol("rating-u1").splits(ds))[:1]
    blend = RatingBlend()
    return blend._carve(split.train, 0)


def member_predictions(spec: dict[str, Any], train: Any, valid: Any, cache: Path, threads: int) -> np.ndarray:
    """The member's predictions of the carve's ratings (cached by spec)."""
    from recforge.config import FitOptions
    from recforge.models._members import fit_member

    key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    path = cache / f"{key}.npz"
    if path.exists():
        return np.load(path)["pred"]
    params = {k: v for k, v in spec.items() if k != "model"}
    t0 = time.perf_counter()
    y = valid.values.astype(np.float64)
    vu, vi = valid.users.ids[valid.user_idx], valid.items.ids[valid.item_idx]

    def per_epoch(epoch: int, model: Any) -> None:  # GLocal-K: the carve RMSE after every epoch
        print(f"  epoch {epoch}: carve RMSE {np.sqrt(np.mean((model.predict(vu, vi, fallback='mean') - y) ** 2)):.4f}",
              flush=True)

    opts = FitOptions(seed=0, threads=threads, epoch_callback=per_epoch if spec["model"] == "glocal-k" else None)
    model = fit_member(spec["model"], params, train, opts)
    pred = model.predict(valid.users.ids[valid.user_idx], valid.items.ids[valid.item_idx], fallback="mean")
    secs = time.perf_counter() - t0
    print(f"member {json.dumps(spec)}: carve RMSE {np.sqrt(np.mean((pred - y) ** 2)):.4f}, {secs:.0f} s", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, pred=pred, spec=json.dumps(spec), seconds=secs)
    return pred


def cv_rmse(X: np.ndarray, y: np.ndarray, reg: float = 1.0, folds: int = 5) -> float:
    """5-fold cross-validated RMSE of the ridge combiner over the carve's ratings."""
    from recforge.models.ensemble._combiners import fit_ridge

    fold = np.random.default_rng(0).permutation(len(y)) % folds
    err = np.empty(len(y))
    for f in range(folds):
        w, b = fit_ridge(X[fold != f], y[fold != f], reg)
        err[fold == f] = X[fold == f] @ w + b - y[fold == f]
    return float(np.sqrt(np.mean(err**2)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", required=True, help="JSON list of member specs")
    ap.add_argument("--forward", action="store_true", help="forward selection over the candidates")
    ap.add_argument("--sets", default="[]", help="JSON list of index lists to score")
    ap.add_argument("--cache", default="/tmp/recforge-blend-carve")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    specs = json.loads(args.candidates)
    train, valid = carve()
    y = valid.values.astype(np.float64)
    preds = [member_predictions(s, train, valid, Path(args.cache), args.threads) for s in specs]
    for s, p in zip(specs, preds, strict=True):
        print(f"single {json.dumps(s)}: carve RMSE {np.sqrt(np.mean((p - y) ** 2)):.4f}, "
              f"ridge CV {cv_rmse(p[:, None], y):.4f}")
    for idx in json.loads(args.sets):
        print(f"set {idx}: ridge CV {cv_rmse(np.column_stack([preds[i] for i in idx]), y):.4f}")
    if args.forward:
        chosen: list[int] = []
        best = np.inf
        while len(chosen) < len(specs):
            scores = {j: cv_rmse(np.column_stack([preds[i] for i in chosen + [j]]), y)
                      for j in range(len(specs)) if j not in chosen}
            j = min(scores, key=scores.__getitem__)
            print(f"step {len(chosen) + 1}: + {json.dumps(specs[j])}: {scores[j]:.4f} (was {best:.4f})")
            chosen.append(j)
            best = min(best, scores[j])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
