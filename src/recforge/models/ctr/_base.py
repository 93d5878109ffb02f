"""What the CTR models share: feature-row input, the shared training loop, AUC early stopping.

CTR models do not learn from a user-item matrix but from rows of (feature index, value) pairs
(:class:`~recforge.data.ctr.CTRData`) with 0/1 labels, and answer ``predict_proba(rows)``. They
keep the :class:`~recforge.models.base.Recommender` contract for configuration, the registry,
``save``/``load`` (no pickle) and determinism, and train through the shared Lightning loop of
:mod:`recforge.training`; with ``FitOptions(validation=valid_rows)`` every epoch is scored by AUC
on the validation rows, training stops after ``patience`` epochs without improvement and the
best epoch's weights are restored. ``negatives`` adds sampled negative rows to the training rows
(:func:`~recforge.data.ctr.sample_negatives`) for implicit-feedback CTR data whose negatives were
themselves sampled (Frappe). ``ensemble = m`` trains ``m`` networks side by side from different
initialisations and averages their logits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from recforge.config import FitOptions, ModelConfig
from recforge.data.ctr import CTRData, FeatureEncoder, sample_negatives
from recforge.training.batches import TensorBatcher
from recforge.errors import ConfigError, DataError, NotFittedError
from recforge.metrics import roc_auc
from recforge.models.base import Recommender
from recforge.training.loop import fit_network, run_context
from recforge.training.module import OPTIMIZERS, RecNetwork
from recforge.training.validation import Validation

_TORCH_PREFIX = "torch_state."
_SCORE_CHUNK = 1 << 16

Optimizer = Literal["adam", "adamw", "sgd", "adagrad"]


@dataclass(frozen=True)
class CTRConfig(ModelConfig):
    """Hyperparameters every CTR model has."""

    epochs: int = 30
    """Passes over the training rows (the most; early stopping on validation AUC may stop sooner)."""
    batch_size: int = 4096
    """Rows per optimiser step."""
    learning_rate: float = 1e-3
    """Optimiser step size."""
    optimizer: Optimizer = "adam"
    """``adam``, ``adamw``, ``sgd`` or ``adagrad``."""
    reg: float = 0.0
    """L2 penalty on the weights (and embeddings) of the features active in each row, averaged over
    the batch."""
    embedding_reg: float = 0.0
    """L2 penalty ``embedding_reg / 2 * ||table||^2`` on the *whole* feature weight and embedding
    tables at every step (BARS/FuxiCTR's ``embedding_regularizer``): unlike ``reg`` it also shrinks
    the rows of features absent from the batch, so rare features stay near zero."""
    negatives: int = 0
    """Extra negative rows sampled per training positive before training (0: none), once per fit
    with the fit's seed: a copy of the positive row (user and context kept) whose
    ``negative_item`` feature is drawn uniformly from the items of the training rows, never one the
    row's ``negative_user`` has as a positive (:func:`~recforge.data.ctr.sample_negatives`). For
    implicit-feedback data whose negatives were generated that way (Frappe); validation rows are
    never augmented. The predicted probabilities are then calibrated to the augmented click rate,
    so they are too low for the real rows: rank by them (AUC is unaffected), do not read them as
    click rates."""
    negative_item: str = "item"
    """Field whose value a sampled negative redraws (a one-slot categorical field)."""
    negative_user: str = "user"
    """Field whose positive items a sampled negative never draws (``""``: any item)."""
    ensemble: int = 1
    """Networks trained side by side (same batches, each from its own random initialisation, each
    minimising its own loss); the model's logit is the mean of theirs, and early stopping watches
    that mean. 1: a single network. Costs ``ensemble`` times the training and scoring work (and
    does nothing for logistic regression, whose members all start at zero)."""

    def validate(self) -> None:
        self.check(self.epochs >= 1, "epochs", "must be >= 1")
        self.check(self.batch_size >= 1, "batch_size", "must be >= 1")
        self.check(self.learning_rate > 0, "learning_rate", "must be > 0")
        self.check(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        self.check(self.reg >= 0, "reg", "must be >= 0")
        self.check(self.embedding_reg >= 0, "embedding_reg", "must be >= 0")
        self.check(self.negatives >= 0, "negatives", "must be >= 0")
        self.check(self.ensemble >= 1, "ensemble", "must be >= 1")
        self.check(bool(self.negative_item), "negative_item", "must name the item field")
        self.check(self.negative_user != self.negative_item, "negative_user", "must differ from negative_item")


class CTRNetwork(RecNetwork):
    """A network mapping ``(index, value)`` slot tensors to logits; the loss is BCE + ``reg`` L2."""

    reg: float = 0.0
    embedding_reg: float = 0.0

    def logits(self, index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def penalty(self, index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Squared norm of the parameters of each row's active features, per row."""
        raise NotImplementedError

    def tables(self) -> list[nn.Embedding]:
        """The feature tables (weights, factors) that ``embedding_reg`` shrinks."""
        return [m for m in self.modules() if isinstance(m, nn.Embedding)]

    def loss(self, batch: Any) -> torch.Tensor:
        index, value, y = batch
        out = F.binary_cross_entropy_with_logits(self.logits(index, value), y)
        if self.reg > 0:
            out = out + self.reg * self.penalty(index, value).mean()
        if self.embedding_reg > 0:
            out = out + 0.5 * self.embedding_reg * sum(t.weight.pow(2).sum() for t in self.tables())
        return out

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("CTR networks score feature rows, not (user, item) pairs")


class EnsembleNetwork(CTRNetwork):
    """``m`` CTR networks trained side by side: logit = mean of theirs, loss = mean of their losses.

    Each member minimises its own objective on the same batches (so they stay independent
    learners that differ by their initialisation and dropout), and the mean of their logits is
    what validation and scoring see: a seed ensemble trained in one pass.
    """

    def __init__(self, members: list[CTRNetwork]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def logits(self, index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return torch.stack([m.logits(index, value) for m in self.members]).mean(0)

    def loss(self, batch: Any) -> torch.Tensor:
        return torch.stack([m.loss(batch) for m in self.members]).mean()


class AUCValidation(Validation):
    """ROC AUC (and log loss) of the network on held-out CTR rows, for early stopping.

    AUC is not a sum over batches, so each step keeps its logits and :meth:`compute` ranks them
    all at once (exact, not a binned approximation).
    """

    monitor = "val_auc"
    mode = "max"

    def __init__(self, data: CTRData, train: CTRData, device: torch.device, batch_size: int = 1 << 16) -> None:
        if not isinstance(data, CTRData):
            raise DataError(f"FitOptions.validation must be CTRData for a CTR model, got {type(data).__name__}")
        _check_same_space(data, train, "FitOptions.validation")
        if data.labels is None or len(data) == 0:
            raise DataError("FitOptions.validation: CTR validation rows need labels")
        self.labels = data.labels
        idx = torch.as_tensor(data.index, device=device)
        val = torch.as_tensor(data.value, device=device)
        self._batches = [(idx[s : s + batch_size], val[s : s + batch_size]) for s in range(0, len(data), batch_size)]
        self._logits: list[torch.Tensor] = []

    def batches(self) -> Any:
        self._logits = []
        return _Batches(self._batches)

    def step(self, net: Any, batch: Any) -> dict[str, torch.Tensor]:
        z = net.logits(*batch).detach().float()
        self._logits.append(z.cpu())
        return {"n": torch.tensor(float(len(z)))}

    def compute(self, sums: dict[str, float]) -> dict[str, float]:
        z = torch.cat(self._logits).double().numpy() if self._logits else np.empty(0)
        self._logits = []
        if len(z) != len(self.labels):
            return {}
        y = self.labels.astype(np.float64)
        ll = float(np.mean(np.logaddexp(0.0, z) - y * z))
        return {"val_auc": roc_auc(y, z), "val_logloss": ll}


class _Batches:
    """A list of batches that Lightning takes for one dataloader (a bare list reads as several)."""

    def __init__(self, batches: list[Any]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Any:
        return iter(self.batches)


def _check_same_space(data: CTRData, train: CTRData, what: str) -> None:
    if data.n_features != train.n_features or not np.array_equal(data.slot_fields, train.slot_fields):
        raise DataError(
            f"{what}: rows are encoded differently from the training rows ({data.n_features} features, "
            f"{data.n_slots} slots vs {train.n_features} features, {train.n_slots} slots); encode both with "
            "the same fitted FeatureEncoder"
        )


class CTRModel(Recommender):
    """Base of the CTR models: ``fit(rows)`` and ``predict_proba(rows)`` on :class:`CTRData`.

    Subclasses implement ``_network()`` from the config and the fitted sizes (``n_features_``,
    ``slot_fields_``, ``base_rate_``) so that :meth:`load` can rebuild it.
    """

    task = "ctr"
    config_class: ClassVar[type[ModelConfig]] = CTRConfig
    _net: CTRNetwork | None = None

    # ------------------------------------------------------------------ fitting
    def fit(self, data: Any, options: FitOptions | None = None) -> CTRModel:  # type: ignore[override]
        """Learn from labelled rows: a :class:`CTRData`, or a libFM-style ``(labels, index_matrix)`` pair.

        ``options.validation`` (a :class:`CTRData` encoded like ``data``) turns on early stopping
        on validation AUC.
        """
        data = _as_rows(data, "fit")
        if len(data) == 0:
            raise DataError(f"{type(self).__name__}.fit: the training data has no rows")
        if data.labels is None:
            raise DataError(f"{type(self).__name__}.fit: the training rows have no labels")
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, key)
        self._net = None
        cfg: Any = self.config
        self.n_features_ = int(data.n_features)
        self.slot_fields_ = data.slot_fields.copy()
        self.field_names_ = list(data.field_names)
        # a copy: refitting the caller's encoder later must not re-map this model's features
        self.encoder_ = None if data.encoder is None else FeatureEncoder.from_dict(data.encoder.to_dict())
        with run_context(options) as ctx:
            if cfg.negatives:
                data = with_sampled_negatives(data, cfg.negatives, cfg.negative_item, cfg.negative_user or None,
                                              ctx.rng)
            self.base_rate_ = float(np.clip(data.labels.mean(), 1e-4, 1 - 1e-4))
            net = self._build().to(ctx.device)
            for m in net.modules():
                if isinstance(m, CTRNetwork):
                    m.embedding_reg = float(cfg.embedding_reg)
            batches = TensorBatcher(
                torch.from_numpy(data.index), torch.from_numpy(data.value), torch.from_numpy(data.labels),
                batch_size=cfg.batch_size, shuffle=True, generator=ctx.generator, device=ctx.device,
            )
            valid = ctx.options.validation
            validation = AUCValidation(_as_rows(valid, "validation"), data, ctx.device) if valid is not None else None
            self._net = net  # scorable between epochs (FitOptions.epoch_callback)
            result = fit_network(net, batches, ctx, epochs=cfg.epochs, learning_rate=cfg.learning_rate,
                                 optimizer=cfg.optimizer, validation=validation, name=self.name, model=self)
        self._net = net.eval()
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.epochs_run_ = int(result.epochs_run)
        return self

    def _fit(self, data: Any, options: FitOptions) -> None:  # pragma: no cover - fit is overridden
        raise NotImplementedError

    def _network(self) -> CTRNetwork:
        raise NotImplementedError

    def _build(self) -> CTRNetwork:
        """The model's network: one from :meth:`_network`, or ``ensemble`` of them averaged."""
        m = int(getattr(self.config, "ensemble", 1))
        return self._network() if m == 1 else EnsembleNetwork([self._network() for _ in range(m)])

    def is_fitted(self) -> bool:
        return hasattr(self, "n_features_")

    def _require_net(self) -> CTRNetwork:
        if not self.is_fitted():
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")
        if self._net is None:
            raise DataError(f"{type(self).__name__}: the network is missing (was the state restored?)")
        return self._net

    # ------------------------------------------------------------------ scoring
    def decision_function(self, rows: Any, value: np.ndarray | None = None) -> np.ndarray:
        """Logits of rows: a :class:`CTRData` or an ``(n, slots)`` index matrix (with optional values).

        One batched forward pass per 65,536 rows (no per-row Python), in inference mode.
        """
        net = self._require_net()
        idx, val = self._inputs(rows, value)
        dev = next(net.parameters()).device
        out = np.empty(len(idx), dtype=np.float64)
        with torch.inference_mode():
            for s in range(0, len(idx), _SCORE_CHUNK):
                ii = torch.from_numpy(idx[s : s + _SCORE_CHUNK]).to(dev)
                vv = torch.from_numpy(val[s : s + _SCORE_CHUNK]).to(dev)
                out[s : s + _SCORE_CHUNK] = net.logits(ii, vv).double().cpu().numpy()
        return out

    def predict_proba(self, rows: Any, value: np.ndarray | None = None) -> np.ndarray:
        """Click probability of each row, in [0, 1]: the batch-scoring entry point.

        Args:
            rows: Encoded rows: a :class:`CTRData` (from the training encoder) or an ``(n, slots)``
                int index matrix.
            value: ``(n, slots)`` feature values for an index matrix (default: all ones).

        Returns:
            float64 ``(n,)`` probabilities ``s(y(x))``, in row order.
        """
        z = self.decision_function(rows, value)
        return 1.0 / (1.0 + np.exp(-z))

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Click probabilities of raw feature rows (one column per field), encoded as in training.

        Needs the model to have been fitted on rows from a :class:`~recforge.data.ctr.FeatureEncoder`
        (it is kept with the model, and saved with it): values unseen in training go to their
        field's out-of-vocabulary feature. A label column, if present, is ignored.
        """
        enc = self._require_encoder()
        return self.predict_proba(enc.transform(frame.drop(columns=[enc.label], errors="ignore")
                                                if enc.label else frame, "frame"))

    def score_candidates(self, context: Mapping[str, Any], candidates: pd.DataFrame) -> np.ndarray:
        """Score candidate items for one request: the ranking stage of a serving pipeline.

        Args:
            context: The request's fields shared by every candidate (user id, user features,
                time, device...), as ``{field: value}``.
            candidates: One row per candidate with the item's fields (item id, genres, ...).
                Context fields override candidate columns of the same name.

        Returns:
            float64 click probabilities, one per candidate row, in order (sort them to rank).
        """
        if not isinstance(candidates, pd.DataFrame):
            raise DataError(f"candidates must be a DataFrame of item fields, got {type(candidates).__name__}")
        frame = candidates.reset_index(drop=True).assign(**{str(k): v for k, v in dict(context).items()})
        return self.score_frame(frame)

    def _require_encoder(self) -> FeatureEncoder:
        self._require_net()
        enc = getattr(self, "encoder_", None)
        if enc is None:
            raise DataError(f"{type(self).__name__} was fitted on pre-encoded rows without a FeatureEncoder; "
                            "encode raw rows yourself and call predict_proba()")
        return enc

    def _inputs(self, rows: Any, value: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(rows, CTRData):
            idx, val = rows.index, rows.value
            if not np.array_equal(rows.slot_fields, self.slot_fields_) or rows.n_features != self.n_features_:
                raise DataError(f"{rows.name}: rows are encoded differently from the training rows")
        else:
            idx = np.atleast_2d(np.asarray(rows, dtype=np.int64))
            if idx.size == 0:
                idx = idx.reshape(0, len(self.slot_fields_))
            val = np.ones(idx.shape, np.float32) if value is None else np.asarray(value, dtype=np.float32)
            if val.ndim == 1 and idx.shape[0] == 1:
                val = val[None, :]
            if val.shape != idx.shape:
                raise DataError(f"value has shape {val.shape}, index has {idx.shape}")
        if idx.shape[1] != len(self.slot_fields_):
            raise DataError(f"rows have {idx.shape[1]} slots; the model was trained on {len(self.slot_fields_)}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_features_):
            raise DataError(f"feature indices must lie in [0, {self.n_features_})")
        return np.ascontiguousarray(idx), np.ascontiguousarray(val, dtype=np.float32)

    # the user-item API does not apply to feature rows
    def score(self, users: Any, items: Any) -> np.ndarray:
        raise ConfigError(f"{type(self).__name__} is a CTR model: score feature rows with predict_proba()")

    def predict(self, users: Any, items: Any = None, **kw: Any) -> np.ndarray:  # type: ignore[override]
        raise ConfigError(f"{type(self).__name__} is a CTR model: score feature rows with predict_proba()")

    def recommend(self, users: Any, k: int = 10, **kw: Any) -> Any:  # type: ignore[override]
        raise ConfigError(f"{type(self).__name__} is a CTR model: rank candidates by predict_proba() of their rows")

    # ------------------------------------------------------------------ persistence
    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        enc = getattr(self, "encoder_", None)
        state["encoder_"] = None if enc is None else enc.to_dict()
        for key, val in self._require_net().state_dict().items():
            state[_TORCH_PREFIX + key] = val.detach().cpu().numpy()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        tensors = {k[len(_TORCH_PREFIX):]: torch.from_numpy(np.array(v)) for k, v in state.items()
                   if k.startswith(_TORCH_PREFIX)}
        super().set_state({k: v for k, v in state.items() if not k.startswith(_TORCH_PREFIX)})
        enc = state.get("encoder_")
        self.encoder_ = FeatureEncoder.from_dict(enc) if isinstance(enc, dict) else None
        net = self._build()
        net.load_state_dict(tensors)
        self._net = net.eval()


def _as_rows(data: Any, what: str) -> CTRData:
    if isinstance(data, CTRData):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        y, x = data
        return CTRData.from_indices(y, x, name=what)
    raise DataError(
        f"CTR models {what} on CTRData (see recforge.data.ctr) or a (labels, index_matrix) pair, "
        f"not {type(data).__name__}"
    )


def _one_slot(data: CTRData, field: str, option: str) -> int:
    if field not in data.field_names:
        raise ConfigError(f"{option} = {field!r}: the rows have no such field ({', '.join(data.field_names)})")
    slots = np.flatnonzero(data.slot_fields == data.field_names.index(field))
    if len(slots) != 1 or not np.all(data.value[:, slots[0]] == 1):
        raise ConfigError(f"{option} = {field!r}: must be a one-hot categorical field (one slot, value 1)")
    return int(slots[0])


def with_sampled_negatives(data: CTRData, n_per_positive: int, item: str = "item", user: str | None = "user",
                           seed: int | np.random.Generator = 0) -> CTRData:
    """``data`` followed by ``n_per_positive`` sampled negatives per positive row (encoded rows).

    The encoded counterpart of :func:`~recforge.data.ctr.sample_negatives` (which it calls): each
    new row copies a positive row with the ``item`` slot redrawn uniformly from the item features
    of ``data``'s rows, never one of the row's ``user``'s positive items, and label 0. A cross
    field that contains the item cannot be redrawn here: sample raw rows before encoding instead.
    """
    i_slot = _one_slot(data, item, "negative_item")
    cols = {"item": data.index[:, i_slot], "label": data.labels, "_row": np.arange(len(data))}
    if user is not None:
        cols["user"] = data.index[:, _one_slot(data, user, "negative_user")]
    enc = data.encoder
    for spec in (enc.fields if enc is not None else []):
        if spec.kind == "cross" and item in spec.columns:
            raise ConfigError(f"negatives: the cross field {spec.name!r} contains {item!r} and cannot be redrawn on "
                              "encoded rows; sample the raw rows (recforge.data.ctr.sample_negatives) before encoding")
    neg = sample_negatives(pd.DataFrame(cols), n_per_positive, user="user" if user is not None else None, seed=seed)
    src = neg["_row"].to_numpy()
    index = data.index[src].copy()
    index[:, i_slot] = neg["item"].to_numpy()
    return CTRData(np.concatenate([data.index, index]), np.concatenate([data.value, data.value[src]]),
                   np.concatenate([data.labels, np.zeros(len(src), np.float32)]), data.slot_fields,
                   data.field_names, data.n_features, data.name, data.encoder)


def feature_embedding(n: int, k: int, std: float) -> nn.Embedding:
    emb = nn.Embedding(n, k)
    nn.init.normal_(emb.weight, std=std)
    return emb


def field_pool(e: torch.Tensor, slot_fields: torch.Tensor, n_fields: int) -> torch.Tensor:
    """``(B, S, k)`` value-weighted slot embeddings -> ``(B, F, k)`` sums per field."""
    if e.shape[1] == n_fields:
        return e  # one slot per field: nothing to pool
    # a product with the (S, F) slot-to-field indicator, not index_add_: it exports to ONNX
    pool = F.one_hot(slot_fields, n_fields).to(e.dtype)
    return torch.einsum("bsk,sf->bfk", e, pool)


def check_hidden(cfg: ModelConfig, name: str = "hidden") -> None:
    hidden = getattr(cfg, name)
    if not all(h >= 1 for h in hidden):
        raise ConfigError(f"{type(cfg).__name__}.{name} = {hidden!r}: layer sizes must be >= 1")
