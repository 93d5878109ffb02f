"""Train/test splits of :class:`~recforge.data.interactions.Interactions`.

Every split keeps the parent's vocabularies (parts are row subsets), takes a ``seed`` where it is
random, and returns the same partition for the same inputs.

:data:`SPLITS` names the split methods (``recforge split --method NAME`` and the ``[split]`` table
of a config file); :func:`split_by_name` makes one by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recforge.config import nearest
from recforge.data.interactions import Interactions
from recforge.data.split import Split
from recforge.errors import ConfigError
from recforge.splits._cold import cold_start_split
from recforge.splits._random import kfold, random_parts, random_split, ratio_user_split
from recforge.splits._temporal import global_time_split, leave_one_out, temporal_user_split

SplitMethod = Callable[..., list[Split]]
"""``method(source, *, seed, test_fraction, n, name, n_folds) -> [Split, ...]``; a method uses the
options it needs and ignores the others."""


def _interactions(source: Any) -> Interactions:
    # a registered Dataset carries its interactions; plain Interactions are split as they are
    return source if isinstance(source, Interactions) else source.interactions


def _random(source: Any, *, seed: int, test_fraction: float, **_: Any) -> list[Split]:
    return [random_split(_interactions(source), test_fraction=test_fraction, seed=seed)]


def _kfold(source: Any, *, seed: int, n_folds: int, **_: Any) -> list[Split]:
    return kfold(_interactions(source), n_folds, seed=seed)


def _temporal(source: Any, *, test_fraction: float, n: int | None, **_: Any) -> list[Split]:
    return [temporal_user_split(_interactions(source), n=n, fraction=None if n else test_fraction)]


def _time(source: Any, *, test_fraction: float, **_: Any) -> list[Split]:
    return [global_time_split(_interactions(source), quantile=1 - test_fraction)]


def _loo(source: Any, *, seed: int, **_: Any) -> list[Split]:
    return [leave_one_out(_interactions(source), seed=seed)]


def _predefined(source: Any, *, name: str, **_: Any) -> list[Split]:
    if isinstance(source, Interactions):
        raise ConfigError("the predefined method needs a registered dataset (its split files), not bare interactions")
    return [source.split(name)]


def _cold(kind: str) -> SplitMethod:
    def make(source: Any, *, seed: int, test_fraction: float, **_: Any) -> list[Split]:
        return [cold_start_split(_interactions(source), fraction=test_fraction, kind=kind, seed=seed)]

    return make


SPLITS: dict[str, SplitMethod] = {
    "random": _random,  # test_fraction of the rows at random
    "kfold": _kfold,  # n_folds folds over the rows
    "temporal": _temporal,  # per user, the latest n rows (or test_fraction of them)
    "time": _time,  # one global time cut at the (1 - test_fraction) quantile
    "loo": _loo,  # per user, the latest row (a random one without timestamps)
    "predefined": _predefined,  # the dataset's own split files (name: u1..u5, ua, given, ...)
    "cold-users": _cold("users"),  # test_fraction of the users held out entirely
    "cold-items": _cold("items"),  # test_fraction of the items held out entirely
}
"""Split method name -> the function that makes its splits (see :func:`split_by_name`)."""


def split_by_name(
    method: str,
    source: Any,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    n: int | None = None,
    name: str = "u1",
    n_folds: int = 5,
) -> list[Split]:
    """The splits of a named method (one per fold; single-split methods give a list of one).

    Args:
        method: A key of :data:`SPLITS`.
        source: :class:`Interactions`, or a registered dataset (needed by ``predefined``).
        seed: Seed of the random methods (``random``, ``kfold``, ``cold-*``; ``loo`` without timestamps).
        test_fraction: Test share for ``random``, ``temporal`` (without ``n``), ``time`` and ``cold-*``.
        n: Latest rows per user in test (``temporal``); None uses ``test_fraction``.
        name: The predefined split's name (``predefined``).
        n_folds: Number of folds (``kfold``).

    Raises:
        ConfigError: An unknown method (naming the nearest one) or invalid options.
    """
    if method not in SPLITS:
        hint = nearest(method, SPLITS)
        did = f"; did you mean {hint!r}?" if hint else ""
        raise ConfigError(f"unknown split method {method!r}{did} valid: {', '.join(SPLITS)}")
    return SPLITS[method](source, seed=seed, test_fraction=test_fraction, n=n, name=name, n_folds=n_folds)


__all__ = [
    "SPLITS",
    "Split",
    "SplitMethod",
    "cold_start_split",
    "global_time_split",
    "kfold",
    "leave_one_out",
    "random_parts",
    "random_split",
    "ratio_user_split",
    "split_by_name",
    "temporal_user_split",
]
