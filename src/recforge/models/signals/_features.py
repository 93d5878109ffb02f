"""The feature rows of the implicit-to-explicit models: one per (user, item) pair, from signals.

For a pair ``(u, i)`` with implicit signals ``s_1..s_S`` on its row (for a pair without a row, the
behaviour expected of it: :meth:`FeatureTable.expected_signals`) the features are, with
``t(s) = log1p(max(s, 0))`` for counts and durations and ``s`` itself for binary signals (NaN = 0):

- the pair's own ``t(s_k)`` (S values);
- the user's mean ``t(s_k)`` over their rows and the item's mean over its rows (2 S values): what
  "a lot" means for this user (heavy and light users) and this item (long and short items);
- ``log1p`` of the user's and the item's number of rows;
- with ``rating_aggregates``: the user's and the item's shrunk mean rating
  ``(sum r + shrinkage * mu) / (n + shrinkage)`` and ``log1p(n)`` of their ratings. On a rated
  training row the row's own rating is left out of its user's and item's sums (leave-one-out), so
  a training row looks exactly as it would if its rating were missing, the case the model predicts.

Pairs of a user or an item without rows (index ``-1``) get the population's averages for the
unknown side. The columns are standardised with the training rows' means and deviations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FeatureTable", "transform_signals"]

_LOG_KINDS = ("count", "duration")


def transform_signals(columns: list[np.ndarray], kinds: list[str], n: int) -> np.ndarray:
    """``(n, S)`` float32 of ``n`` rows' transformed signals: ``log1p`` of counts and durations,
    binary (and other) signals as they are, NaN = 0."""
    out = np.zeros((n, len(columns)), dtype=np.float32)
    for k, (col, kind) in enumerate(zip(columns, kinds)):
        x = np.nan_to_num(np.asarray(col, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        out[:, k] = np.log1p(np.maximum(x, 0.0)) if kind in _LOG_KINDS else x
    return out


@dataclass
class FeatureTable:
    """Per-user and per-item aggregates of a fitted log and the standardisation of the features.

    Build it with :meth:`build`; :meth:`features` gives the standardised rows of any pairs.
    """

    user_mean: np.ndarray  # (n_users, S) mean transformed signal per user
    item_mean: np.ndarray  # (n_items, S)
    user_rows: np.ndarray  # (n_users,) rows per user
    item_rows: np.ndarray  # (n_items,)
    user_sum: np.ndarray  # (n_users,) sum of the user's observed ratings
    user_n: np.ndarray  # (n_users,) number of the user's observed ratings
    item_sum: np.ndarray
    item_n: np.ndarray
    mu: float
    shrinkage: float
    ratings: bool
    center: np.ndarray | None = None
    scale: np.ndarray | None = None

    @classmethod
    def build(cls, u: np.ndarray, i: np.ndarray, signals: np.ndarray, target: np.ndarray, n_users: int,
              n_items: int, *, shrinkage: float, ratings: bool) -> FeatureTable:
        """Aggregates of a log: ``signals`` transformed ``(n, S)``, ``target`` the ratings (NaN = missing)."""
        rows_u = np.bincount(u, minlength=n_users).astype(np.float64)
        rows_i = np.bincount(i, minlength=n_items).astype(np.float64)
        s = signals.shape[1]
        um = np.zeros((n_users, s))
        im = np.zeros((n_items, s))
        for k in range(s):
            um[:, k] = np.bincount(u, weights=signals[:, k], minlength=n_users)
            im[:, k] = np.bincount(i, weights=signals[:, k], minlength=n_items)
        um /= np.maximum(rows_u, 1.0)[:, None]
        im /= np.maximum(rows_i, 1.0)[:, None]
        rated = np.isfinite(target)
        r = np.where(rated, target, 0.0)
        mu = float(r[rated].mean()) if rated.any() else 0.0
        return cls(um.astype(np.float32), im.astype(np.float32), rows_u, rows_i,
                   np.bincount(u, weights=r, minlength=n_users),
                   np.bincount(u, weights=rated, minlength=n_users),
                   np.bincount(i, weights=r, minlength=n_items),
                   np.bincount(i, weights=rated, minlength=n_items),
                   mu, float(shrinkage), bool(ratings))

    @property
    def width(self) -> int:
        """Number of feature columns."""
        return 3 * self.user_mean.shape[1] + 2 + (4 if self.ratings else 0)

    def raw(self, u: np.ndarray, i: np.ndarray, own: np.ndarray, own_rating: np.ndarray) -> np.ndarray:
        """Unstandardised features of pairs: ``own`` the pairs' transformed signals (zeros for pairs
        without a row), ``own_rating`` the rating each pair's own row holds in the fitted log (NaN:
        none), left out of the rating aggregates."""
        ku, ki = u >= 0, i >= 0
        uu, ii = np.maximum(u, 0), np.maximum(i, 0)
        avg_u = self.user_mean.mean(axis=0) if len(self.user_mean) else np.zeros(own.shape[1])
        avg_i = self.item_mean.mean(axis=0) if len(self.item_mean) else np.zeros(own.shape[1])
        cols = [
            own,
            np.where(ku[:, None], self.user_mean[uu], avg_u),
            np.where(ki[:, None], self.item_mean[ii], avg_i),
            np.log1p(np.where(ku, self.user_rows[uu], 0.0))[:, None],
            np.log1p(np.where(ki, self.item_rows[ii], 0.0))[:, None],
        ]
        if self.ratings:
            mine = np.isfinite(own_rating)
            r = np.where(mine, own_rating, 0.0)
            su = np.where(ku, self.user_sum[uu], 0.0) - r
            nu = np.where(ku, self.user_n[uu], 0.0) - mine
            si = np.where(ki, self.item_sum[ii], 0.0) - r
            ni = np.where(ki, self.item_n[ii], 0.0) - mine
            k = self.shrinkage
            cols += [((su + k * self.mu) / np.maximum(nu + k, 1e-9))[:, None], np.log1p(nu)[:, None],
                     ((si + k * self.mu) / np.maximum(ni + k, 1e-9))[:, None], np.log1p(ni)[:, None]]
        return np.hstack(cols).astype(np.float32)

    def expected_signals(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """The transformed signals expected of pairs without a row: ``user mean + item mean - overall
        mean`` of each transformed signal (an additive baseline, floored at 0), with the population's
        mean for an unknown side. A pair the user never touched is predicted as if the user had
        consumed the item as they and its other users usually do, not as a zero-play row, which
        the model never saw in training."""
        ku, ki = u >= 0, i >= 0
        w_u = np.maximum(self.user_rows, 0.0)
        overall = (w_u[:, None] * self.user_mean).sum(axis=0) / max(w_u.sum(), 1.0)
        um = (np.where(ku[:, None], self.user_mean[np.maximum(u, 0)], overall) if len(self.user_mean)
              else overall)
        im = (np.where(ki[:, None], self.item_mean[np.maximum(i, 0)], overall) if len(self.item_mean)
              else overall)
        return np.maximum(um + im - overall, 0.0).astype(np.float32).reshape(len(u), -1)

    def standardise_from(self, x: np.ndarray) -> None:
        """Set the standardisation from training feature rows (constant columns are left unscaled)."""
        self.center = x.mean(axis=0).astype(np.float32)
        std = x.std(axis=0)
        self.scale = np.where(std > 1e-8, std, 1.0).astype(np.float32)

    def features(self, u: np.ndarray, i: np.ndarray, own: np.ndarray, own_rating: np.ndarray) -> np.ndarray:
        """Standardised features of pairs (see :meth:`raw`)."""
        x = self.raw(u, i, own, own_rating)
        if self.center is not None and self.scale is not None:
            x = (x - self.center) / self.scale
        return x.astype(np.float32)
