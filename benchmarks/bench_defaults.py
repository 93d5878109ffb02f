"""Do rating-model defaults carry from ML-100K to another dataset? ``svdpp`` and ``knn-baseline``.

Protocol (never the test part): each dataset is split random 80/20 (seed 0) and only the 80% is
used; it is carved again at random 90/10 (seed 1) into fit and validation rows. Every setting is
fitted on the fit rows and scored by RMSE on the validation rows (unknown users/items: the model's
fallback; for scikit-surprise its own default for unknown entities). scikit-surprise's ``SVDpp`` and
``KNNBaseline`` run on the very same rows as the peers the issue names.

Datasets: ML-100K (``u.data``) and FilmTrust (``filmtrust/ratings.txt``: ``user item rating``,
space-separated, 0.5-4 stars; its 3 repeated pairs averaged). Run:
``nice python -m benchmarks.bench_defaults [--out FILE]`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recforge.data.interactions import Interactions

SVDPP_SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "k20 reg0.02 (surprise's)": {"embedding_size": 20, "epochs": 20, "learning_rate": 0.007, "reg": 0.02,
                                 "reg_bias": 0.02, "reg_implicit": 0.02},
    "k20": {"embedding_size": 20},
    "reg0.05 reg_y0.1": {"reg": 0.05, "reg_implicit": 0.1},
    "k20 reg0.05 reg_y0.1": {"embedding_size": 20, "reg": 0.05, "reg_implicit": 0.1},
}
KNN_SETTINGS: dict[str, dict[str, Any]] = {"prune=1000": {"prune": 1000}, "prune=None": {"prune": None},
                                           "prune=auto": {"prune": "auto"}}


def load(name: str) -> pd.DataFrame:
    """A rating log as ``user, item, rating``: ``ml-100k``, ``filmtrust``, or ``ml-100k-sampleP``
    (a random P % of ML-100K's rows, seed 0: a sparser log with ML-100K's rating scale)."""
    root = Path(os.environ.get("RECFORGE_DATA_DIR", "../shared/data"))
    if name.startswith("ml-100k-sample"):
        full = load("ml-100k")
        frac = int(name.removeprefix("ml-100k-sample")) / 100
        return full.sample(frac=frac, random_state=0).reset_index(drop=True)
    if name == "ml-100k":
        df = pd.read_csv(root / "ml-100k" / "u.data", sep="\t", names=["user", "item", "rating", "ts"])
        return df[["user", "item", "rating"]]
    df = pd.read_csv(root / "filmtrust" / "ratings.txt", sep=" ", names=["user", "item", "rating"])
    return df.groupby(["user", "item"], as_index=False)["rating"].mean()


def train_test(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The random 80/20 split (seed 0) whose 80 % :func:`carve` carves; its 20 % is scored once, last."""
    from recforge.splits import random_split

    inter = Interactions.from_dataframe(df, "user", "item", "rating")
    split = random_split(inter, test_fraction=0.2, seed=0)
    frame = lambda x: x.to_dataframe().rename(columns={"user_id": "user", "item_id": "item", "value": "rating"})  # noqa: E731
    return frame(split.train), frame(split.test)


