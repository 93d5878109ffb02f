"""The CTR model contract: :class:`CTRConfig` and :class:`CTRModel` (``fit(rows)``, ``predict_proba(rows)``).

CTR models do not learn from a user-item matrix but from rows of (feature index, value) pairs
(:class:`~recforge.data.ctr.CTRData`) with 0/1 labels, and answer ``predict_proba(rows)``. They
are :class:`~recforge.models.base.Estimator` s, not recommenders: configuration, the registry,
``save``/``load`` (no pickle) and determinism are shared with every model, and there is no
``score``/``predict``/``recommend`` (rank candidates by the probabilities of their rows). They
train through the shared Lightning loop of :mod:`recforge.training`; with
``FitOptions(validation=valid_rows)`` every epoch is scored by AUC on the validation rows
(:class:`~recforge.training.validation.AUCValidation`), training stops after ``patience`` epochs
without improvement and the best epoch's weights are restored. ``negatives`` adds sampled negative
rows to the training rows (:func:`~recforge.data.ctr.with_sampled_negatives`) for implicit-feedback
CTR data whose negatives were themselves sampled (Frappe). ``ensemble = m`` trains ``m`` networks
side by side from different initialisations and averages their logits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd
import torch

from recforge.training.backends import fit_backend
from recforge.config import FitOptions, ModelConfig
from recforge.data.ctr import CTRData, FeatureEncoder, with_sampled_negatives
from recforge.errors import ConfigError, DataError
from recforge.models._torch import TorchConfig, TorchState
from recforge.models.base import Estimator
from recforge.models.ctr._networks import CTRNetwork, EnsembleNetwork
from recforge.training.batches import TensorBatcher
from recforge.training.loop import fit_network, run_context
from recforge.training.plateau import DecayOnPlateau
from recforge.training.validation import AUCValidation

__all__ = ["CTRConfig", "CTRModel", "MLPConfig", "check_hidden"]

_SCORE_CHUNK = 1 << 16


@dataclass(frozen=True)
class CTRConfig(TorchConfig):
    """Hyperparameters every CTR model has (the torch training ones from :class:`TorchConfig`)."""

    epochs: int = 30
    """Passes over the training rows (the most; early stopping on validation AUC may stop sooner)."""
    batch_size: int = 4096
    """Rows per optimiser step."""
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
    row's ``negative_user`` has as a positive (:func:`~recforge.data.ctr.with_sampled_negatives`). For
    implicit-feedback data whose negatives were generated that way (Frappe); validation rows are
    never augmented. The predicted probabilities are then calibrated to the augmented click rate,
    so they are too low for the real rows: rank by them (AUC is unaffected), do not read them as
    click rates."""
    negative_item: str = "item"
    """Field whose value a sampled negative redraws (a one-slot categorical field)."""
    negative_user: str = "user"
    """Field whose positive items a sampled negative never draws (``""``: any item)."""
    lr_decay: float = 0.0
    """With validation rows: multiply the learning rate by this factor after every validation check
    that does not improve validation AUC (:class:`~recforge.training.plateau.DecayOnPlateau`;
    FuxiCTR's loop, behind BARS' published CTR numbers, uses 0.1). 0: a constant learning rate."""
    ensemble: int = 1
    """Networks trained side by side (same batches, each from its own random initialisation, each
    minimising its own loss); the model's logit is the mean of theirs, and early stopping watches
    that mean. 1: a single network. Costs ``ensemble`` times the training and scoring work (and
    does nothing for logistic regression, whose members all start at zero)."""

    def validate(self) -> None:
        super().validate()
        self.check(self.reg >= 0, "reg", "must be >= 0")
        self.check(self.embedding_reg >= 0, "embedding_reg", "must be >= 0")
        self.check(self.negatives >= 0, "negatives", "must be >= 0")
        self.check(self.ensemble >= 1, "ensemble", "must be >= 1")
        self.check(0.0 <= self.lr_decay < 1.0, "lr_decay", "must be in [0, 1) (0: no decay)")
        self.check(bool(self.negative_item), "negative_item", "must name the item field")
        self.check(self.negative_user != self.negative_item, "negative_user", "must differ from negative_item")


