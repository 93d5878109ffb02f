"""The one negative sampler: items a user has not interacted with, drawn in numpy.

Every sampled-negative path of recforge draws here: the ``loo-sampled`` protocol's candidate
lists, the pointwise/pairwise batches of the torch models, the sequential models' BCE negatives
and the extra negative rows of CTR training. (BPR keeps its own sampler inside its numba epoch
kernel for speed; a test checks that its draws follow the same distribution.)

Two kinds of draw:

- ``replace=True`` (training negatives): every draw is independent, ``"uniform"`` over all items
  or by ``"popularity"`` (probability proportional to ``count ** alpha``), and a draw that is one
  of the user's positives is redrawn. Positives are tested by a binary search over the sorted
  keys ``user * n_items + item``, vectorised over all draws; after ``max_rounds`` redraw rounds
  the few rows left draw exactly from their user's complement. The result never holds a positive.
- ``replace=False`` (evaluation candidates): ``n`` *distinct* unseen items per user, uniformly, by
  drawing ranks among the unseen items and mapping them past the user's sorted positives.

The random stream is part of the contract: the same generator state gives the same draws, and the
uniform draws consume ``rng.integers(0, n_items, ...)`` exactly as the samplers this module
replaced did, so seeded results did not change.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

from recforge.errors import ConfigError, DataError

Distribution = Literal["uniform", "popularity"]

__all__ = ["Distribution", "UnseenSampler", "sample_unseen"]


def _generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class UnseenSampler:
    """Draws items that a user has not interacted with; build once, :meth:`sample` every epoch.

    Building sorts the positives' keys (and the popularity distribution) once, so that repeated
    draws (one call per training epoch) cost only the draws and their binary searches.

    Args:
        seen: users x items matrix whose stored entries are the positives (values ignored); None
            when nothing is excluded (then ``n_items`` gives the number of items).
        rng: A numpy generator (used as is, so its state advances) or a seed.
        distribution: ``"uniform"`` over all items, or ``"popularity"`` (probability proportional
            to ``count ** alpha`` of the items' stored entries in ``seen``; items without any are
            then never drawn).
        alpha: Exponent on the popularity counts (0.75 is word2vec's choice; 0 = every item seen
            at least once equally likely).
        n_items: Number of items when ``seen`` is None.
        max_rounds: Redraw rounds before the exact fallback; None redraws until done (every user
            sampled for must then have an unseen item).

    Raises:
        DataError: There are no items, or popularity sampling has no counts.
        ConfigError: An unknown ``distribution``.
    """

    def __init__(
        self,
        seen: sp.spmatrix | None,
        rng: np.random.Generator | int | None = None,
        *,
        distribution: Distribution = "uniform",
        alpha: float = 1.0,
        n_items: int | None = None,
        max_rounds: int | None = 50,
    ) -> None:
        if distribution not in ("uniform", "popularity"):
            raise ConfigError(f"distribution must be 'uniform' or 'popularity', not {distribution!r}")
        if seen is None:
            if n_items is None:
                raise ConfigError("n_items is required when seen is None")
            seen = sp.csr_matrix((1, int(n_items)), dtype=np.float32)
        csr = sp.csr_matrix(seen, copy=True)
        csr.sum_duplicates()
        csr.sort_indices()
        self.n_users, self.n_items = csr.shape
        if self.n_items == 0:
            raise DataError("cannot sample negatives: there are no items")
        self.seen = csr
        rows = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(csr.indptr))
        self._keys = rows * self.n_items + csr.indices.astype(np.int64)  # sorted: CSR is row-major
        self.distribution = distribution
        self.rng = _generator(rng)
        self.max_rounds = max_rounds
        self._cdf: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        if distribution == "popularity":
            counts = np.bincount(csr.indices, minlength=self.n_items).astype(np.float64)
            w = counts**alpha if alpha != 0 else (counts > 0).astype(np.float64)
            if w.sum() <= 0:
                raise DataError("cannot sample by popularity: no item has any interaction")
            self._weights = w
            cdf = np.cumsum(w)
            self._cdf = cdf / cdf[-1]

    def is_seen(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean array: whether each (user, item) pair is a stored entry of ``seen``."""
        q = np.asarray(users, dtype=np.int64) * self.n_items + np.asarray(items, dtype=np.int64)
        if len(self._keys) == 0:
            return np.zeros(q.shape, bool)
        pos = np.searchsorted(self._keys, q)
        return self._keys[np.minimum(pos, len(self._keys) - 1)] == q

    def sample(self, users: np.ndarray, n: int = 1, *, replace: bool = True) -> np.ndarray:
        """``n`` unseen items for each entry of ``users``.

        Args:
            users: User indices (rows of ``seen``; repeats allowed).
            n: Items per user.
            replace: Independent draws (an item may repeat within a row); False draws ``n``
                distinct items per row (``"uniform"`` only).

        Returns:
            int64 array of shape ``(len(users), n)``.

        Raises:
            DataError: A user index is out of range, or a user has too few unseen items.
        """
        users = np.asarray(users, dtype=np.int64)
        if n < 0:
            raise ConfigError(f"n must be >= 0, got {n}")
        if users.size and (users.min() < 0 or users.max() >= self.n_users):
            raise DataError("user index out of range for the negative sampler")
        if not replace:
            return self._distinct(users, n)
        if len(self._keys) == 0:  # nothing to exclude: the draws are the answer
            return self._draw(len(users) * n).reshape(len(users), n)
        flat_u = np.repeat(users, n)
        out = self._draw(len(flat_u))
        todo = np.flatnonzero(self.is_seen(flat_u, out))
        rounds = 0
        while len(todo) and (self.max_rounds is None or rounds < self.max_rounds):
            out[todo] = self._draw(len(todo))
            todo = todo[self.is_seen(flat_u[todo], out[todo])]
            rounds += 1
        if len(todo):
            self._exact(flat_u, out, todo)
        return out.reshape(len(users), n)

    def _draw(self, n: int) -> np.ndarray:
        if self._cdf is None:
            return self.rng.integers(0, self.n_items, size=n, dtype=np.int64)
        out = np.searchsorted(self._cdf, self.rng.random(n), side="right")
        return np.minimum(out, self.n_items - 1).astype(np.int64)

    def _exact(self, flat_u: np.ndarray, out: np.ndarray, todo: np.ndarray) -> None:
        # rare: users whose positives cover nearly all the probability mass
        csr = self.seen
        for u in np.unique(flat_u[todo]):
            rows = todo[flat_u[todo] == u]
            mask = np.ones(self.n_items, bool)
            mask[csr.indices[csr.indptr[u] : csr.indptr[u + 1]]] = False
            cand = np.flatnonzero(mask)
            if len(cand) == 0:
                raise DataError(f"user index {u} has interacted with every item: no negative to sample")
            p = None
            if self._weights is not None and self._weights[cand].sum() > 0:
                p = self._weights[cand] / self._weights[cand].sum()
            out[rows] = self.rng.choice(cand, size=len(rows), p=p)

    def _distinct(self, users: np.ndarray, n: int) -> np.ndarray:
        if self.distribution != "uniform":
            raise ConfigError("distinct draws (replace=False) are uniform only")
        csr = self.seen
        out = np.empty((len(users), n), dtype=np.int64)
        for row, u in enumerate(users):
            pos = csr.indices[csr.indptr[u] : csr.indptr[u + 1]]
            free = self.n_items - len(pos)
            if free < n:
                raise DataError(f"user index {u} has only {free} unseen items; cannot sample {n} negatives")
            # draw ranks among the unseen items, then map ranks to item ids past the sorted positives
            r = np.sort(self.rng.choice(free, size=n, replace=False))
            shift = np.searchsorted(pos - np.arange(len(pos)), r, side="right")
            out[row] = self.rng.permutation(r + shift)
        return out


