"""Scoring users in blocks whose size comes from a memory budget.

Full-ranking evaluation and the batch job score users block by block (never the whole users x
items matrix). :func:`plan_blocks` turns a budget (``--memory-budget 8GB``) into a block size:
what stays resident (the fitted model's arrays, the training matrix, the output) is subtracted
from the budget, and the rest is divided by what one user costs while it is scored (a dense row of
float64 scores, the top-k selection's copy of it, and the output rows). A budget smaller than the
resident part is refused up front with a one-line error that says how much is needed.

:func:`score_block` is the unit of work: one block of user indices in, top-k item indices and
scores out. The evaluation and batch loops hand their blocks to :func:`map_blocks`, which scores
them with the current :class:`BlockExecutor`: in this process by default, or on the workers of a
distributed backend installed with :func:`block_executor` (``recforge evaluate|batch --backend
ray``), which run the same :func:`score_block` on the same blocks, so the numbers cannot differ by
backend.

:func:`check_fit_memory` refuses, before fitting, a model whose fit alone would exceed the budget
(EASE's dense item x item matrices), naming the memory it would need and the alternative.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from recforge.errors import ConfigError

_BUDGET: contextvars.ContextVar[int | None] = contextvars.ContextVar("recforge_memory_budget", default=None)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
#: Most users per block whatever the budget: beyond this a block is no faster, only bigger.
MAX_BLOCK_USERS = 8192


def parse_bytes(text: str | int | float) -> int:
    """``"8GB"`` (10^9), ``"8GiB"`` (2^30), ``"512MB"``, ``"1.5g"`` or a number of bytes, as an int.

    Raises:
        ConfigError: Not a size, or not positive.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
        if not m or m.group(2).lower() not in _UNITS:
            raise ConfigError(f"memory budget {text!r}: not a size (examples: 8GB, 512MB, 16GiB)")
        value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value <= 0:
        raise ConfigError(f"memory budget {text!r}: must be positive")
    return int(value)


def format_bytes(n: float) -> str:
    """Bytes as ``"3.2 GB"`` (powers of 10, like the budget's ``GB``)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


@contextlib.contextmanager
def memory_budget(budget: int | str | None) -> Iterator[int | None]:
    """Within the block, evaluation and batch scoring plan their blocks from ``budget`` (None: no budget)."""
    value = None if budget is None else parse_bytes(budget)
    token = _BUDGET.set(value)
    try:
        yield value
    finally:
        _BUDGET.reset(token)


def current_budget() -> int | None:
    """The budget set by the innermost :func:`memory_budget`, or None."""
    return _BUDGET.get()


def nbytes(obj: Any) -> int:
    """Bytes held by an array, a sparse matrix, or the arrays of a dict/list/tuple (others: 0)."""
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes) if not isinstance(obj.base, np.memmap) and not isinstance(obj, np.memmap) else 0
    if sp.issparse(obj):
        return sum(nbytes(getattr(obj, a, None)) for a in ("data", "indices", "indptr", "row", "col"))
    if isinstance(obj, dict):
        return sum(nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(v) for v in obj)
    return 0


def model_nbytes(model: Any) -> int:
    """Bytes of a fitted model's learned arrays (its :meth:`get_state`); memory-mapped arrays count 0."""
    return nbytes(model.get_state())


@dataclass(frozen=True)
class BlockPlan:
    """How a scoring job splits its users.

    Attributes:
        block_users: Users per block.
        n_blocks: Blocks for the job's users.
        resident: Bytes held for the whole job (model, seen matrix, outputs).
        per_user: Bytes one user costs while its block is scored.
        budget: The budget the plan was made for (None: the default block size).
    """

    block_users: int
    n_blocks: int
    resident: int
    per_user: int
    budget: int | None

    def describe(self) -> str:
        if self.budget is None:
            return f"{self.n_blocks} blocks of {self.block_users} users (no memory budget)"
        return (f"{self.n_blocks} blocks of {self.block_users} users within {format_bytes(self.budget)} "
                f"({format_bytes(self.resident)} resident, {format_bytes(self.per_user)} per user in a block)")


def per_user_bytes(n_items: int, k: int) -> int:
    """Scoring cost of one user: float64 scores and the top-k pass's copy (16 bytes an item), the
    exclusion row and the output (``k`` indices, scores and, in the batch job, row tuples)."""
    return 16 * n_items + 256 * k + 64