class CTRModel(TorchState, Estimator):
    """Base of the CTR models: ``fit(rows)`` and ``predict_proba(rows)`` on :class:`CTRData`.

    Subclasses implement ``_network()`` from the config and the fitted sizes (``n_features_``,
    ``slot_fields_``, ``base_rate_``) so that :meth:`load` can rebuild it. The network, its
    persistence, ``device`` and ``to_device`` come from :class:`~recforge.models._torch.TorchState`.
    """

    task = "ctr"
    config_class: ClassVar[type[ModelConfig]] = CTRConfig
    _net: CTRNetwork | None = None

    # ------------------------------------------------------------------ fitting
    def fit(self, data: Any, options: FitOptions | None = None) -> Self:
        """Learn from labelled rows: a :class:`CTRData`, or a libFM-style ``(labels, index_matrix)`` pair.

        ``options.validation`` (a :class:`CTRData` encoded like ``data``) turns on early stopping
        on validation AUC.

        Returns:
            ``self``; refitting forgets the previous fit.

        Raises:
            DataError: The rows are empty, unlabelled or of another type.
        """
        data = _as_rows(data, "fit")
        if len(data) == 0:
            raise DataError(f"{type(self).__name__}.fit: the training data has no rows")
        if data.labels is None:
            raise DataError(f"{type(self).__name__}.fit: the training rows have no labels")
        if options is not None and options.backend != "local":
            return fit_backend(options.backend)(self, data, options)
        self._forget()
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
            net = self._build()
            if getattr(cfg, "dense_init", "torch") == "xavier":
                xavier_dense_(net)
            net = net.to(ctx.device)
            for m in net.modules():
                if isinstance(m, CTRNetwork):
                    m.embedding_reg = float(cfg.embedding_reg)
            batches = TensorBatcher(
                torch.from_numpy(data.index), torch.from_numpy(data.value), torch.from_numpy(data.labels),
                batch_size=cfg.batch_size, shuffle=True, generator=ctx.generator, device=ctx.device,
            )
            valid = ctx.options.validation
            validation = AUCValidation(_as_rows(valid, "validation"), data, ctx.device) if valid is not None else None
            if validation is not None and cfg.lr_decay > 0:
                decay = DecayOnPlateau(validation.monitor, validation.mode, cfg.lr_decay,
                                       min_delta=ctx.options.min_delta)
                ctx.options = ctx.options.replace(callbacks=(*ctx.options.callbacks, decay))
            self._net = net  # scorable between epochs (FitOptions.epoch_callback)
            result = fit_network(net, batches, ctx, epochs=cfg.epochs, learning_rate=cfg.learning_rate,
                                 optimizer=cfg.optimizer, validation=validation, name=self.name, model=self,
                                 ema_decay=cfg.ema_decay)
        self._net = net.eval()
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.epochs_run_ = int(result.epochs_run)
        return self

    def _network(self) -> CTRNetwork:
        raise NotImplementedError

    def _build(self) -> CTRNetwork:
        """The model's network: one from :meth:`_network`, or ``ensemble`` of them averaged."""
        m = int(getattr(self.config, "ensemble", 1))
        return self._network() if m == 1 else EnsembleNetwork([self._network() for _ in range(m)])

    def _restore_network(self) -> CTRNetwork:
        return self._build()

    def is_fitted(self) -> bool:
        return hasattr(self, "n_features_")

    # ------------------------------------------------------------------ scoring
    def decision_function(self, rows: Any, value: np.ndarray | None = None) -> np.ndarray:
        """Logits of rows: a :class:`CTRData` or an ``(n, slots)`` index matrix (with optional values).

        One batched forward pass per 65,536 rows (no per-row Python), in inference mode.
        """
        net = self.network()
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
        self.network()
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

    # ------------------------------------------------------------------ persistence
    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        enc = getattr(self, "encoder_", None)
        state["encoder_"] = None if enc is None else enc.to_dict()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        enc = state.get("encoder_")
        self.encoder_ = FeatureEncoder.from_dict(enc) if isinstance(enc, dict) else None


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


@dataclass(frozen=True)
class MLPConfig(CTRConfig):
    """Hyperparameters of the CTR models with an embedding table and a deep part (an MLP over the
    concatenated field embeddings): DeepFM and DCN-V2 declare these once, here.

    Defaults follow BARS' set-up for both models (Zhu et al., "BARS: Towards Open Benchmarking for
    Recommender Systems", SIGIR 2022: ``k = 10``, 400x400x400, batch norm, dropout 0.2, a
    whole-table embedding L2), with batches of 1,024.
    """

    embedding_size: int = 10
    """Dimension ``k`` of every feature's embedding; the deep part reads ``F * k`` numbers."""
    init_std: float = 0.01
    """Standard deviation of the normal initialisation of the embeddings."""
    hidden: tuple[int, ...] = (400, 400, 400)
    """Widths of the deep part's hidden layers (ReLU)."""
    dropout: float = 0.2
    """Dropout after every hidden layer while training."""
    batch_norm: bool = True
    """Batch normalisation before every hidden ReLU."""
    dense_init: Literal["torch", "xavier"] = "torch"
    """Initialisation of every dense layer (the MLP and DCN-V2's cross layers): ``torch`` is
    PyTorch's default (uniform with Kaiming-style bounds, small random biases); ``xavier`` draws the
    weights from Glorot and Bengio's normal (AISTATS 2010) and zeroes the biases, as FuxiCTR/BARS
    do. On Frappe's published split ``xavier`` raised the validation AUC of DeepFM on both seeds
    tried (configs/frappe/deepfm.toml uses it); the default stays ``torch`` so that earlier numbers
    reproduce."""
    batch_size: int = 1024
    embedding_reg: float = 0.01
    learning_rate: float = 1e-3
    reg: float = 1e-5

    def validate(self) -> None:
        super().validate()
        self.check(self.embedding_size >= 1, "embedding_size", "must be >= 1")
        self.check(self.init_std > 0, "init_std", "must be > 0")
        check_hidden(self)
        self.check(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")


def xavier_dense_(net: torch.nn.Module) -> None:
    """Glorot-normal weights and zero biases for every ``nn.Linear`` of ``net`` (in place)."""
    for m in net.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)


def check_hidden(cfg: ModelConfig, name: str = "hidden") -> None:
    """Raise :class:`ConfigError` unless every layer size in ``cfg.<name>`` is >= 1."""
    hidden = getattr(cfg, name)
    if not all(h >= 1 for h in hidden):
        raise ConfigError(f"{type(cfg).__name__}.{name} = {hidden!r}: layer sizes must be >= 1")
