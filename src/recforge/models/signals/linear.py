"""``implicit-to-explicit-linear``: ridge regression of ratings on implicit-signal features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recforge.config import FitOptions
from recforge.models.signals.base import SignalConfig, SignalRatingModel

__all__ = ["ImplicitToExplicitLinear", "LinearSignalConfig"]


@dataclass(frozen=True)
class LinearSignalConfig(SignalConfig):
    """Hyperparameters of :class:`ImplicitToExplicitLinear`."""

    reg: float = 1.0
    """L2 penalty on the weights (not on the intercept), in units of training rows."""

    def validate(self) -> None:
        super().validate()
        self.check(self.reg >= 0, "reg", "must be >= 0")


class ImplicitToExplicitLinear(SignalRatingModel):
    """The classical baseline of the implicit-to-explicit models: ridge regression on the same features.

    ``r_ui ~ w0 + w . x_ui``, with ``x_ui`` the standardised features of
    :mod:`recforge.models.signals._features` (the pair's transformed signals, the user's and
    item's signal means and row counts, their shrunk mean ratings), minimising
    ``sum (r_ui - w0 - w . x_ui)^2 + reg * |w|^2`` over the rated rows, in closed form. Mapping
    implicit behaviour to ratings by regression follows Parra and Amatriain, "Walk the Talk:
    Analyzing the Relation between Implicit and Explicit Feedback for Preference Elicitation"
    (UMAP 2011), who fit a linear (mixed) model of ratings on play counts, recency and global
    popularity; see :class:`~recforge.models.signals.mlp.ImplicitToExplicit` for the neural model
    and the other references.
    """

    name = "implicit-to-explicit-linear"
    config_class = LinearSignalConfig

    def _fit_regressor(self, x: np.ndarray, y: np.ndarray, options: FitOptions) -> None:
        cfg: LinearSignalConfig = self.config  # type: ignore[assignment]
        xd = x.astype(np.float64)
        yd = y.astype(np.float64)
        mean = float(yd.mean())
        # standardised columns have mean 0 over the training rows, so the intercept is the mean
        gram = xd.T @ xd + cfg.reg * np.eye(xd.shape[1])
        self.weights_ = np.linalg.lstsq(gram, xd.T @ (yd - mean), rcond=None)[0]
        self.intercept_ = mean

    def _regress(self, x: np.ndarray) -> np.ndarray:
        return float(self.intercept_) + x.astype(np.float64) @ self.weights_
