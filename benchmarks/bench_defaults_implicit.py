"""Do implicit-feedback defaults carry across datasets? ``ials``, ``bpr``, ``item-knn-implicit``, ``ease``.

Validation carves only, never a test part (issue #14: choose defaults without looking at any
test set). Each dataset's held-out test part is dropped first; on what is left, one interaction
per user goes to validation and the rest is fitted:

- ``citeulike-a`` (``users.dat``, no timestamps): leave-one-out with validation (seed 0): a random
  item per user is the test part (dropped), another the validation item.
- ``amazon-beauty`` (S3-Rec's ``Beauty.txt``, items in time order): the last item is the test
  part (dropped, as S3-Rec does), the second-last the validation item.
- ``ml-100k`` (``u.data`` as implicit feedback, every rating a positive): as amazon-beauty, by
  timestamp (the set the defaults were first chosen on).
- ``gowalla`` (NGCF's ``train.txt``; ``test.txt`` is the test part, never read): a random item per
  user of ``train.txt`` (seed 0) is the validation item.

Metrics: HR@10 and NDCG@10 of the validation item over the full catalogue minus the user's fitted
items, computed by one function from every model's top-10 lists (recforge and implicit alike).
Peers: implicit's ``AlternatingLeastSquares``, ``BayesianPersonalizedRanking``,
``CosineRecommender`` and ``BM25Recommender`` with their own defaults, fitted on the same rows
(binary values), same thread count. EASE has no peer in implicit, and its Gowalla row is skipped
(41k items; measured elsewhere). Each setting is one fit (seed 0); the machine is shared.

Run: ``nice python -m benchmarks.bench_defaults_implicit [--datasets ...] [--models ...] [--out FILE]``
(``--settings ials:alpha 40,...`` keeps only the named non-default settings: the Gowalla run).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.splits import leave_one_out

THREADS = 2
K = 10

#: Settings per recforge model: "default" first, then one-at-a-time moves of the main knobs.
SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "ials": {"default": {}, "reg 3": {"reg": 3.0}, "reg 300": {"reg": 300.0}, "alpha 1": {"alpha": 1.0},
             "alpha 40": {"alpha": 40.0}, "k128": {"embedding_size": 128}},
    "bpr": {"default": {}, "lr 0.05": {"learning_rate": 0.05}, "reg 0.001": {"reg": 0.001},
            "k128": {"embedding_size": 128}},
    "item-knn-implicit": {"default": {}, "k=20": {"n_neighbors": 20}, "k=400": {"n_neighbors": 400},
                          "bm25": {"weighting": "bm25"}, "tfidf": {"weighting": "tfidf"}},
    "ease": {"default": {}, "reg 100": {"reg": 100.0}, "reg 2500": {"reg": 2500.0}},
}
#: implicit's model for each recforge model (constructed with implicit's defaults).
PEERS: dict[str, list[str]] = {"ials": ["AlternatingLeastSquares"], "bpr": ["BayesianPersonalizedRanking"],
                               "item-knn-implicit": ["CosineRecommender", "BM25Recommender"], "ease": []}


def _root() -> Path:
    return Path(os.environ.get("RECFORGE_DATA_DIR", "../shared/data"))


def _lists(path: Path, one_based_first: bool = False) -> pd.DataFrame:
    """``u i i ...`` lines (citeulike: ``n i i ...`` with the line number as the user) as rows with
    the position of each item in its line (a time order where the file has one)."""
    users, items, pos = [], [], []
    with open(path) as fh:
        for line_no, line in enumerate(fh):
            parts = line.split()
            if not parts:
                continue
            user = line_no if one_based_first else parts[0]
            its = parts[1:]
            users += [user] * len(its)
            items += its
            pos += list(range(len(its)))
    return pd.DataFrame({"user": users, "item": items, "pos": pos})


def carve(name: str) -> tuple[Interactions, Interactions]:
    """(fit rows, validation rows) of a dataset, its test part dropped (module docstring)."""
    root = _root()
    if name == "citeulike-a":
        df = _lists(root / "citeulike-a" / "users.dat", one_based_first=True)  # first field is the count
        inter = Interactions.from_dataframe(df, "user", "item", name="citeulike-a")
        split = leave_one_out(inter, seed=0, valid=True)
        return split.train, split.valid
    if name == "amazon-beauty":
        df = _lists(root / "amazon-beauty-s3rec" / "Beauty.txt")
        inter = Interactions.from_dataframe(df, "user", "item", timestamp="pos", name="amazon-beauty")
        split = leave_one_out(inter, valid=True)  # latest = test (dropped), second-latest = validation
        return split.train, split.valid
    if name == "ml-100k":  # the set the defaults were first chosen on
        df = pd.read_csv(root / "ml-100k" / "u.data", sep="\t", names=["user", "item", "rating", "ts"])
        inter = Interactions.from_dataframe(df, "user", "item", timestamp="ts", name="ml-100k").to_implicit()
        split = leave_one_out(inter, valid=True)
        return split.train, split.valid
    if name == "gowalla":
        df = _lists(root / "gowalla" / "train.txt")
        inter = Interactions.from_dataframe(df, "user", "item", name="gowalla-train")
        split = leave_one_out(inter, seed=0)
        return split.train, split.test
    raise SystemExit(f"unknown dataset {name!r}")


def metrics(top: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """HR@K and NDCG@K of one held-out item per row of ``top`` (item indices, -1 padding)."""
    hit = top[:, :K] == truth[:, None]
    rank = np.argmax(hit, axis=1)
    found = hit.any(axis=1)
    return {"HR@10": float(found.mean()), "NDCG@10": float(np.where(found, 1.0 / np.log2(rank + 2), 0.0).mean())}


def _truth(fit: Interactions, val: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """Validation users with fitted rows (indices) and their held-out item (index)."""
    known = fit.user_counts() > 0
    keep = known[val.user_idx]
    return val.user_idx[keep].astype(np.int64), val.item_idx[keep].astype(np.int64)


def run_ours(model_name: str, cfg: dict[str, Any], fit: Interactions, val: Interactions) -> dict[str, float]:
    from recforge.evaluation.protocols import full_ranking
    from recforge.models.registry import make_model

    t0 = time.perf_counter()
    model = make_model(model_name, cfg).fit(fit, FitOptions(seed=0, threads=THREADS))
    fit_s = time.perf_counter() - t0
    users, items = _truth(fit, val)
    test = val.subset(np.isin(val.user_idx, users))
    _, recs, _ = full_ranking(model, test, K, ("HR",), users=users)  # rows in the order of `users`
    return {**metrics(recs, items), "fit s": fit_s}


def run_peer(peer: str, fit: Interactions, val: Interactions) -> dict[str, float]:
    import implicit
    from threadpoolctl import threadpool_limits

    X = fit.csr().astype(np.float32)
    X.data[:] = 1.0
    cls = {"AlternatingLeastSquares": lambda: implicit.cpu.als.AlternatingLeastSquares(num_threads=THREADS,
                                                                                         random_state=0),
           "BayesianPersonalizedRanking": lambda: implicit.cpu.bpr.BayesianPersonalizedRanking(
               num_threads=THREADS, random_state=0),
           "CosineRecommender": lambda: implicit.nearest_neighbours.CosineRecommender(num_threads=THREADS),
           "BM25Recommender": lambda: implicit.nearest_neighbours.BM25Recommender(num_threads=THREADS)}[peer]
    model = cls()
    with threadpool_limits(limits=1, user_api="blas"):
        t0 = time.perf_counter()
        model.fit(X, show_progress=False)
        fit_s = time.perf_counter() - t0
    users, items = _truth(fit, val)
    top = np.full((len(users), K), -1, dtype=np.int64)
    for lo in range(0, len(users), 4096):
        u = users[lo:lo + 4096]
        ids, _ = model.recommend(u, X[u], N=K, filter_already_liked_items=True)
        top[lo:lo + len(u), :ids.shape[1]] = ids
    return {**metrics(top, items), "fit s": fit_s}


def table(paths: list[Path]) -> str:
    """The markdown summary of rows written with ``--out``: per dataset and model, the default,
    the best setting tried (by validation NDCG@10) and the gap, and implicit's defaults."""
    rows = [json.loads(line) for p in paths for line in p.read_text().splitlines() if line.strip()]
    df = pd.DataFrame(rows)
    out = ["| dataset | model | default HR@10 / NDCG@10 | best setting tried | its HR@10 / NDCG@10 | NDCG gap | "
           "implicit's default HR@10 / NDCG@10 |", "|---|---|---|---|---|---:|---|"]
    peer_of = {p: m for m, ps in PEERS.items() for p in ps}
    for ds in dict.fromkeys(df["dataset"]):
        part = df[df["dataset"] == ds]
        ours = part[part["toolkit"] == "recforge"]
        for model in dict.fromkeys(ours["model"]):
            mine = ours[ours["model"] == model]
            base = mine[mine["setting"] == "default"].iloc[0]
            best = mine.loc[mine["NDCG@10"].idxmax()]
            peers = part[(part["toolkit"] == "implicit") & part["model"].map(lambda m: peer_of.get(m) == model)]
            peer_txt = "; ".join(f"{r.model} {r._5:.4f} / {r._6:.4f}" for r in peers.itertuples()) or "(none)"
            out.append(f"| {ds} | {model} | {base['HR@10']:.4f} / {base['NDCG@10']:.4f} | {best['setting']} | "
                       f"{best['HR@10']:.4f} / {best['NDCG@10']:.4f} | {best['NDCG@10'] - base['NDCG@10']:.4f} | "
                       f"{peer_txt} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="citeulike-a,amazon-beauty,gowalla")
    ap.add_argument("--models", default="ials,bpr,item-knn-implicit,ease")
    ap.add_argument("--out", type=Path, default=None, help="append each row as JSON to this file")
    ap.add_argument("--settings", default=None,
                    help="keep only these MODEL:LABEL settings (comma-separated; the defaults and peers always run)")
    ap.add_argument("--table", type=Path, nargs="*", default=None, help="only summarise these --out files")
    args, _ = ap.parse_known_args(argv)  # run_all passes its own options (--quick) to every benchmark
    if args.table:
        print(table(args.table), end="")
        return 0
    keep = set(args.settings.split(",")) if args.settings else None
    for ds in args.datasets.split(","):
        fit, val = carve(ds)
        print(f"# {ds}: {len(fit):,} fit rows, {len(val):,} validation rows, {fit.n_users:,} users, "
              f"{fit.n_items:,} items", flush=True)
        for model in args.models.split(","):
            if model == "ease" and ds == "gowalla":
                continue
            rows = [("recforge", model, label, lambda c=cfg: run_ours(model, c, fit, val))
                    for label, cfg in SETTINGS[model].items()
                    if label == "default" or keep is None or f"{model}:{label}" in keep]
            rows += [("implicit", peer, "default", lambda p=peer: run_peer(p, fit, val)) for peer in PEERS[model]]
            for side, name, label, fn in rows:
                res = {"dataset": ds, "toolkit": side, "model": name, "setting": label, **fn()}
                print(json.dumps(res), flush=True)
                if args.out:
                    with open(args.out, "a") as fh:
                        fh.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
