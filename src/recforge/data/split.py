"""The :class:`Split` container: a train/test(/valid) partition of one :class:`Interactions`.

It lives in ``data`` (not ``splits``) so that datasets with predefined splits can build one without
importing the split functions; :mod:`recforge.splits` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recforge.data.interactions import Interactions


@dataclass(eq=False)
class Split:
    """A train/test (and optional validation) partition of one :class:`Interactions`.

    Every part is a row subset of the same parent, made with :meth:`Interactions.subset`, so all
    parts share the parent's user and item vocabularies and indices are comparable across them.
    Together the parts hold each parent row exactly once.

    Attributes:
        train: Rows to fit on.
        test: Held-out rows to evaluate on.
        valid: Optional held-out rows for early stopping or tuning.
        name: The split method (``"random"``, ``"kfold"``, ``"leave-one-out"``, ...).
        fold: The fold number for cross-validation, else ``None``.
        info: Extra facts about the split: the seed, the cut timestamp, held-out raw ids, ...
    """

    train: Interactions
    test: Interactions
    valid: Interactions | None = None
    name: str = "split"
    fold: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        parts = [f"train={len(self.train)}", f"test={len(self.test)}"]
        if self.valid is not None:
            parts.append(f"valid={len(self.valid)}")
        if self.fold is not None:
            parts.append(f"fold={self.fold}")
        return f"Split({self.name!r}, {', '.join(parts)})"