def plan_blocks(model: Any, n_users: int, k: int, budget: int | None = None, *, default: int = 2048,
                extra_resident: int = 0) -> BlockPlan:
    """The block size for scoring ``n_users`` users of a fitted ``model`` at list length ``k``.

    Args:
        model: A fitted recommender (its arrays and ``seen_`` count as resident).
        n_users: Users the job scores.
        k: List length.
        budget: Bytes; None reads :func:`current_budget`, and without one the block is ``default``.
        default: Block size without a budget.
        extra_resident: Further bytes the caller holds for the whole job (e.g. the test matrix).

    Raises:
        ConfigError: The budget cannot hold the resident part and one user, stating what is needed.
    """
    budget = current_budget() if budget is None else budget
    n_items = len(model.items_)
    per_user = per_user_bytes(n_items, k)
    resident = model_nbytes(model) + int(extra_resident) + n_users * k * 16
    if budget is None:
        block = max(1, min(default, n_users))
    else:
        room = budget - resident
        if room < per_user:
            raise ConfigError(
                f"memory budget {format_bytes(budget)} is too small to score {model.name}: the model and "
                f"outputs need {format_bytes(resident)} resident plus {format_bytes(per_user)} per user "
                f"(at least {format_bytes(resident + per_user)}); raise --memory-budget"
            )
        block = int(max(1, min(MAX_BLOCK_USERS, room // per_user, max(n_users, 1))))
    n_blocks = -(-n_users // block) if n_users else 0
    return BlockPlan(block, n_blocks, resident, per_user, budget)


def score_block(model: Any, users: np.ndarray, k: int, *, exclude_seen: bool = True,
                exclude: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` item indices and scores for one block of user indices (``Recommender.recommend_indices``).

    The unit of work of every backend: a worker needs the fitted model and the block's indices.
    ``model`` may also be a serving pipeline (its ``recommend_indices(users, k)``; it takes no
    exclusion options, so they must be left at their defaults).
    """
    users = np.asarray(users, dtype=np.int64)
    if exclude_seen and exclude is None:
        return model.recommend_indices(users, k)
    return model.recommend_indices(users, k, exclude_seen=exclude_seen, exclude=exclude)


def iter_blocks(users: np.ndarray, plan: BlockPlan) -> Iterator[np.ndarray]:
    """The plan's blocks of ``users``, in order."""
    for s in range(0, len(users), plan.block_users):
        yield users[s : s + plan.block_users]


# ---------------------------------------------------------------------------------------- executors
class BlockExecutor(Protocol):
    """Where blocks are scored: :class:`LocalExecutor` in this process (the default), or a
    distributed backend (:mod:`recforge.distributed.scoring`, the Ray actor pool).

    ``map`` takes a scorer (a fitted model, or a serving pipeline: anything with
    ``recommend_indices(users, k)``) and the blocks of user indices, and yields ``(users,
    item indices, scores)`` for each block, in the order of the blocks, exactly as
    ``scorer.recommend_indices(users, k)`` would return them. It may read ahead of the block it
    yields (a distributed backend keeps its workers busy), so the caller must use the yielded users.
    """

    def map(self, scorer: Any, blocks: Iterable[np.ndarray], k: int
            ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]: ...


class LocalExecutor:
    """Blocks scored one after the other in this process (:func:`score_block`)."""

    def map(self, scorer: Any, blocks: Iterable[np.ndarray], k: int
            ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for users in blocks:
            yield (users, *score_block(scorer, users, k))


_EXECUTOR: contextvars.ContextVar[BlockExecutor | None] = contextvars.ContextVar("recforge_block_executor",
                                                                                 default=None)


@contextlib.contextmanager
def block_executor(executor: BlockExecutor | None) -> Iterator[BlockExecutor]:
    """Within the block, full-ranking evaluation and the batch job score their blocks with
    ``executor`` (None: in this process)."""
    token = _EXECUTOR.set(executor)
    try:
        yield current_executor()
    finally:
        _EXECUTOR.reset(token)


def current_executor() -> BlockExecutor:
    """The executor set by the innermost :func:`block_executor`, else a :class:`LocalExecutor`."""
    return _EXECUTOR.get() or LocalExecutor()


def map_blocks(scorer: Any, blocks: Iterable[np.ndarray], k: int
               ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(users, item indices, scores)`` per block, scored by the current executor (see
    :class:`BlockExecutor`): the one loop the evaluation and the batch job share."""
    return current_executor().map(scorer, blocks, k)


# ---------------------------------------------------------------------------------------- fitting
def _ease_fit_bytes(config: Any, n_users: int, n_items: int, nnz: int) -> int:
    # the Gram matrix and its in-place inverse, then the weights (float64 up to 10k items, float32 above)
    itemsize = 8 if n_items <= 10_000 else 4
    return 2 * itemsize * n_items * n_items + 12 * nnz


#: Models whose fit needs memory that grows faster than the data: name -> bytes(config, users, items, nnz).
FIT_MEMORY: dict[str, tuple[Callable[[Any, int, int, int], int], str]] = {
    "ease": (_ease_fit_bytes, "use the sparse 'item-knn-implicit', 'rp3beta' or 'slim' models, or raise --memory-budget"),
}


def fit_memory(model: Any, n_users: int, n_items: int, nnz: int) -> int | None:
    """Bytes the model's fit needs beyond the data, for the models of :data:`FIT_MEMORY` (else None)."""
    entry = FIT_MEMORY.get(getattr(model, "name", ""))
    return None if entry is None else int(entry[0](model.config, n_users, n_items, nnz))


def check_fit_memory(model: Any, data: Any, budget: int | None = None) -> None:
    """Refuse, before fitting, a model whose fit would need more than the budget.

    Raises:
        ConfigError: One line: the memory needed, the budget and the alternative.
    """
    budget = current_budget() if budget is None else budget
    if budget is None:
        return
    need = fit_memory(model, data.n_users, data.n_items, len(data))
    if need is not None and need > budget:
        alt = FIT_MEMORY[model.name][1]
        raise ConfigError(
            f"{model.name} on {data.n_items:,} items needs about {format_bytes(need)} to fit (dense "
            f"{data.n_items:,} x {data.n_items:,} matrices), more than the memory budget of {format_bytes(budget)}: {alt}"
        )
