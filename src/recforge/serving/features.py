"""User and item feature tables for serving: block/allow lists, genre MMR and CTR rankers read them.

A feature source is a registered dataset name (its ``user_features`` / ``item_features``) or a
CSV/Parquet file whose first column is the raw id.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recforge.errors import DataError

__all__ = ["FEATURE_SUFFIXES", "load_item_features", "load_user_features"]

FEATURE_SUFFIXES = (".csv", ".parquet", ".pq")


def load_item_features(source: str | Path | None) -> pd.DataFrame | None:
    """Item features from a registered dataset name or a CSV/Parquet file (first column = item id)."""
    return _load_features(source, "item")


def load_user_features(source: str | Path | None) -> pd.DataFrame | None:
    """User features from a registered dataset name or a CSV/Parquet file (first column = user id)."""
    return _load_features(source, "user")


def _load_features(source: str | Path | None, side: str) -> pd.DataFrame | None:
    if source is None:
        return None
    s = str(source)
    p = Path(s)
    if p.suffix.lower() in FEATURE_SUFFIXES:
        if not p.exists():
            raise DataError(f"{p}: no such {side}-features file")
        df = pd.read_parquet(p) if p.suffix.lower() != ".csv" else pd.read_csv(p)
        return df.set_index(df.columns[0])
    from recforge.data import load

    ds = load(s)
    feats = None if ds.interactions is None else getattr(ds.interactions, f"{side}_features")
    if feats is None:
        raise DataError(f"dataset {s!r} has no {side} features")
    return feats
