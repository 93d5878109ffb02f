"""Fit backends other than this process, registered by the package that provides them.

A model's ``fit`` with ``FitOptions(backend="ray")`` hands itself to the backend's fit function (or,
for ``ials``, builds its half-step solver from the backend's ``"ials-halves"`` part). The models sit
below the package that provides Ray (:mod:`recforge.distributed`, which registers ``"ray"`` when it
is imported) and never import it: the command line imports it, and so does a program that calls
:func:`recforge.distributed.fit_on_ray` or ``import recforge.distributed``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recforge.errors import ConfigError

__all__ = ["backend_part", "fit_backend", "register_fit_backend"]

_BACKENDS: dict[str, dict[str, Callable[..., Any]]] = {}


def register_fit_backend(name: str, fit: Callable[..., Any], **parts: Callable[..., Any]) -> None:
    """Make ``FitOptions(backend=name)`` fit through ``fit(model, data, options)``; ``parts`` are
    named pieces a model asks for (``ials_halves``: the distributed iALS half-step solver)."""
    _BACKENDS[name] = {"fit": fit, **{k.replace("_", "-"): v for k, v in parts.items()}}


def _get(name: str, part: str) -> Callable[..., Any]:
    backend = _BACKENDS.get(name)
    if backend is None:
        raise ConfigError(f"fit backend {name!r} is not loaded: `import recforge.distributed` first (pip install "
                          f"'recforge[{name}]'; the recforge command line does this itself)")
    if part not in backend:
        raise ConfigError(f"fit backend {name!r} has no {part!r}")
    return backend[part]


def fit_backend(name: str) -> Callable[..., Any]:
    """The fit function of backend ``name`` (a one-line error when it is not loaded)."""
    return _get(name, "fit")


def backend_part(name: str, part: str) -> Callable[..., Any]:
    """A named part of backend ``name`` (e.g. ``"ials-halves"``)."""
    return _get(name, part)
