"""Click-through-rate models on encoded feature rows (:mod:`recforge.data.ctr`): LR, FM, DeepFM, DCN-V2.

Listing these models never imports torch; building one needs the ``torch`` extra. The contract
(:class:`~recforge.models.ctr.base.CTRModel`, :class:`~recforge.models.ctr.base.CTRConfig`) and the
models are importable from here too, loaded on first use.
"""

from importlib import import_module
from typing import Any

CATALOG = {
    "lr": ("recforge.models.ctr.linear", "LogisticRegression", "ctr", "torch"),
    "fm": ("recforge.models.ctr.fm", "FM", "ctr", "torch"),
    "deepfm": ("recforge.models.ctr.fm", "DeepFM", "ctr", "torch"),
    "dcnv2": ("recforge.models.ctr.dcn", "DCNv2", "ctr", "torch"),
}

_LAZY = {
    "CTRConfig": "recforge.models.ctr.base",
    "CTRModel": "recforge.models.ctr.base",
    "LogisticRegression": "recforge.models.ctr.linear",
    "FM": "recforge.models.ctr.fm",
    "DeepFM": "recforge.models.ctr.fm",
    "DCNv2": "recforge.models.ctr.dcn",
}
__all__ = ["CATALOG", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
