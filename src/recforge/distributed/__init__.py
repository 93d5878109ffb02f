"""Scale-out on Ray (``pip install 'recforge[ray]'``): the same jobs as one process, on a cluster.

- :mod:`~recforge.distributed.cluster`: :func:`connect` starts a local Ray on 127.0.0.1 with N
  CPUs or joins a running cluster (``--address``); :func:`cluster` does so for a ``with`` block.
- :mod:`~recforge.distributed.scoring`: an actor pool that holds the fitted model once per worker
  (``ray.put``, read from the object store) and scores blocks of users with
  :func:`recforge.evaluation.blocks.score_block`; :func:`ray_scoring` installs it as the block
  executor of full-ranking evaluation and of the batch job, so both run unchanged on Ray.
- :mod:`~recforge.distributed.batch`: ``recforge batch --backend ray`` (the local writer, lock
  and atomic swap; only the scoring moves).
- :mod:`~recforge.distributed.evaluate`: ``recforge evaluate --backend ray``.
- :mod:`~recforge.distributed.tune`: ``recforge tune --backend ray``: Optuna trials run by Ray
  workers that share one study through Optuna's storage (PostgreSQL, or a journal file on one node).
- :mod:`~recforge.distributed.train`: ``recforge train --backend ray``: :func:`fit_on_ray` fits the
  torch models with Ray Train (Lightning DDP over gloo) and ``ials`` with
  :mod:`~recforge.distributed.ials` (user and item shards solved by Ray actors).

Ray is imported only when these functions run; without it they raise a one-line error naming the
extra to install.
"""

from __future__ import annotations

from typing import Any

from recforge.training.backends import register_fit_backend

__all__ = ["cluster", "connect", "evaluate_ray", "fit_on_ray", "ray_scoring", "run_batch_ray", "tune_ray"]

_WHERE = {
    "cluster": "recforge.distributed.cluster",
    "connect": "recforge.distributed.cluster",
    "ray_scoring": "recforge.distributed.scoring",
    "run_batch_ray": "recforge.distributed.batch",
    "evaluate_ray": "recforge.distributed.evaluate",
    "tune_ray": "recforge.distributed.tune",
    "fit_on_ray": "recforge.distributed.train",
}


def _fit(model: Any, data: Any, options: Any) -> Any:
    from recforge.distributed.train import fit_on_ray

    return fit_on_ray(model, data, options=options)


def _ials_halves(*args: Any) -> Any:
    from recforge.distributed.ials import RayHalves

    return RayHalves(*args)


# FitOptions(backend="ray") in the models (which cannot import this package) finds these
register_fit_backend("ray", _fit, ials_halves=_ials_halves)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'recforge.distributed' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)