def carve(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fit and validation rows: 90/10 of the train part of a random 80/20 split."""
    from recforge.splits import random_split

    inter = Interactions.from_dataframe(df, "user", "item", "rating")
    train = random_split(inter, test_fraction=0.2, seed=0).train
    parts = random_split(train, test_fraction=0.1, seed=1)
    frame = lambda x: x.to_dataframe().rename(columns={"user_id": "user", "item_id": "item", "value": "rating"})  # noqa: E731
    return frame(parts.train), frame(parts.test)


def rmse_recforge(name: str, config: dict[str, Any], fit: pd.DataFrame, val: pd.DataFrame) -> tuple[float, float]:
    from recforge.models.registry import make_model

    t0 = time.perf_counter()
    model = make_model(name, config).fit(Interactions.from_dataframe(fit, "user", "item", "rating"))
    pred = model.predict(val["user"].to_numpy(), val["item"].to_numpy(), fallback="mean")
    return float(np.sqrt(np.mean((pred - val["rating"].to_numpy()) ** 2))), time.perf_counter() - t0


def fitted_scale(name: str, config: dict[str, Any], fit: pd.DataFrame) -> float:
    """The ``reg_scale_`` a recforge model chose on ``fit`` (``reg_scale="auto"``)."""
    from recforge.models.registry import make_model

    return float(make_model(name, config).fit(Interactions.from_dataframe(fit, "user", "item", "rating")).reg_scale_)


def rmse_surprise(algo_name: str, fit: pd.DataFrame, val: pd.DataFrame, scale: tuple[float, float]) -> tuple[float, float]:
    import surprise

    t0 = time.perf_counter()
    data = surprise.Dataset.load_from_df(fit[["user", "item", "rating"]], surprise.Reader(rating_scale=scale))
    algo = (surprise.SVDpp(random_state=0) if algo_name == "SVDpp" else
            surprise.SVD(random_state=0) if algo_name == "SVD" else
            surprise.KNNBaseline(sim_options={"name": "pearson_baseline", "user_based": False}, verbose=False))
    algo.fit(data.build_full_trainset())
    pred = np.array([algo.predict(u, i).est for u, i in zip(val["user"], val["item"], strict=True)])
    return float(np.sqrt(np.mean((pred - val["rating"].to_numpy()) ** 2))), time.perf_counter() - t0


def svdpp_grid(datasets: list[str]) -> int:
    """RMSE of ``svdpp`` over ``reg`` x ``reg_implicit`` on each dataset's validation carve."""
    carves = {ds: carve(load(ds)) for ds in datasets}
    print("| reg | reg_implicit | " + " | ".join(f"{ds} val RMSE" for ds in datasets) + " |")
    print("|---:|---:|" + "---:|" * len(datasets))
    for reg in (0.05, 0.075, 0.1):
        for reg_y in (0.05, 0.1, 0.2, 0.4):
            cells = [rmse_recforge("svdpp", {"reg": reg, "reg_implicit": reg_y}, fit, val)[0]
                     for fit, val in carves.values()]
            print(f"| {reg} | {reg_y} | " + " | ".join(f"{c:.4f}" for c in cells) + " |", flush=True)
    return 0


#: Multipliers of the ML-100K-tuned penalties tried by ``--scale-grid`` (``reg``, ``reg_implicit``).
SCALES = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4)


def describe(fit: pd.DataFrame) -> dict[str, float]:
    """What a scaling rule may read off the fit rows: ratings per user and per item, density, rating std."""
    n_u, n_i = fit["user"].nunique(), fit["item"].nunique()
    return {"rows": len(fit), "per_user": len(fit) / n_u, "per_item": len(fit) / n_i,
            "density": len(fit) / (n_u * n_i), "std": float(fit["rating"].std())}


def scale_grid(datasets: list[str], models: list[str]) -> int:
    """Validation RMSE of ``svd`` / ``svdpp`` with every penalty (``reg``, ``reg_implicit``; not
    ``reg_bias``) times each of :data:`SCALES`, per dataset, plus the statistics a rule could use."""
    base = {"svd": {"reg": 0.1}, "svdpp": {"reg": 0.1, "reg_implicit": 0.4}}
    print("| dataset | rows | per user | per item | density | std | model | "
          + " | ".join(f"x{s}" for s in SCALES) + " | best |")
    print("|---|---:|---:|---:|---:|---:|---|" + "---:|" * (len(SCALES) + 1))
    for ds in datasets:
        fit, val = carve(load(ds))
        d = describe(fit)
        for model in models:
            cells = [rmse_recforge(model, {k: v * s for k, v in base[model].items()}, fit, val)[0] for s in SCALES]
            best = SCALES[int(np.argmin(cells))]
            print(f"| {ds} | {d['rows']:,} | {d['per_user']:.1f} | {d['per_item']:.1f} | {d['density']:.4f} | "
                  f"{d['std']:.3f} | {model} | " + " | ".join(f"{c:.4f}" for c in cells) + f" | x{best} |", flush=True)
    return 0


