"""Models made of other registered models: building, fitting and persisting the members.

The hybrids (``recforge.models.content``) and the rating blend (``recforge.models.ensemble``) hold
fitted member models. A member is a registered model name plus its hyperparameters; members are
driven only through the public model API, and their learned state is saved inside the owner's
file under ``part<c>__`` keys, so that ``save``/``load`` need no pickle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from recforge.config import FitOptions
from recforge.data.interactions import Interactions
from recforge.models.base import Recommender

__all__ = ["fit_member", "make_member", "members_from_state", "members_state", "own_state"]


def make_member(name: str, params: Mapping[str, Any] | None = None) -> Recommender:
    """An unfitted registered model ``name`` with hyperparameters ``params`` (validated)."""
    from recforge.models.registry import make_model

    return make_model(name, dict(params or {}))


def fit_member(name: str, params: Mapping[str, Any] | None, data: Interactions, options: FitOptions) -> Recommender:
    """Build and fit one member (its own ``fit`` applies its feedback rule)."""
    return make_member(name, params).fit(data, options)


def members_state(parts: Sequence[Recommender]) -> dict[str, Any]:
    """The learned state of every member, under ``part<c>__`` keys."""
    state: dict[str, Any] = {}
    for c, p in enumerate(parts):
        state.update({f"part{c}__{k}": v for k, v in p.get_state().items()})
    return state


def members_from_state(specs: Sequence[tuple[str, Mapping[str, Any] | None]],
                       state: Mapping[str, Any]) -> list[Recommender]:
    """Rebuild the members that :func:`members_state` wrote; ``specs`` are ``(name, params)`` in order."""
    parts = []
    for c, (name, params) in enumerate(specs):
        part = make_member(name, params)
        prefix = f"part{c}__"
        part.set_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        parts.append(part)
    return parts


def own_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of an owner's state that are not its members'."""
    return {k: v for k, v in state.items() if not k.startswith("part")}