def sample_unseen(
    seen: sp.spmatrix | None,
    users: np.ndarray,
    n: int,
    rng: np.random.Generator | int | None,
    *,
    distribution: Distribution = "uniform",
    alpha: float = 1.0,
    replace: bool = True,
    n_items: int | None = None,
    max_rounds: int | None = 50,
) -> np.ndarray:
    """``n`` items per user that the user has not interacted with (one-shot :class:`UnseenSampler`).

    Args:
        seen: users x items matrix of positives (stored entries; values ignored), or None for no
            exclusions (with ``n_items``).
        users: User indices, one output row each.
        n: Items per user.
        rng: A numpy generator (its state advances) or a seed.
        distribution: ``"uniform"`` or ``"popularity"`` (``count ** alpha``).
        alpha: Popularity exponent.
        replace: False draws ``n`` distinct items per user (evaluation candidates).
        n_items: Number of items when ``seen`` is None.
        max_rounds: Redraw rounds before drawing exactly from the complement (None: no limit).

    Returns:
        int64 array of shape ``(len(users), n)``; never an item stored in the user's row of ``seen``.

    Raises:
        DataError: A user index is out of range or a user has too few unseen items.

    Example:
        >>> import scipy.sparse as sp
        >>> seen = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 1]]))
        >>> sorted(sample_unseen(seen, np.array([0]), 2, 0, replace=False)[0].tolist())
        [2, 3]
    """
    sampler = UnseenSampler(seen, rng, distribution=distribution, alpha=alpha, n_items=n_items,
                            max_rounds=max_rounds)
    return sampler.sample(users, n, replace=replace)