def rule_table(datasets: list[str], models: list[str]) -> int:
    """Before (``reg_scale=1``, the ML-100K-tuned penalties) and after (``reg_scale="auto"``) against
    scikit-surprise's defaults, per dataset: validation RMSE on the carve, then test RMSE of a fit
    on the whole 80 % train part (the 20 % test part scored once, after the rule was fixed)."""
    peer = {"svd": "SVD", "svdpp": "SVDpp"}
    print("| dataset | model | setting | scale used | val RMSE | test RMSE | fit s (test fit) |")
    print("|---|---|---|---:|---:|---:|---:|")
    for ds in datasets:
        df = load(ds)
        lim = (float(df["rating"].min()), float(df["rating"].max()))
        fit, val = carve(df)
        train, test = train_test(df)
        for model in models:
            for label, cfg in (("before: reg_scale=1", {"reg_scale": 1.0}), ("after: reg_scale=auto", {"reg_scale": "auto"})):
                v, _ = rmse_recforge(model, cfg, fit, val)
                t, secs = rmse_recforge(model, cfg, train, test)
                sc = fitted_scale(model, cfg, train)
                print(f"| {ds} | {model} | {label} | {sc:g} | {v:.4f} | {t:.4f} | {secs:.1f} |", flush=True)
            v, _ = rmse_surprise(peer[model], fit, val, lim)
            t, secs = rmse_surprise(peer[model], train, test, lim)
            print(f"| {ds} | surprise {peer[model]} | default | | {v:.4f} | {t:.4f} | {secs:.1f} |", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="write the markdown table here too")
    ap.add_argument("--datasets", default="ml-100k,filmtrust")
    ap.add_argument("--models", default="knn-baseline,svdpp")
    ap.add_argument("--svdpp-grid", action="store_true", help="only the svdpp reg x reg_implicit grid")
    ap.add_argument("--scale-grid", action="store_true", help="only the penalty-scale grid of svd and svdpp")
    ap.add_argument("--rule", action="store_true", help="reg_scale 1 vs auto vs surprise, validation and test")
    args, _ = ap.parse_known_args(argv)  # run_all passes its own options (--quick) to every benchmark
    if args.rule:
        return rule_table(args.datasets.split(","), args.models.split(","))
    if args.scale_grid:
        return scale_grid(args.datasets.split(","), args.models.split(","))
    if args.svdpp_grid:
        return svdpp_grid(args.datasets.split(","))
    rows = []
    for ds in args.datasets.split(","):
        df = load(ds)
        scale = (float(df["rating"].min()), float(df["rating"].max()))
        fit, val = carve(df)
        print(f"{ds}: {len(fit):,} fit rows, {len(val):,} validation rows, {df['item'].nunique():,} items", flush=True)
        for model in args.models.split(","):
            settings = KNN_SETTINGS if model == "knn-baseline" else SVDPP_SETTINGS
            for label, cfg in settings.items():
                r, s = rmse_recforge(model, cfg, fit, val)
                rows.append({"dataset": ds, "model": model, "setting": label, "val RMSE": r, "seconds": s})
                print(rows[-1], flush=True)
            peer = "KNNBaseline" if model == "knn-baseline" else "SVDpp"
            r, s = rmse_surprise(peer, fit, val, scale)
            rows.append({"dataset": ds, "model": f"surprise {peer}", "setting": "default", "val RMSE": r, "seconds": s})
            print(rows[-1], flush=True)
        r, s = rmse_recforge("svd", {}, fit, val)
        rows.append({"dataset": ds, "model": "svd", "setting": "default", "val RMSE": r, "seconds": s})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    md = ["| dataset | model | setting | val RMSE | seconds |", "|---|---|---|---:|---:|"]
    md += [f"| {r.dataset} | {r.model} | {r.setting} | {r._4:.4f} | {r.seconds:.1f} |" for r in table.itertuples()]
    text = "\n".join(md) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
