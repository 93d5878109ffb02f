"""Named evaluation protocols: every number recforge reports says which one made it.

==================  =================================================================  ==================
name                what                                                               metrics
==================  =================================================================  ==================
``rating-kfold5``   5-fold CV over all ratings, shuffled, seed 0 (scikit-surprise's)   RMSE, MAE
``rating-u1``       ML-100K's predefined u1 split (``rating-u1u5``: all five folds)    RMSE, MAE
``loo-full``        each user's latest interaction held out; rank all unseen items    HR, NDCG, MRR @k
``loo-sampled``     the held-out item against 99 sampled unseen items (NCF protocol)   HR@10, NDCG@10
``ratio-full``      random 80/20 over interactions, seed 0; rank all unseen items      P/R/NDCG/MAP @k, ...
``given-split``     the dataset's given train/test split: published (Gowalla), or     Recall@20, NDCG@20
                    ``--train``/``--test`` files, ``--split-column``, ``--split-date``  (RMSE, MAE for
                                                                                       rating models)
``cold-start``      20% of users held out, revealing 0/1/5/10 ratings as onboarding    HR, NDCG @10, R@20
==================  =================================================================  ==================

Ranking protocols exclude each user's training items and rank in blocks of users so memory stays
bounded (no dense users x items matrix is ever built); ranking models learn from implicit feedback
(``Recommender.fit`` applies that rule), rating models from the ratings.

A :class:`Protocol` owns its whole procedure: :meth:`Protocol.splits` says which split(s) it
evaluates on, :meth:`Protocol.score` scores a fitted model on one split, and :meth:`Protocol.run`
fits a fresh clone of the model per split and assembles the result table.
:func:`default_protocol` (:meth:`Protocol.default_for`) is the one answer to "which protocol does a
task get when none is named". ``ctr-holdout`` and ``cold-start`` live in their own modules, which
register themselves when first asked for by name.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recforge import metrics as M
from recforge._arrays import check_k
from recforge.config import FitOptions
from recforge.data.datasets import Dataset
from recforge.data.sampling import sample_unseen
from recforge.data.source import DataSource, require_ratings
from recforge.data.interactions import Interactions
from recforge.data.split import Split
from recforge.errors import ConfigError, DataError
from recforge.evaluation.results import ID_COLUMNS, EvaluationResult
from recforge.models.base import Estimator, Recommender
from recforge.topk import clamp_k
from recforge.training.progress import RichProgress, reporting
from recforge.training.progress import current as current_progress

#: ``on_fit(fitted_model, split, fold)``: called after each fold's fit.
OnFit = Callable[[Any, Any, int], None]
#: ``prepare(split, fold, options) -> (training data, options)``: called before each fold's fit.
Prepare = Callable[[Any, int, FitOptions], tuple[Any, FitOptions]]

#: The protocol a task gets when none is named: the one answer for the CLI, experiments and templates.
#: Each works on any interaction log (rating-u1 needs MovieLens' predefined split, so it is never a default).
DEFAULT_PROTOCOL: dict[str, str] = {"rating": "rating-kfold5", "ranking": "loo-full", "sequence": "loo-full",
                                    "ctr": "ctr-holdout"}


def default_protocol(task: str) -> str:
    """The default protocol name of a model task (``rating``, ``ranking``, ``sequence``, ``ctr``)."""
    if task not in DEFAULT_PROTOCOL:
        raise ConfigError(f"unknown task {task!r}; tasks: {', '.join(DEFAULT_PROTOCOL)}")
    return DEFAULT_PROTOCOL[task]


@dataclass(frozen=True)
class Scored:
    """What :meth:`Protocol.score` measured on one split.

    Attributes:
        metrics: Metric means, in column order.
        per_user: Per-user (or per-row) metric values, keyed by metric name.
        seconds: Time spent scoring (the ``predict_seconds`` column).
        counts: Columns after the timings (``n_eval``, ``n_fallback``, ...), in column order.
    """

    metrics: dict[str, float]
    per_user: dict[str, np.ndarray]
    seconds: float
    counts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Protocol:
    """A named, reproducible evaluation procedure: its splits, its scoring and its defaults.

    Subclasses give :meth:`splits` and :meth:`score`; the base :meth:`run` fits a fresh clone of
    the model on each split's training data and scores it.

    Attributes:
        name: The registry name (``"loo-full"``).
        task: The task of the models it evaluates (``"rating"``, ``"ranking"``, ``"ctr"``).
        description: One line for listings.
        default_k: List length when none is given (ranking protocols).
    """

    name: str
    task: str
    description: str
    default_k: int = 10

    # ------------------------------------------------------------------ what subclasses give
    def splits(self, dataset: Dataset | Interactions, seed: int = 0) -> list[Any]:
        """The split(s) the protocol evaluates on, in fold order (``seed`` drives random ones)."""
        raise NotImplementedError

    def score(self, fitted: Any, split: Any, *, k: int, dataset: Any, seed: int) -> Scored:
        """Score a model fitted on ``split.train`` against ``split.test`` (``dataset``: where the split is from)."""
        raise NotImplementedError

    def check_model(self, model: Any) -> None:
        """Raise :class:`ConfigError` when the protocol cannot evaluate ``model``."""

    def check_data(self, model: Any, train: Any) -> None:
        """Raise :class:`DataError` when ``model`` cannot learn from ``train``: a rating model
        needs ratings that vary (on implicit data or constant values it would score a
        meaningless perfect RMSE)."""
        if getattr(model, "feedback", None) == "explicit" and isinstance(train, Interactions):
            require_ratings(train, f"{model.name} (a rating model)")

    def fit_options(self, options: FitOptions, split: Any) -> FitOptions:
        """The options one fold is fitted with: the split's validation rows, when it has some."""
        if getattr(split, "valid", None) is not None and options.validation is None:
            return options.replace(validation=split.valid)
        return options

    def notes(self, seed: int, splits: list[Any]) -> list[str]:
        """Notes for the result (e.g. the seed of a random split)."""
        return []

    def id_columns(self, split: Any, fold: int) -> dict[str, Any]:
        """The identifying columns of one fold's row after protocol/dataset/model."""
        return {"fold": fold}

    def row(self, ids: dict[str, Any], scored: Scored, fit_seconds: float, fitted: Any,
            split: Any) -> dict[str, Any]:
        """One fold's table row (``fitted`` and ``split`` for protocols that report more)."""
        return {**ids, **scored.metrics, "fit_seconds": fit_seconds, "predict_seconds": scored.seconds,
                **scored.counts}

    def table(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """The result table: the fold rows and their mean."""
        return _rows_with_mean(rows)

    @staticmethod
    def default_for(task: str) -> Protocol:
        """The protocol a task gets when none is named (see :data:`DEFAULT_PROTOCOL`)."""
        return get_protocol(default_protocol(task))

    # ------------------------------------------------------------------ the procedure
    def run(self, model: Any, dataset: Dataset | Interactions, *, k: int | None = None,
            options: FitOptions | None = None, label: str | None = None, progress: bool = False,
            on_fit: OnFit | None = None, prepare: Prepare | None = None) -> EvaluationResult:
        """Fit a fresh clone of ``model`` on every split of :meth:`splits` and score it (see :func:`evaluate`)."""
        self.check_model(model)  # before the splits are made, which may take a while
        options = options or FitOptions()
        ds = as_dataset(dataset)
        seed = 0 if options.seed is None else int(options.seed)
        return self.run_splits(model, self.splits(ds, seed), ds, k=k, options=options, label=label,
                               progress=progress, on_fit=on_fit, prepare=prepare)

    def run_splits(self, model: Any, splits: list[Any], dataset: Dataset | str, *, k: int | None = None,
                   options: FitOptions | None = None, label: str | None = None, progress: bool = False,
                   on_fit: OnFit | None = None, prepare: Prepare | None = None) -> EvaluationResult:
        """:meth:`run` on given splits (``dataset``: the dataset they come from, or its name).

        Progress (folds, each fold's epochs, users scored) goes to the active
        :mod:`~recforge.training.progress` reporter; ``progress=True`` installs rich bars when none is.
        """
        own = RichProgress() if progress and not current_progress().active else None
        with reporting(own):
            return self._run_folds(model, splits, dataset, k=k, options=options, label=label, on_fit=on_fit,
                                   prepare=prepare)

    def _run_folds(self, model: Any, splits: list[Any], dataset: Dataset | str, *, k: int | None,
                   options: FitOptions | None, label: str | None, on_fit: OnFit | None,
                   prepare: Prepare | None) -> EvaluationResult:
        self.check_model(model)
        k = self.default_k if k is None else check_k(k)
        options = options or FitOptions()
        name = dataset if isinstance(dataset, str) else dataset.name
        label = label or model.name
        seed = 0 if options.seed is None else int(options.seed)
        rows: list[dict[str, Any]] = []
        per_user: dict[tuple[str, str], list[np.ndarray]] = {}
        if splits:
            self.check_data(model, splits[0].train)
        # the rows say whether the model learnt from ratings or from implicit feedback (and its weights)
        feedback = {} if isinstance(dataset, str) else {"feedback": _feedback(dataset, splits)}
        feedback.update(_target(dataset, model))
        for fold, split in enumerate(_progress(splits, f"{label} {self.name}: folds"), start=1):
            train, opts = split.train, self.fit_options(options, split)
            if prepare is not None:
                train, opts = prepare(split, fold, opts)
            t0 = time.perf_counter()
            fitted = model.clone().fit(train, opts)
            fit_s = time.perf_counter() - t0
            if on_fit is not None:
                on_fit(fitted, split, fold)
            scored = self.score(fitted, split, k=k, dataset=dataset, seed=seed)
            ids = {"protocol": self.name, "dataset": name, **feedback, "model": label, **self.id_columns(split, fold)}
            rows.append(self.row(ids, scored, fit_s, fitted, split))
            for metric, values in scored.per_user.items():
                per_user.setdefault((label, metric), []).append(values)
        per = {key: v[0] if len(v) == 1 else np.concatenate(v) for key, v in per_user.items()}
        return EvaluationResult(self.table(rows), per, self.notes(seed, splits))


PROTOCOLS: dict[str, Protocol] = {}

#: Protocols defined in their own modules (name -> module), imported the first time they are asked
#: for by name. The package ``recforge.evaluation`` fills it, so that this module never names the
#: plugin modules that import it (no import cycle, not even a lazy one).
LAZY_PROTOCOLS: dict[str, str] = {}


def register_protocol(protocol: Protocol) -> Protocol:
    """Add a protocol to the registry (its module calls this on import)."""
    PROTOCOLS[protocol.name] = protocol
    return protocol


def get_protocol(name: str | Protocol) -> Protocol:
    """The protocol registered as ``name`` (a :class:`Protocol` is returned as it is)."""
    if isinstance(name, Protocol):
        return name
    if name not in PROTOCOLS and name in LAZY_PROTOCOLS:
        importlib.import_module(LAZY_PROTOCOLS[name])
    if name not in PROTOCOLS:
        names = sorted(set(PROTOCOLS) | set(LAZY_PROTOCOLS))
        raise ConfigError(f"unknown protocol {name!r}; available: {', '.join(names)}")
    return PROTOCOLS[name]


def list_protocols() -> list[Protocol]:
    """Every protocol, sorted by name."""
    for name in LAZY_PROTOCOLS:
        get_protocol(name)
    return sorted(PROTOCOLS.values(), key=lambda p: p.name)


def evaluate(
    model: Any,
    data: Dataset | Interactions | DataSource,
    protocol: str | Protocol,
    *,
    k: int | None = None,
    options: FitOptions | None = None,
    model_name: str | None = None,
    progress: bool = False,
    on_fit: OnFit | None = None,
    prepare: Prepare | None = None,
) -> EvaluationResult:
    """Fit and evaluate ``model`` under a protocol.

    Args:
        model: A model instance; a fresh clone of it (same config) is fitted for every split.
        data: A registered :class:`Dataset`, any :class:`Interactions`, or a :class:`DataSource` (loaded).
        protocol: A protocol name (see :func:`list_protocols`) or a :class:`Protocol`.
        k: List length for ranking metrics (the protocol's default when None).
        options: Fit options (seed, device, ...); the seed also drives the split where it is random.
        model_name: Label for the result rows (the model's short name by default).
        progress: Show a progress bar over folds.
        on_fit: Called as ``on_fit(fitted, split, fold)`` after each fold's fit (``fold`` counts
            from 1), e.g. to log the fold's training history.
        prepare: Called as ``prepare(split, fold, options)`` before each fold's fit; returns the
            training data and the options to fit with (e.g. a validation carve and a per-fold
            logger). The test rows stay the protocol's.

    Raises:
        ConfigError: Unknown protocol, bad ``k``, or a model the protocol cannot evaluate.
    """
    proto = get_protocol(protocol)
    if k is not None:
        check_k(k)
    return proto.run(model, data, k=k, options=options, label=model_name, progress=progress, on_fit=on_fit,
                     prepare=prepare)


# ---------------------------------------------------------------------------------------- helpers
def as_dataset(data: Dataset | Interactions) -> Dataset:
    """``data`` as a :class:`Dataset` (an :class:`Interactions` is wrapped, named after itself; a
    :class:`~recforge.data.source.DataSource` is loaded)."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, DataSource):
        return data.load()
    return Dataset(data.name, "rating" if data.explicit else "ranking", data)


def interactions_of(ds: Dataset | Interactions) -> Interactions:
    """The user-item interactions of ``ds``; :class:`DataError` for a CTR-only dataset."""
    if isinstance(ds, Interactions):
        return ds
    if ds.interactions is None:
        raise DataError(f"dataset {ds.name!r} has no user-item interactions (it is a CTR dataset)")
    return ds.interactions


def _feedback(dataset: Dataset, splits: list[Any]) -> str:
    """What a result row states about the data: ``explicit``, or ``implicit`` with its weights."""
    if isinstance(dataset, Dataset) and dataset.interactions is not None:
        return dataset.feedback
    train = getattr(splits[0], "train", None) if splits else None
    return "explicit" if getattr(train, "explicit", False) else "implicit"


def _target(dataset: Dataset | str, model: Any) -> dict[str, str]:
    """What a result row states about the target: the utility formula that made the values and the
    model's normalisation (``user-zscore``), each only when there is one."""
    out = {}
    utility = getattr(dataset, "utility", None) if isinstance(dataset, Dataset) else None
    if utility:
        out["utility"] = str(utility)
    norm = model.target_transform() if isinstance(model, Estimator) else None
    if norm:
        out["normalize"] = norm
    return out


def _rows_with_mean(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if len(df) > 1 or (len(df) and df["fold"].iloc[0] != "mean"):
        ids = [c for c in ID_COLUMNS if c != "fold" and c in df.columns]
        mean = df.drop(columns=[*ids, "fold"]).mean(numeric_only=True)
        mean_row = {**{c: df[c].iloc[0] for c in ids}, "fold": "mean", **mean}
        df = pd.concat([df, pd.DataFrame([mean_row])], ignore_index=True)
    df["fold"] = df["fold"].astype(str)
    return df


def _progress(items: list[Any], description: str) -> Iterator[Any]:
    """``items``, one step of the active progress reporter after each."""
    with current_progress().task(description, len(items)) as bar:
        for item in items:
            yield item
            bar.advance()


# ---------------------------------------------------------------------------------------- rating
@dataclass(frozen=True)
class RatingProtocol(Protocol):
    """RMSE and MAE of predicted ratings on held-out ratings, over one or more folds.

    Attributes:
        folds: ``"kfold5"`` (5 shuffled folds, seeded) or the names of the dataset's predefined
            splits (``("u1",)``, ``("u1", ..., "u5")``).
    """

    folds: tuple[str, ...] = ("kfold5",)

    def check_model(self, model: Any) -> None:
        if model.task != "rating":
            raise ConfigError(f"protocol {self.name!r} needs a rating model; {model.name!r} is a {model.task} model")

    def check_data(self, model: Any, train: Any) -> None:
        require_ratings(train, f"protocol {self.name!r}")

    def splits(self, dataset: Dataset | Interactions, seed: int = 0) -> list[Split]:
        if self.folds == ("kfold5",):
            from recforge.splits import kfold

            return kfold(interactions_of(dataset), 5, seed=seed)
        ds = as_dataset(dataset)
        return [ds.split(name) for name in self.folds]

    def score(self, fitted: Any, split: Any, *, k: int, dataset: Any, seed: int) -> Scored:
        return _rating_scores(fitted, split)


def _rating_scores(fitted: Any, split: Any) -> Scored:
    """RMSE and MAE of ``fitted``'s predictions of ``split.test``'s ratings."""
    t0 = time.perf_counter()
    test = split.test
    pred = fitted.predict(test.users.ids[test.user_idx], test.items.ids[test.item_idx], fallback="mean")
    seconds = time.perf_counter() - t0
    truth = test.values.astype(np.float64)
    return Scored({"RMSE": M.rmse(truth, pred), "MAE": M.mae(truth, pred)}, {"abs_error": np.abs(pred - truth)},
                  seconds, {"n_eval": len(truth), "n_fallback": fitted.n_impossible_last_})


# ---------------------------------------------------------------------------------------- ranking
RANKING_METRICS = {
    "HR": M.hit_rate_at_k,
    "Precision": M.precision_at_k,
    "Recall": M.recall_at_k,
    "NDCG": M.ndcg_at_k,
    "MAP": M.average_precision_at_k,
    "MRR": M.reciprocal_rank_at_k,
}


def full_ranking(
    fitted: Recommender, test: Interactions, k: int, metrics: tuple[str, ...], *, block: int | None = None,
    users: np.ndarray | None = None, memory_budget: int | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """Top-k of every test user (or of ``users``, indices with test rows) over all unseen items,
    scored against the user's test items.

    Users are scored in blocks (:func:`recforge.evaluation.blocks.plan_blocks`): ``block`` users
    each, or as many as ``memory_budget`` bytes (default: the budget of an enclosing
    :func:`~recforge.evaluation.blocks.memory_budget`) allow, else 2,048.

    Returns per-user metric arrays, the (n_test_users, min(k, n_items)) recommendation matrix
    (item indices) and the number of test users the model could not score (popularity fallback).
    A ``k`` beyond the catalogue gives the metrics of the full list (precision still divides by
    ``k``), without allocating ``k`` columns.
    """
    from recforge.evaluation.blocks import iter_blocks, map_blocks, nbytes, plan_blocks

    truth_all = test.csr()
    if users is None:
        users = np.flatnonzero(np.diff(truth_all.indptr) > 0)
    users = np.asarray(users, dtype=np.int64)
    width = clamp_k(k, len(fitted.items_))
    plan = plan_blocks(fitted, len(users), width, memory_budget, default=block or 2048,
                       extra_resident=nbytes(truth_all))
    recs = np.empty((len(users), width), dtype=np.int64)
    s = 0
    with current_progress().task("scoring users", len(users)) as bar:
        # blocks in order, in this process or on a distributed backend's workers (evaluation.blocks.block_executor)
        for u, idx, _ in map_blocks(fitted, iter_blocks(users, plan), k):
            recs[s : s + len(u)] = idx
            s += len(u)
            bar.advance(len(u))
    truth = truth_all[users]
    out = {f"{m}@{k}": RANKING_METRICS[m](recs, truth, k) for m in metrics}
    n_fb = int((~fitted.user_known_[users]).sum())
    return out, recs, n_fb


@dataclass(frozen=True)
class RankingProtocol(Protocol):
    """Full ranking of every unseen item for each test user of one split.

    Attributes:
        split_kind: ``"loo"`` (each user's latest interaction), ``"ratio"`` (random 80/20,
            seeded) or ``"given"`` (the dataset's published split).
        metrics: Ranking metrics reported at ``k`` (names of :data:`RANKING_METRICS`).
        beyond_accuracy: Also report coverage, novelty and average popularity at ``k``.
    """

    split_kind: str = "loo"
    metrics: tuple[str, ...] = ("HR", "NDCG", "MRR")
    beyond_accuracy: bool = True

    def splits(self, dataset: Dataset | Interactions, seed: int = 0) -> list[Split]:
        from recforge import splits as S

        if self.split_kind == "loo":
            return [S.leave_one_out(interactions_of(dataset))]
        if self.split_kind == "ratio":
            return [S.random_split(interactions_of(dataset), test_fraction=0.2, seed=seed)]
        ds = as_dataset(dataset)
        names = ds.split_names
        if not names:
            raise DataError(f"dataset {ds.name!r} has no published split and no split of your own: pass --train FILE --test FILE, "
                            "--split-column COL or --split-date DATE (or use loo-full or ratio-full)")
        return [ds.split("given" if "given" in names else names[0])]

    def score(self, fitted: Any, split: Any, *, k: int, dataset: Any, seed: int) -> Scored:
        t0 = time.perf_counter()
        per, recs, n_fb = full_ranking(fitted, split.test, k, self.metrics)
        seconds = time.perf_counter() - t0
        means = {m: float(np.nanmean(v)) for m, v in per.items()}
        if self.beyond_accuracy:
            pop = split.train.item_counts().astype(np.float64)
            means[f"Coverage@{k}"] = M.catalog_coverage(recs, split.train.n_items)
            means[f"Novelty@{k}"] = float(np.nanmean(M.novelty(recs, pop, split.train.n_users)))
            means[f"AvgPop@{k}"] = float(np.nanmean(M.average_popularity(recs, pop)))
        return Scored(means, per, seconds, {"n_eval": len(recs), "n_fallback": n_fb})

    def notes(self, seed: int, splits: list[Any]) -> list[str]:
        if self.split_kind == "ratio":
            return [f"{self.name}: random 80/20 over interactions, seed {seed}"]
        return []


@dataclass(frozen=True)
class GivenSplitProtocol(RankingProtocol):
    """The dataset's given train/test split: published with the data (Gowalla), or the user's own
    (``DataSource`` ``train``/``test`` files, ``split_column``, ``split_date``). Ranking models are
    scored by full ranking; rating models by RMSE and MAE on the test ratings."""

    def score(self, fitted: Any, split: Any, *, k: int, dataset: Any, seed: int) -> Scored:
        if fitted.task == "rating":
            return _rating_scores(fitted, split)
        return super().score(fitted, split, k=k, dataset=dataset, seed=seed)


def sampled_ranks(fitted: Recommender, data: Interactions, test: Interactions, n_negatives: int = 99,
                  seed: int = 0) -> np.ndarray:
    """``loo-sampled``: each test item's rank among ``n_negatives`` items the user never
    interacted with in ``data`` (sampled with ``seed``). Ties count against the test item, so a
    constant scorer is not rewarded; unscorable pairs (unknown user or item) rank last.

    Scores come from the public :meth:`~recforge.models.base.Recommender.score` (raw ids of the
    test rows' vocabularies, which are the training data's).
    """
    cand = sample_negatives(data.csr(), test.user_idx, n_negatives, seed)
    items = np.concatenate([test.item_idx[:, None], cand], axis=1)
    users = np.repeat(test.user_idx, items.shape[1])
    scores = fitted.score(test.users.ids[users], test.items.ids[items.ravel()]).reshape(items.shape)
    scores = np.where(np.isnan(scores), -np.inf, scores)
    return (scores[:, 1:] >= scores[:, :1]).sum(axis=1)


@dataclass(frozen=True)
class SampledProtocol(Protocol):
    """The held-out latest item of each user ranked against ``n_negatives`` sampled unseen items."""

    n_negatives: int = 99

    def splits(self, dataset: Dataset | Interactions, seed: int = 0) -> list[Split]:
        from recforge.splits import leave_one_out

        return [leave_one_out(interactions_of(dataset))]

    def score(self, fitted: Any, split: Any, *, k: int, dataset: Any, seed: int) -> Scored:
        t0 = time.perf_counter()
        test = split.test
        rank = sampled_ranks(fitted, interactions_of(dataset), test, self.n_negatives, seed)
        hit = rank < k
        ndcg = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
        seconds = time.perf_counter() - t0
        hr_name, ndcg_name = f"HR@{k} (sampled)", f"NDCG@{k} (sampled)"
        return Scored({hr_name: float(hit.mean()), ndcg_name: float(ndcg.mean())},
                      {hr_name: hit.astype(float), ndcg_name: ndcg}, seconds,
                      {"n_eval": len(hit), "n_fallback": int((~fitted.user_known_[test.user_idx]).sum())})

    def notes(self, seed: int, splits: list[Any]) -> list[str]:
        return [f"{self.name}: sampled metrics, {self.n_negatives} negatives per user, seed {seed}"]


def sample_negatives(seen: sp.csr_matrix, users: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` distinct items per user, uniformly among items the user never interacted with."""
    return sample_unseen(seen, users, n, np.random.default_rng(seed), replace=False)


for _p in (
    RatingProtocol("rating-kfold5", "rating", "5-fold CV over all ratings, shuffled, seed 0", folds=("kfold5",)),
    RatingProtocol("rating-u1", "rating", "ML-100K predefined u1.base/u1.test", folds=("u1",)),
    RatingProtocol("rating-u1u5", "rating", "ML-100K predefined u1..u5 folds, averaged",
                   folds=tuple(f"u{j}" for j in range(1, 6))),
    RankingProtocol("loo-full", "ranking", "latest interaction per user held out; full ranking of unseen items",
                    10, split_kind="loo", metrics=("HR", "NDCG", "MRR"), beyond_accuracy=False),
    SampledProtocol("loo-sampled", "ranking", "latest interaction vs 99 sampled unseen items (sampled metrics)",
                    10, n_negatives=99),
    RankingProtocol("ratio-full", "ranking", "random 80/20 over interactions; full ranking of unseen items",
                    20, split_kind="ratio", metrics=("HR", "Precision", "Recall", "NDCG", "MAP")),
    GivenSplitProtocol("given-split", "ranking", "the dataset's given train/test split (published, or --train/"
                       "--test, --split-column, --split-date); full ranking, RMSE/MAE for rating models",
                       20, split_kind="given", metrics=("Recall", "NDCG", "Precision", "HR")),
):
    register_protocol(_p)
