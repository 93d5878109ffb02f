"""CTR on Frappe's published split: recforge DeepFM / DCN-v2 side by side with FuxiCTR's DeepFM.

The split is ``frappe`` under ``ctr-holdout`` (:mod:`recforge.data.ctr.frappe`): the training part
rebuilt from the raw log (67,604 positives + 2 sampled negatives each, seed 0), the published
validation file (57,722 rows) for early stopping, the published test file (28,860 rows) scored
once. The peer reads the very same rows (raw values; its own ``FeatureProcessor`` builds its
vocabulary on the training rows) and trains with the same settings: embedding size 10,
400x400x400 ReLU MLP with batch norm and dropout 0.2, Adam at lr 1e-3, batch 4096, whole-table
embedding L2 0.05 (FuxiCTR's ``embedding_regularizer`` is the same ``lambda / 2 * ||E||^2`` as
recforge's ``embedding_reg``), no other L2, the learning rate x0.1 after every validation check
without improvement (FuxiCTR's ``reduce_lr_on_plateau``, recforge's ``lr_decay``), at most
``--epochs`` epochs with early stopping on validation AUC (patience 2, best epoch restored) on both
sides, CPU, the same torch thread count, one process: BARS' published Frappe_x1 DeepFM setting
(AUC 0.9839 over 5 runs with FuxiCTR 1.1 on a GPU). FuxiCTR's pip wheel ships its layers and training loop (``BaseModel``,
``FeatureEmbedding``, ``FactorizationMachine``, ``MLP_Block``) but not its ``model_zoo``; the
peer model below composes those layers the way FuxiCTR's ``model_zoo/DeepFM`` does (FM term on the
field embeddings plus an MLP on their concatenation), so the peer's layers, initialisation,
regularizer, data loader and training loop (including its learning-rate reduction on a plateau)
are FuxiCTR's own.

Seconds per epoch include the per-epoch validation pass on both sides (median over the epochs run).

Rows of recforge models also give the AUC of the test positives of apps with no training positive
against all test negatives (``cold-app AUC``); ``NAME+meta`` trains on the split with the app
metadata of ``meta.csv`` (category, downloads, developer, language, price, rating) as item fields.

Run ``python -m benchmarks.bench_frappe [--epochs 30] [--threads 1] [--batch 4096] [--seeds 0,1,2]
[--models deepfm,dcnv2,deepfm+meta] [--no-peer] [--name NAME]``; writes ``results/NAME.{json,md}``
(default ``frappe_published``).
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

FIELDS = ("user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather", "country", "city")


def _shared(batch: int, epochs: int, embedding_reg: float = 0.05) -> dict[str, Any]:
    """BARS' Frappe_x1 DeepFM setting (configs/frappe/deepfm.toml), in recforge's parameter names."""
    return {"embedding_size": 10, "hidden": (400, 400, 400), "dropout": 0.2, "batch_norm": True,
            "learning_rate": 1e-3, "batch_size": batch, "embedding_reg": embedding_reg, "reg": 0.0,
            "lr_decay": 0.1, "epochs": epochs, "dense_init": "xavier"}


def cold_app_positives(split: Any) -> np.ndarray:
    """Test rows that are positives of apps with no positive among the training rows."""
    item = split.train.field_names.index("item")
    slot = int(np.flatnonzero(split.train.slot_fields == item)[0])
    warm = np.unique(split.train.index[split.train.labels == 1, slot])
    return (split.test.labels == 1) & ~np.isin(split.test.index[:, slot], warm)


def run_recforge(name: str, split: Any, params: dict[str, Any], threads: int, patience: int,
                 seed: int) -> dict[str, Any]:
    """Fit ``name`` (``+meta``: on the split with the app metadata fields) and score the test rows.

    ``cold-app AUC``: the test positives of apps without a training positive against all test negatives.
    """
    from dataclasses import fields

    from recforge import metrics as M
    from recforge.config import FitOptions
    from recforge.models.registry import get_model_class, make_model

    model_name = name.removesuffix("+meta")
    known = {f.name for f in fields(get_model_class(model_name).config_class)}
    params = {k: v for k, v in params.items() if k in known}
    stamps: list[float] = []
    model = make_model(model_name, params)
    opts = FitOptions(seed=seed, threads=threads, validation=split.valid, patience=patience, verbose=True,
                      epoch_callback=lambda epoch, m: stamps.append(time.perf_counter()))
    t0 = time.perf_counter()
    model.fit(split.train, opts)
    fit_s = time.perf_counter() - t0
    p = model.predict_proba(split.test)
    y = split.test.labels
    per_epoch = np.diff([t0, *stamps])
    cold = cold_app_positives(split)
    neg = y == 0
    return {"toolkit": "recforge", "model": name, "AUC": M.roc_auc(y, p), "LogLoss": M.log_loss(y, p),
            "valid AUC": float(max(model.history_.get("val_auc", [float("nan")]))),
            "cold-app AUC": M.roc_auc(np.r_[np.ones(cold.sum()), np.zeros(neg.sum())], np.r_[p[cold], p[neg]]),
            "cold-app positives": int(cold.sum()),
            "epochs (best)": f"{model.epochs_run_} ({(model.best_epoch_ or 0) + 1})",
            "s/epoch": float(statistics.median(per_epoch)), "fit s": fit_s,
            "config": json.dumps({k: v for k, v in params.items()})}


def run_fuxictr(frames: dict[str, Any], params: dict[str, Any], threads: int, patience: int,
                seed: int) -> dict[str, Any]:
    import logging

    import polars as pl
    import torch
    from fuxictr.features import FeatureMap
    from fuxictr.metrics import evaluate_metrics
    from fuxictr.preprocess import FeatureProcessor
    from fuxictr.pytorch.dataloaders import RankDataLoader
    from fuxictr.pytorch.layers import FactorizationMachine, FeatureEmbedding, MLP_Block
    from fuxictr.pytorch.models import BaseModel
    from fuxictr.pytorch.torch_utils import seed_everything

    logging.getLogger().setLevel(logging.WARNING)

    class PeerDeepFM(BaseModel):
        """FuxiCTR's DeepFM: its FeatureEmbedding, FactorizationMachine and MLP_Block, its BaseModel loop."""

        def __init__(self, feature_map: Any, **kw: Any) -> None:
            super().__init__(feature_map, model_id="DeepFM", gpu=-1,
                             embedding_regularizer=kw["embedding_regularizer"], net_regularizer=0, **kw["base"])
            self.embedding_layer = FeatureEmbedding(feature_map, kw["embedding_dim"])
            self.fm = FactorizationMachine(feature_map)
            self.mlp = MLP_Block(input_dim=feature_map.sum_emb_out_dim(), output_dim=1,
                                 hidden_units=kw["hidden_units"], hidden_activations="ReLU", output_activation=None,
                                 dropout_rates=kw["net_dropout"], batch_norm=kw["batch_norm"])
            self.compile("adam", "binary_crossentropy", kw["learning_rate"])
            self.reset_parameters()
            self.model_to_device()
            self.epoch_stamps: list[float] = []

        def forward(self, inputs: Any) -> dict[str, Any]:
            x = self.get_inputs(inputs)
            emb = self.embedding_layer(x)
            y = self.fm(x, emb) + self.mlp(emb.flatten(start_dim=1))
            return {"y_pred": self.output_activation(y)}

        def train_epoch(self, data_generator: Any) -> None:
            super().train_epoch(data_generator)  # ends with the epoch's validation pass
            self.epoch_stamps.append(time.perf_counter())

    torch.set_num_threads(threads)
    seed_everything(seed)
    with tempfile.TemporaryDirectory() as root:
        fp = FeatureProcessor(feature_cols=[{"name": list(FIELDS), "active": True, "dtype": "str",
                                             "type": "categorical"}],
                              label_col={"name": "label", "dtype": "float"}, dataset_id="frappe_published",
                              data_root=root)
        fp.fit(pl.from_pandas(frames["train"][[*FIELDS, "label"]].astype({f: str for f in FIELDS})).lazy(),
               min_categr_count=1)
        paths = {}
        for part, df in frames.items():
            batch = {f: df[f].astype(str).to_numpy(dtype=object) for f in FIELDS}
            batch = fp.transform(batch)
            arrays = {f: np.asarray(batch[f]) for f in FIELDS}
            arrays["label"] = df["label"].to_numpy(dtype=np.float32)
            paths[part] = str(Path(root) / f"{part}.npz")
            np.savez(paths[part], **arrays)
        fmap = FeatureMap("frappe_published", str(Path(root) / "frappe_published"))
        fmap.load(str(Path(root) / "frappe_published" / "feature_map.json"), {"embedding_dim": 10})
        base = {"model_root": root, "metrics": ["AUC", "logloss"], "verbose": 0, "early_stop_patience": patience,
                "monitor": "AUC", "monitor_mode": "max"}
        model = PeerDeepFM(fmap, base=base, embedding_dim=params["embedding_size"],
                           hidden_units=list(params["hidden"]), net_dropout=params["dropout"],
                           batch_norm=params["batch_norm"], learning_rate=params["learning_rate"],
                           embedding_regularizer=params["embedding_reg"])
        train_gen, valid_gen = RankDataLoader(fmap, stage="train", train_data=paths["train"],
                                              valid_data=paths["valid"], batch_size=params["batch_size"],
                                              shuffle=True, data_format="npz", num_workers=0)
        test_gen = RankDataLoader(fmap, stage="test", test_data=paths["test"], batch_size=params["batch_size"],
                                  shuffle=False, data_format="npz", num_workers=0)
        t0 = time.perf_counter()
        model.fit(train_gen, epochs=params["epochs"], validation_data=valid_gen)
        fit_s = time.perf_counter() - t0
        valid = model.evaluate(valid_gen)
        p = model.predict(test_gen)
    y = frames["test"]["label"].to_numpy(dtype=np.float64)
    test = evaluate_metrics(y, p, ["AUC", "logloss"])
    per_epoch = np.diff([t0, *model.epoch_stamps])
    return {"toolkit": "FuxiCTR " + _version("fuxictr"), "model": "deepfm", "AUC": float(test["AUC"]),
            "LogLoss": float(test["logloss"]), "valid AUC": float(valid["AUC"]),
            "epochs (best)": f"{len(model.epoch_stamps)}", "s/epoch": float(statistics.median(per_epoch)),
            "fit s": fit_s, "config": json.dumps({**params, "hidden": list(params["hidden"])})}


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_frappe", description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--embedding-reg", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", default="",
                    help="comma-separated seeds (each: its own negative sample, initialisation and batch order, the "
                         "same for both toolkits); adds the mean and standard deviation over them")
    ap.add_argument("--models", default="deepfm",
                    help="recforge models, comma-separated (deepfm, dcnv2, fm; NAME+meta: with the app metadata fields)")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--name", default="frappe_published")
    args = ap.parse_args(argv)
    command = " ".join(sys.argv[1:] if argv is None else argv)

    import torch

    from recforge.data import load
    from recforge.data.ctr import ctr_splits
    from recforge.data.ctr.frappe import rebuild_frappe

    torch.set_num_threads(args.threads)
    ds = load("frappe")
    seeds = [int(x) for x in args.seeds.split(",") if x] or [args.seed]
    shared = _shared(args.batch, args.epochs, args.embedding_reg)
    rows = []
    for seed in seeds:
        split = ctr_splits(ds, seed=seed)
        reb = rebuild_frappe(ds.tables["log"], ds.tables["validation"], ds.tables["test"], seed=seed)
        frames = {"train": reb.train, "valid": reb.valid, "test": reb.test}
        assert len(reb.train) == len(split.train) and len(reb.test) == len(split.test)
        print(split.description, flush=True)
        if not args.no_peer:
            rows.append(run_fuxictr(frames, shared, args.threads, args.patience, seed))
            print(rows[-1], flush=True)
        meta = None
        for name in [m for m in args.models.split(",") if m]:
            params = dict(shared)
            if name.endswith("+meta") and meta is None:
                meta = ctr_splits(ds, seed=seed, item_features=True)
            rows.append(run_recforge(name, meta if name.endswith("+meta") else split, params, args.threads,
                                     args.patience, seed))
            print(rows[-1], flush=True)
        if len(seeds) > 1:
            for r in rows:
                r.setdefault("seed", seed)
    seed_txt = f"seed {seeds[0]}" if len(seeds) == 1 else "seeds " + ", ".join(map(str, seeds))
    described = split.description if len(seeds) == 1 else split.description.replace(f"seed {seeds[-1]}", "each run's seed")
    head = (f"Frappe, published split (`frappe` / `ctr-holdout`, {seed_txt}): {described}. "
            f"CPU, {args.threads} torch thread(s), at most {args.epochs} epochs, early stopping on validation AUC "
            f"(patience {args.patience}, best epoch restored), batch {args.batch}. Machine: {machine()}; shared "
            "with other jobs, so seconds are noisy: compare the rows of one run. "
            f"Command: `python -m benchmarks.bench_frappe {command}`.")
    table = md_table(rows)
    if len(seeds) > 1:
        table = md_table(summarise(rows)) + "\n\nPer seed:\n\n" + table
    (RESULTS_DIR / f"{args.name}.json").write_text(json.dumps({"note": head, "rows": rows}, indent=1))
    write_fragment(args.name, head + "\n\n" + table)
    return 0


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over the seeds of each (toolkit, model)."""
    out = []
    for key in dict.fromkeys((r["toolkit"], r["model"]) for r in rows):
        mine = [r for r in rows if (r["toolkit"], r["model"]) == key]
        row: dict[str, Any] = {"toolkit": key[0], "model": key[1], "seeds": len(mine)}
        for col in ("AUC", "LogLoss", "s/epoch", "fit s"):
            vals = [float(r[col]) for r in mine]
            row[f"{col} mean"] = statistics.fmean(vals)
            row[f"{col} sd"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out.append(row)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
