"""Sampled negative CTR rows: the process that generated the negatives of implicit-feedback CTR sets.

For every positive row, copies with label 0 and the item redrawn uniformly from the training items,
never one the row's user has as a positive, every other column (user, context) kept (Frappe: two
per logged app use; He and Chua, "Neural Factorization Machines", SIGIR 2017). The draws come from
the one negative sampler, :mod:`recforge.data.sampling`. :func:`sample_negatives` works on raw
frames (before encoding), :func:`with_sampled_negatives` on encoded :class:`CTRData`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recforge.data.ctr._encoding import CTRData
from recforge.data.sampling import UnseenSampler
from recforge.errors import ConfigError, DataError

__all__ = ["sample_negatives", "with_sampled_negatives"]


def sample_negatives(frame: pd.DataFrame, n_per_positive: int = 1, item: str = "item", user: str | None = "user",
                     label: str = "label", seed: int | np.random.Generator = 0, *,
                     items: Sequence[Any] | None = None, exclude: pd.DataFrame | None = None) -> pd.DataFrame:
    """Extra negative rows drawn from the positive rows of a (training) frame.

    For every positive row, ``n_per_positive`` copies with the label set to 0 and the ``item``
    column replaced by an item drawn uniformly from the items of ``frame`` (its training item
    vocabulary), redrawn while it is one of the items that row's ``user`` has as a positive in
    ``frame``; every other column (the user and the context) is kept. This is how the negatives
    of implicit-feedback CTR sets are generated, so training on more of them is standard negative
    sampling. Draw them from training rows only.

    Args:
        frame: Rows with the ``item``, ``user`` (unless None) and ``label`` columns.
        n_per_positive: Negatives per positive row.
        item: Column whose value is replaced.
        user: Column whose positive items are never drawn for that user; None draws any item.
        label: The 0/1 label column.
        seed: Seed (or numpy generator) of the draws.
        items: The catalogue the replacement item is drawn from (default: the items of ``frame``);
            it must hold every item of ``frame``. Frappe's published negatives draw from all apps.
        exclude: ``user``/``item`` pairs never drawn (default: the positive rows of ``frame``), e.g.
            each user's whole log when the published negatives were drawn that way.

    Returns:
        The new rows only (``n_per_positive`` per positive, in the positives' order, index reset);
        concatenate them with ``frame`` to train. A user who has every item as a positive gets none.

    Raises:
        ConfigError: ``n_per_positive`` is negative.
        DataError: A named column is missing.
    """
    if n_per_positive < 0:
        raise ConfigError(f"n_per_positive must be >= 0, got {n_per_positive}")
    need = [c for c in (item, user, label) if c is not None]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise DataError(f"sample_negatives: missing column(s) {', '.join(map(repr, missing))}")
    y = pd.to_numeric(frame[label], errors="coerce").to_numpy(dtype=np.float64)
    pos = np.flatnonzero(y == 1)
    if n_per_positive == 0 or len(pos) == 0:
        return frame.iloc[:0].reset_index(drop=True)
    if items is None:
        item_code, items = pd.factorize(frame[item], sort=True)
    else:
        items = pd.Index(sorted(set(items)), dtype=frame[item].dtype)
        item_code = items.get_indexer(frame[item])
        if (item_code < 0).any():
            raise DataError(f"sample_negatives: item {frame[item].iloc[int(np.flatnonzero(item_code < 0)[0])]!r} "
                            "is not in the items catalogue")
    n_items = len(items)
    rows = np.repeat(pos, n_per_positive)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if user is None:
        draw = UnseenSampler(None, rng, n_items=n_items).sample(np.zeros(len(rows), np.int64), 1).ravel()
    else:
        user_code, users = pd.factorize(frame[user], sort=True)
        user_code = user_code.astype(np.int64)
        if exclude is None:
            ex_u, ex_i = user_code[pos], item_code[pos]
        else:
            ex_u = users.get_indexer(exclude[user].astype(frame[user].dtype))
            ex_i = items.get_indexer(exclude[item].astype(frame[item].dtype))
            keep = (ex_u >= 0) & (ex_i >= 0)
            ex_u, ex_i = ex_u[keep], ex_i[keep]
        seen = sp.csr_matrix((np.ones(len(ex_u), np.float32), (ex_u, ex_i)), shape=(len(users), n_items))
        seen.sum_duplicates()
        # a user who has every item as a positive has no negative to draw
        rows = rows[np.diff(seen.indptr)[user_code[rows]] < n_items]
        # no round limit: redraw until every row has a free item, as the generating process does
        draw = UnseenSampler(seen, rng, max_rounds=None).sample(user_code[rows], 1).ravel()
    out = frame.iloc[rows].reset_index(drop=True)
    out[item] = pd.Series(items[draw], dtype=frame[item].dtype)
    out[label] = np.zeros(len(out), dtype=frame[label].dtype)
    return out


def with_sampled_negatives(data: CTRData, n_per_positive: int, item: str = "item", user: str | None = "user",
                           seed: int | np.random.Generator = 0) -> CTRData:
    """``data`` followed by ``n_per_positive`` sampled negatives per positive row (encoded rows).

    The encoded counterpart of :func:`sample_negatives` (which it calls): each new row copies a
    positive row with the ``item`` slot redrawn uniformly from the item features of ``data``'s rows,
    never one of the row's ``user``'s positive items, and label 0. A cross field that contains the
    item cannot be redrawn here: sample raw rows before encoding instead.

    Args:
        data: Labelled encoded rows.
        n_per_positive: Negatives per positive row.
        item: The one-slot categorical field that is redrawn.
        user: The one-slot field whose positives are never drawn (None: any item).
        seed: Seed (or numpy generator) of the draws.

    Returns:
        New :class:`CTRData`: the rows of ``data``, then the sampled negatives.

    Raises:
        ConfigError: ``item``/``user`` is not a one-hot field, or a cross field contains ``item``.
    """
    i_slot = _one_slot(data, item, "negative_item")
    cols = {"item": data.index[:, i_slot], "label": data.labels, "_row": np.arange(len(data))}
    if user is not None:
        cols["user"] = data.index[:, _one_slot(data, user, "negative_user")]
    enc = data.encoder
    for spec in (enc.fields if enc is not None else []):
        if spec.kind == "cross" and item in spec.columns:
            raise ConfigError(f"negatives: the cross field {spec.name!r} contains {item!r} and cannot be redrawn on "
                              "encoded rows; sample the raw rows (recforge.data.ctr.sample_negatives) before encoding")
    neg = sample_negatives(pd.DataFrame(cols), n_per_positive, user="user" if user is not None else None, seed=seed)
    src = neg["_row"].to_numpy()
    index = data.index[src].copy()
    index[:, i_slot] = neg["item"].to_numpy()
    return CTRData(np.concatenate([data.index, index]), np.concatenate([data.value, data.value[src]]),
                   np.concatenate([data.labels, np.zeros(len(src), np.float32)]), data.slot_fields,
                   data.field_names, data.n_features, data.name, data.encoder)


def _one_slot(data: CTRData, field: str, option: str) -> int:
    if field not in data.field_names:
        raise ConfigError(f"{option} = {field!r}: the rows have no such field ({', '.join(data.field_names)})")
    slots = np.flatnonzero(data.slot_fields == data.field_names.index(field))
    if len(slots) != 1 or not np.all(data.value[:, slots[0]] == 1):
        raise ConfigError(f"{option} = {field!r}: must be a one-hot categorical field (one slot, value 1)")
    return int(slots[0])
