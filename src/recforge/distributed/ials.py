"""``ials`` on Ray: user and item shards solved by Ray actors, the other side broadcast.

One ALS sweep is two half-steps; in each, every row of one side is solved independently given the
other side's factors ``B`` and the Gram matrix ``G = B^T B + reg I`` (Hu, Koren and Volinsky,
ICDM 2008; the conjugate-gradient rows of Takacs, Pilaszy and Tikk, RecSys 2011). So the rows are
cut into ``workers`` shards of about equal cost (:func:`~recforge.models.factorization.ials.row_shards`,
``cost = per_row + per_nnz * nnz``), and each shard lives on one Ray actor with its rows'
observations and its own factor rows (the warm start of the CG solver):

1. the driver forms ``G`` from the item factors and broadcasts ``Y`` and ``G`` (``ray.put``, one copy
   per node in the object store);
2. every actor solves its user shard with the local solver's kernel
   (:func:`~recforge.models.factorization.ials.solve_half`) and returns the shard's rows;
3. the driver assembles ``X``, forms ``G`` from it and broadcasts ``X``; the actors solve their item
   shards; and so on, alternating, for ``epochs`` sweeps.

The actors run exactly the per-row arithmetic of the local solver on the same ``B`` and ``G``, so
for the same initialisation (same seed) the factors equal the local fit's up to float rounding
(the tests check ``assert_allclose`` at float32 tolerance). Bytes moved per sweep:
``(n_users + n_items) * k * 4`` out to every node and the same back, independent of the
number of interactions (which are shipped once, when the actors start).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from recforge.config import FitOptions
from recforge.distributed.train import check_cpus, connect_ray
from recforge.models.factorization.ials import row_shards, solve_rows

if TYPE_CHECKING:
    from recforge.models.factorization.ials import ImplicitALSConfig, Rows

__all__ = ["RayHalves", "shard_bounds"]


def shard_bounds(indptr: np.ndarray, per_row: float, per_nnz: float, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous row ranges ``[lo, hi)`` of about equal solve cost (empty ones dropped)."""
    return row_shards(indptr, per_row, per_nnz, shards)


def _slice_rows(mat: Rows, lo: int, hi: int) -> Rows:
    """The observations of rows ``lo:hi`` with a row pointer that starts at 0."""
    indptr, indices, vals = mat
    a, b = int(indptr[lo]), int(indptr[hi])
    # fresh arrays (not views at an offset): the compiled kernels' vectorised float32 sums may round
    # differently with the data's alignment, and a shard should compute what the whole solve does
    return indptr[lo : hi + 1] - a, indices[a:b].copy(), vals[a:b].copy()


class _ShardSolver:
    """A Ray actor's state: its user rows and item columns, and the current factors of both.

    Each half-step receives the broadcast factors of the other side and ``G``, solves its own rows
    in place (warm start) and returns them.
    """

    def __init__(self, solver: str, cg_steps: int, threads: int, per_row: float, per_nnz: float,
                 users: Rows, items: Rows, X: np.ndarray, Y: np.ndarray) -> None:
        self.solver, self.cg_steps, self.threads = solver, int(cg_steps), int(threads)
        self.per_row, self.per_nnz = per_row, per_nnz
        # the rows stay where Ray put them (read-only, shared with the node's object store); only
        # the factor rows the actor writes are its own copy
        self.sides: dict[str, tuple[Rows, np.ndarray]] = {
            side: (mat, np.array(A, dtype=np.float32)) for side, mat, A in (("users", users, X), ("items", items, Y))}

    def solve(self, side: str, B: np.ndarray, G: np.ndarray) -> np.ndarray:
        mat, A = self.sides[side]
        # B and G are read in place from the object store (the kernels' read-only specialisation
        # compiles once per machine, then loads from numba's cache): no per-actor copy of B
        solve_rows(self.solver, self.cg_steps, mat, A, B, G, per_row=self.per_row, per_nnz=self.per_nnz,
                   threads=self.threads)
        return A

    def ready(self) -> bool:
        return True


class RayHalves:
    """The iALS half-steps solved by ``options.workers`` Ray actors (a context manager).

    Args:
        cfg: The model's config (solver, CG steps).
        rows, cols: The users' CSR and the items' CSC observations (``alpha * r``).
        X, Y: The initial user and item factors (the shards start from them).
        options: ``workers``, ``address`` and ``threads`` (numba threads per actor; default 1, and
            each actor asks Ray for that many CPUs).
        per_row, per_nnz: The solve cost model that balances the shards.
    """

    def __init__(self, cfg: ImplicitALSConfig, rows: Rows, cols: Rows, X: np.ndarray, Y: np.ndarray,
                 options: FitOptions, per_row: float, per_nnz: float) -> None:
        threads = int(options.threads or 1)
        self.ray = connect_ray(options.address, options.workers * threads)
        ray = self.ray
        check_cpus(ray, options.workers, threads)
        self.bounds = {"users": shard_bounds(rows[0], per_row, per_nnz, options.workers),
                       "items": shard_bounds(cols[0], per_row, per_nnz, options.workers)}
        n = max(len(self.bounds["users"]), len(self.bounds["items"]))
        # pad the shorter list with empty ranges so that every actor has a user and an item shard
        for side, size in (("users", X.shape[0]), ("items", Y.shape[0])):
            self.bounds[side] += [(size, size)] * (n - len(self.bounds[side]))
        actor = ray.remote(num_cpus=threads)(_ShardSolver)
        self.actors: list[Any] = []
        for (ulo, uhi), (ilo, ihi) in zip(self.bounds["users"], self.bounds["items"], strict=True):
            self.actors.append(actor.remote(
                cfg.solver, cfg.cg_steps, threads, per_row, per_nnz,
                ray.put(_slice_rows(rows, ulo, uhi)), ray.put(_slice_rows(cols, ilo, ihi)),
                ray.put(X[ulo:uhi]), ray.put(Y[ilo:ihi]),
            ))
        ray.get([a.ready.remote() for a in self.actors])

    def __call__(self, side: str, A: np.ndarray, B: np.ndarray, G: np.ndarray) -> None:
        ray = self.ray
        b_ref, g_ref = ray.put(B), ray.put(G)
        parts = ray.get([a.solve.remote(side, b_ref, g_ref) for a in self.actors])
        for (lo, hi), part in zip(self.bounds[side], parts, strict=True):
            A[lo:hi] = part

    def __enter__(self) -> RayHalves:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []
