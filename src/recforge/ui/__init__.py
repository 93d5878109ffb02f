"""``recforge ui``: a local web app to explore a dataset, compare saved runs and try a model live.

:func:`create_ui_app` builds the FastAPI app over a :class:`UIState` (``UIState.from_config``
loads the dataset, fits or loads the models and mounts one ``recforge serve`` service per model).
Every page and asset is served by the app itself; nothing is fetched from another host.
"""

from __future__ import annotations

from typing import Any

from recforge.ui.state import DEFAULT_MODELS, UIConfig, UIState

__all__ = ["DEFAULT_MODELS", "UIConfig", "UIState", "create_ui_app"]


def create_ui_app(state: UIState) -> Any:
    """The FastAPI app of the UI (see :mod:`recforge.ui.app`)."""
    from recforge.ui.app import create_ui_app as make

    return make(state)
