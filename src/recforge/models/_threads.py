"""The one numba thread limiter of the compiled kernels (factorization, neighbours, top-k)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numba

from recforge.errors import ConfigError

# Below this many multiply-adds per parallel region a kernel runs on one thread: on a shared
# machine each parallel region can wait a scheduler time slice for a busy core (measured ~6 ms per
# region with 2 threads under load, against ~0.5 ms of work for an ML-100K NMF sweep).
PARALLEL_MIN_WORK = 1 << 23


@contextlib.contextmanager
def kernel_threads(threads: Any = None, work: float | None = None, *, limit_blas: bool = True) -> Iterator[int]:
    """Run the block with ``threads`` numba threads (all cores when None), BLAS on one.

    Args:
        threads: A thread count, None (all cores), or a :class:`~recforge.config.FitOptions`
            (its ``threads``).
        work: Multiply-adds per parallel region; below :data:`PARALLEL_MIN_WORK` one thread is used.
        limit_blas: Hold BLAS to one thread. BLAS only forms small Gram matrices in the kernels; its
            own thread pool spin-waits against the numba threads (a 1682 x 64 Gram took 30 ms with 2
            OpenBLAS threads on a busy 2-core machine, 0.8 ms with 1).

    Restores the previous settings afterwards.
    """
    from threadpoolctl import threadpool_limits

    n = getattr(threads, "threads", threads)
    before = numba.get_num_threads()
    if n is None:
        n = numba.config.NUMBA_NUM_THREADS
    if isinstance(n, bool) or int(n) < 1:
        raise ConfigError(f"threads must be >= 1, got {n}")
    n = min(int(n), numba.config.NUMBA_NUM_THREADS)
    if work is not None and work < PARALLEL_MIN_WORK:
        n = 1
    numba.set_num_threads(n)
    try:
        if limit_blas:
            with threadpool_limits(limits=1, user_api="blas"):
                yield n
        else:
            yield n
    finally:
        numba.set_num_threads(before)
