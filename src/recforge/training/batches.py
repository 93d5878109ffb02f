"""Torch-side data for neural models: in-memory tensor batchers, negative samplers, rating rows.

Nothing here builds a per-sample ``Dataset.__getitem__``: each epoch is a handful of whole-array
operations (one permutation, one gather) followed by contiguous slices, so an epoch over a million
interactions costs milliseconds of Python. Batchers are plain iterables that Lightning accepts as
dataloaders (``num_workers=0``; the data already sits in memory, on the training device).

:class:`NegativeSampler` adds the pointwise and pairwise training layouts to the one negative
sampler, :class:`recforge.data.sampling.UnseenSampler`, which never returns an item the user
interacted with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from recforge.data.sampling import UnseenSampler

EpochSource = Callable[[int], Sequence[torch.Tensor]]

__all__ = [
    "FixedBatches",
    "NegativeSampler",
    "RatingRows",
    "TensorBatcher",
    "torch_generator",
]


def torch_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded from ``seed`` (a random seed when None)."""
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed) & 0x7FFF_FFFF_FFFF_FFFF)
    return gen


class TensorBatcher:
    """Mini-batches of row-aligned tensors, shuffled once per epoch with a seeded generator.

    Either give fixed ``tensors`` (the same rows every epoch) or a ``source`` callable that builds
    the epoch's tensors from the epoch number (fresh negatives every epoch). The permutation is drawn
    on the CPU from ``generator`` so a run on CPU and one on GPU see the same batches.

    Args:
        tensors: Tensors with the same first dimension.
        batch_size: Rows per batch (the last batch may be smaller unless ``drop_last``).
        shuffle: Permute the rows every epoch.
        generator: Seeded CPU generator for the permutation.
        device: Where the batches are delivered; tensors are moved there once per epoch.
        source: ``epoch -> tensors``, called at the start of every epoch instead of ``tensors``.
        drop_last: Leave out the last, incomplete batch.
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        source: EpochSource | None = None,
        drop_last: bool = False,
    ) -> None:
        if (source is None) == (not tensors):
            raise ValueError("give either tensors or source")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator if generator is not None else torch_generator(None)
        self.device = torch.device(device) if device is not None else None
        self.drop_last = drop_last
        self._source = source
        self._fixed = tuple(self._to_device(t) for t in tensors) if tensors else None
        if self._fixed is not None:
            _check_rows(self._fixed)
        self._pending: tuple[torch.Tensor, ...] | None = None
        self.epoch = 0

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device) if self.device is not None else t

    def _epoch_tensors(self) -> tuple[torch.Tensor, ...]:
        if self._fixed is not None:
            return self._fixed
        if self._pending is None:
            out = tuple(self._to_device(torch.as_tensor(t)) for t in self._source(self.epoch))  # type: ignore[misc]
            _check_rows(out)
            self._pending = out
        return self._pending

    @property
    def n_rows(self) -> int:
        """Rows in the current (or next) epoch."""
        return int(self._epoch_tensors()[0].shape[0])

    def __len__(self) -> int:
        n = self.n_rows
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        tensors = self._epoch_tensors()
        self._pending = None
        self.epoch += 1
        n = int(tensors[0].shape[0])
        if self.shuffle and n > 1:
            perm = torch.randperm(n, generator=self.generator).to(tensors[0].device)
            tensors = tuple(t.index_select(0, perm) for t in tensors)
        stop = n - n % self.batch_size if self.drop_last else n
        for s in range(0, stop, self.batch_size):
            yield tuple(t[s : s + self.batch_size] for t in tensors)


class FixedBatches:
    """An iterable over prebuilt batches (a plain list would look like several loaders to Lightning)."""

    def __init__(self, batches: Sequence[object]) -> None:
        self._batches = list(batches)

    def __len__(self) -> int:
        return len(self._batches)

    def __iter__(self) -> Iterator[object]:
        return iter(self._batches)


def _check_rows(tensors: Sequence[torch.Tensor]) -> None:
    n = {int(t.shape[0]) for t in tensors}
    if len(n) != 1:
        raise ValueError(f"tensors differ in their number of rows: {sorted(n)}")


class NegativeSampler(UnseenSampler):
    """:class:`~recforge.data.sampling.UnseenSampler` plus the torch models' training layouts.

    Draws items a user has not interacted with, uniformly or by popularity (see
    :mod:`recforge.data.sampling`, the one sampler), and builds pointwise and pairwise rows.

    Args:
        positives: users x items matrix whose stored entries are the positives (values ignored).
        distribution: ``"uniform"`` over all items, or ``"popularity"`` (probability proportional
            to ``count ** alpha``; items never seen in ``positives`` are then never drawn).
        alpha: Exponent on the popularity counts (0.75 is word2vec's choice).
        seed: Seed of the numpy generator (or pass ``rng``).
        rng: A numpy generator to draw from.
        max_rounds: Redraw rounds before the exact fallback.
    """

    def __init__(
        self,
        positives: sp.spmatrix,
        *,
        distribution: Literal["uniform", "popularity"] = "uniform",
        alpha: float = 1.0,
        seed: int | None = None,
        rng: np.random.Generator | None = None,
        max_rounds: int = 50,
    ) -> None:
        super().__init__(positives, rng if rng is not None else np.random.default_rng(seed),
                         distribution=distribution, alpha=alpha, max_rounds=max_rounds)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean array: whether each (user, item) pair is a positive."""
        return self.is_seen(users, items)

    def pointwise(
        self, users: np.ndarray, items: np.ndarray, ratio: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positives with label 1 followed by ``ratio`` sampled negatives per positive with label 0.

        Returns ``(users, items, labels)`` as int64, int64 and float32 arrays.
        """
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        neg = self.sample(users, ratio).ravel()
        uu = np.concatenate([users, np.repeat(users, ratio)])
        ii = np.concatenate([items, neg])
        labels = np.concatenate([np.ones(len(users), np.float32), np.zeros(len(neg), np.float32)])
        return uu, ii, labels

    def pairwise(
        self, users: np.ndarray, pos_items: np.ndarray, n: int = 1
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Triples ``(user, positive, negative)``; with ``n > 1`` each positive appears ``n`` times."""
        users = np.asarray(users, dtype=np.int64)
        pos_items = np.asarray(pos_items, dtype=np.int64)
        neg = self.sample(users, n).ravel()
        return np.repeat(users, n), np.repeat(pos_items, n), neg


class RatingRows:
    """Mini-batches of rows of a sparse rating matrix, for autoencoders such as AutoRec.

    Item-based AutoRec iterates the rows of the items x users matrix, user-based the rows of
    users x items. The matrix stays sparse on the device (CSR as three tensors); a batch is built
    by tensor ops on the row pointers, never by a Python loop over rows. Two layouts:

    - ``"sparse"``: ``(rows, offsets, cols, values, local_rows)``: the batch's stored entries, with
      ``offsets`` the start of each row's entries (the layout ``embedding_bag`` takes) and
      ``local_rows`` the batch position of each entry. A loss over these entries is a loss over
      observed ratings only, at a cost proportional to the ratings rather than the row width.
    - ``"dense"``: ``(rows, values, mask)`` with ``mask`` 1 where a rating is stored (also a stored
      0) and 0 elsewhere.

    Args:
        matrix: The rows x columns sparse matrix of ratings.
        batch_size: Rows per batch.
        shuffle: Permute the rows every epoch.
        generator: Seeded CPU generator for the permutation.
        device: Where the batches are delivered.
        rows: Only iterate these rows (default: rows with at least one rating).
        layout: ``"sparse"`` or ``"dense"``.
    """

    def __init__(
        self,
        matrix: sp.spmatrix,
        *,
        batch_size: int,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        rows: np.ndarray | None = None,
        layout: Literal["sparse", "dense"] = "sparse",
    ) -> None:
        if layout not in ("sparse", "dense"):
            raise ValueError(f"layout must be 'sparse' or 'dense', not {layout!r}")
        csr = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        csr.sum_duplicates()
        self.shape = csr.shape
        self.nnz = int(csr.nnz)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.layout = layout
        self.generator = generator if generator is not None else torch_generator(None)
        self.indptr = torch.from_numpy(csr.indptr.astype(np.int64)).to(self.device)
        self.indices = torch.from_numpy(csr.indices.astype(np.int64)).to(self.device)
        self.data = torch.from_numpy(csr.data).to(self.device)
        if rows is None:
            rows = np.flatnonzero(np.diff(csr.indptr) > 0)
        self.rows = torch.as_tensor(np.asarray(rows, dtype=np.int64))

    def entries(self, idx: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, ...]:
        """``(offsets, cols, values, local_rows)`` of the stored entries of rows ``idx``."""
        idx = torch.as_tensor(idx, dtype=torch.long).to(self.device)
        starts = self.indptr[idx]
        lens = self.indptr[idx + 1] - starts
        offsets = torch.cumsum(lens, 0) - lens
        total = int(lens.sum())
        local = torch.repeat_interleave(torch.arange(len(idx), device=self.device), lens)
        ent = (starts - offsets)[local] + torch.arange(total, device=self.device)
        return offsets, self.indices[ent], self.data[ent], local

    def get(self, idx: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense ``(values, mask)`` of rows ``idx``."""
        n = len(idx)
        _, cols, vals, local = self.entries(idx)
        dense = torch.zeros(n, self.shape[1], device=self.device)
        mask = torch.zeros(n, self.shape[1], device=self.device)
        dense[local, cols] = vals
        mask[local, cols] = 1.0
        return dense, mask

    def __len__(self) -> int:
        return int(-(-len(self.rows) // self.batch_size))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        rows = self.rows
        if self.shuffle and len(rows) > 1:
            rows = rows[torch.randperm(len(rows), generator=self.generator)]
        rows = rows.to(self.device)
        for s in range(0, len(rows), self.batch_size):
            idx = rows[s : s + self.batch_size]
            if self.layout == "sparse":
                yield (idx, *self.entries(idx))
            else:
                yield (idx, *self.get(idx))
