"""Readers that turn the registered CTR datasets into :class:`CTRSplit` (train, valid, test).

The encoder is always fitted on the training part only:

- ``frappe``: the published NFM protocol: training rows rebuilt from the raw log (the log rows
  that are not positives of the published validation/test files, plus 2 sampled negatives per
  positive; :mod:`recforge.data.ctr.frappe`), the published validation and test files unchanged
  (decoded to raw values); optionally the app metadata of ``meta.csv`` as item fields.
- ``frappe-pooled``: the variant used before the raw log was available: the validation and test
  files pooled and split 8:1:1 at random with a fixed seed; every libFM column is a categorical
  field (feature indices as values).
- ``ipinyou-fnn-sample``: the given train/test files; 10% of train (seeded) is the validation set.
- ``criteo-sample``: 13 numeric (log) + 26 categorical (min count 2) fields, random 8:1:1.
- ``ml-100k`` as CTR: user id, age (quantile bins), gender, occupation, item id, genres
  (multi-valued), release year (bins); label ``rating >= 4``; random 8:1:1.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from recforge.data.ctr._encoding import CTRSplit, FeatureEncoder, FieldSpec, cross
from recforge.data.ctr._negatives import sample_negatives
from recforge.data.datasets import DATASETS, load
from recforge.errors import ConfigError, DataError
from recforge._arrays import random_parts

__all__ = [
    "CRITEO_CATEGORICAL",
    "CRITEO_NUMERIC",
    "criteo_ctr",
    "criteo_fields",
    "ctr_splits",
    "frappe_ctr",
    "frappe_pooled_ctr",
    "ipinyou_ctr",
    "libfm_frame",
    "movielens_ctr",
    "movielens_fields",
    "movielens_frame",
]


def libfm_frame(y: np.ndarray, x: np.ndarray, fields: Sequence[str]) -> pd.DataFrame:
    """A libFM ``(y, X)`` pair (one active feature per field) as a DataFrame of categorical ids."""
    if x.shape[1] != len(fields):
        raise DataError(f"{x.shape[1]} feature columns but {len(fields)} field names")
    df = pd.DataFrame({f: x[:, j].astype(str) for j, f in enumerate(fields)})
    df["label"] = np.asarray(y, dtype=np.float32)
    return df


def _encode_parts(enc: FeatureEncoder, frames: dict[str, pd.DataFrame | None], name: str,
                  description: str, source: str | None = None, line_offset: int | None = None,
                  negatives: int = 0, seed: int = 0) -> CTRSplit:
    enc.fit(frames["train"], source or f"{name}/train", line_offset)
    if negatives:
        # the encoder is fitted on the logged rows only: sampled pairs must not enter a cross vocabulary
        extra = sample_negatives(frames["train"], negatives, seed=seed)  # type: ignore[arg-type]
        frames = {**frames, "train": pd.concat([frames["train"], extra], ignore_index=True)}
        description += f"; {negatives} sampled negative(s) per training positive (item uniform over training items)"
    out = {k: None if v is None else enc.transform(v, f"{name}/{k}", source, line_offset) for k, v in frames.items()}
    return CTRSplit(out["train"], out["valid"], out["test"], enc, description)  # type: ignore[arg-type]


def _user_item_crosses(crosses: Sequence[Sequence[str] | FieldSpec], fields: Sequence[str],
                       min_count: int) -> list[FieldSpec]:
    specs = [c if isinstance(c, FieldSpec) else cross(*c, min_count=min_count) for c in crosses]
    for c in specs:
        bad = [col for col in c.columns if col not in fields]
        if c.kind != "cross" or bad:
            raise ConfigError(f"cross {c.name!r}: must be a cross of the fields {', '.join(fields)}")
    return specs


def _load(name: str, dataset: Any) -> Any:
    return dataset if dataset is not None else load(name)


def frappe_ctr(dataset: Any = None, seed: int = 0, item_features: bool | Sequence[str] = False, min_count: int = 1,
               crosses: Sequence[Sequence[str] | FieldSpec] = (), cross_min_count: int = 1,
               negatives: int = 0) -> CTRSplit:
    """Frappe on its published protocol (NFM, SIGIR 2017): the rebuilt training part, the published
    validation and test files (:func:`recforge.data.ctr.frappe.rebuild_frappe`).

    Training rows: the 67,604 rows of ``frappe.csv`` that are not positives of the validation or
    test file, plus 2 negatives per positive drawn with ``seed`` as the published ones were (user
    and context kept, the app uniform over all 4,082 apps, never one the user used). The encoder is
    fitted on those training rows (positives and negatives, as on the published training file);
    validation (57,722 rows) and test (28,860 rows) are the published files, decoded to raw values.

    Args:
        item_features: App metadata from ``meta.csv`` joined on the app as extra categorical fields
            (``True``: category, downloads, developer, language, price, rating; or a list of them).
            They let the model score apps it saw few or no training positives of.
        min_count: Values seen fewer times in training share their field's OOV feature.
        crosses: Cross fields after the other fields (see :func:`frappe_pooled_ctr`).
        cross_min_count: Minimum count of a cross value.
        negatives: Extra negatives per training positive beyond the published 2, drawn after the
            encoder is fitted (see :func:`frappe_pooled_ctr`).
    """
    from recforge.data.ctr.frappe import FRAPPE_ITEM_FEATURES, rebuild_frappe

    ds = _load("frappe", dataset)
    if "log" not in ds.tables:
        raise DataError("frappe: the raw log (Mobile_Frappe.zip) is needed to rebuild the published split; "
                        "use the 'frappe-pooled' dataset for the validation+test files alone")
    reb = rebuild_frappe(ds.tables["log"], ds.tables["validation"], ds.tables["test"], seed=seed)
    fields = list(ds.tables["fields"])
    frames = {"train": reb.train, "valid": reb.valid, "test": reb.test}
    meta_fields: list[str] = []
    if item_features:
        meta_fields = list(FRAPPE_ITEM_FEATURES if item_features is True else item_features)
        bad = [f for f in meta_fields if f not in FRAPPE_ITEM_FEATURES]
        if bad:
            raise ConfigError(f"frappe item_features: unknown column(s) {', '.join(bad)}; "
                              f"available: {', '.join(FRAPPE_ITEM_FEATURES)}")
        meta = ds.tables["meta"].drop_duplicates("item").set_index("item")[meta_fields]
        frames = {k: v.join(meta, on="item") for k, v in frames.items()}
    extra = _user_item_crosses(crosses, fields, cross_min_count)
    enc = FeatureEncoder([FieldSpec(f, min_count=min_count) for f in fields + meta_fields] + extra)
    n_pos = reb.n_train_positives
    desc = (f"frappe: published NFM split; training rebuilt from the raw log: {n_pos} positives (log rows not in "
            f"the validation/test files; {reb.n_matched}/{reb.n_positives} validation+test positives mapped back, "
            f"match rate {reb.match_rate:.4f}) + {len(reb.train) - n_pos} sampled negatives (2 per positive, seed "
            f"{seed}); validation {len(reb.valid)} and test {len(reb.test)} rows = the published files")
    if meta_fields:
        desc += "; app metadata fields " + ", ".join(meta_fields)
    if extra:
        desc += "; cross fields " + ", ".join(f"{c.name} (min count {c.min_count})" for c in extra)
    return _encode_parts(enc, frames, "frappe", desc, negatives=negatives, seed=seed)


def frappe_pooled_ctr(dataset: Any = None, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
               min_count: int = 1, crosses: Sequence[Sequence[str] | FieldSpec] = (), cross_min_count: int = 1,
               negatives: int = 0) -> CTRSplit:
    """``frappe-pooled``: Frappe's validation + test files pooled and split at random with ``seed``.

    The published training file (202,027 rows) is not available, so the 86,582 rows that are get
    split 8:1:1 (BARS uses 7:2:1 on the full set; 8:1:1 trains on 14% more rows with the same
    8,658 test rows); numbers are therefore not comparable to the full-set literature one to one.

    Args:
        crosses: Cross fields added after the 10 libFM fields, e.g. ``[("user", "item")]`` (pairs
            seen fewer than ``cross_min_count`` times in training share the OOV feature) or
            :func:`cross` specs.
        negatives: Extra negatives per training positive, drawn by :func:`sample_negatives` (seeded
            by ``seed``) from the training rows after the encoder is fitted; validation and test
            rows are never touched.
    """
    ds = _load("frappe-pooled", dataset)
    fields = ds.tables["fields"]
    pool = pd.concat([libfm_frame(*ds.tables[p], fields) for p in ("validation", "test")], ignore_index=True)
    parts = random_parts(len(pool), fractions, seed)
    frames = {k: pool.iloc[p].reset_index(drop=True) for k, p in zip(("train", "valid", "test"), parts, strict=True)}
    extra = _user_item_crosses(crosses, fields, cross_min_count)
    enc = FeatureEncoder([FieldSpec(f, min_count=min_count) for f in fields] + extra)
    desc = (f"frappe-pooled: validation+test files pooled ({len(pool)} rows), random {fractions[0]:g}/{fractions[1]:g}/"
            f"{fractions[2]:g} split, seed {seed}")
    if extra:
        desc += "; cross fields " + ", ".join(f"{c.name} (min count {c.min_count})" for c in extra)
    return _encode_parts(enc, frames, "frappe-pooled", desc, negatives=negatives, seed=seed)


def ipinyou_ctr(dataset: Any = None, seed: int = 0, valid_fraction: float = 0.1, min_count: int = 2) -> CTRSplit:
    """The iPinYou FNN sample: its given train/test files; ``valid_fraction`` of train (seeded) validates."""
    ds = _load("ipinyou-fnn-sample", dataset)
    fields = ds.tables["fields"]
    train = libfm_frame(*ds.tables["train"], fields)
    test = libfm_frame(*ds.tables["test"], fields)
    tr, va = random_parts(len(train), (1 - valid_fraction, valid_fraction), seed)
    frames = {"train": train.iloc[tr].reset_index(drop=True), "valid": train.iloc[va].reset_index(drop=True),
              "test": test}
    enc = FeatureEncoder([FieldSpec(f, min_count=min_count) for f in fields])
    desc = f"ipinyou-fnn-sample: given train/test; {valid_fraction:g} of train held out for validation, seed {seed}"
    return _encode_parts(enc, frames, "ipinyou", desc)


CRITEO_NUMERIC = tuple(f"I{j}" for j in range(1, 14))
CRITEO_CATEGORICAL = tuple(f"C{j}" for j in range(1, 27))


def criteo_fields(min_count: int = 2, hash_buckets: int | None = None) -> list[FieldSpec]:
    """Criteo's schema: I1..I13 numeric (log1p), C1..C26 categorical."""
    return ([FieldSpec(c, "numeric", transform="log") for c in CRITEO_NUMERIC]
            + [FieldSpec(c, min_count=min_count, hash_buckets=hash_buckets) for c in CRITEO_CATEGORICAL])


def criteo_ctr(dataset: Any = None, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
               min_count: int = 2, hash_buckets: int | None = None) -> CTRSplit:
    """The Criteo sample CSV: random split; numeric fields log1p, categorical with a min count."""
    ds = _load("criteo-sample", dataset)
    df = ds.tables["frame"].reset_index(drop=True)
    parts = random_parts(len(df), fractions, seed)
    # keep the file's row numbers as the index so a bad value is reported by file line (header = line 1)
    frames = {k: df.iloc[p] for k, p in zip(("train", "valid", "test"), parts, strict=True)}
    enc = FeatureEncoder(criteo_fields(min_count, hash_buckets))
    source = str(ds.path / "criteo_sample.txt") if ds.path is not None else "criteo-sample"
    return _encode_parts(enc, frames, "criteo-sample", f"criteo-sample: random 8:1:1 split, seed {seed}",
                         source, 2)


def movielens_frame(inter: Any, threshold: float = 4.0) -> pd.DataFrame:
    """ML-100K ratings joined with user and item features; ``label = rating >= threshold``."""
    if inter.user_features is None or inter.item_features is None:
        raise DataError(f"{inter.name}: MovieLens as CTR needs user and item features")
    uid = inter.users.ids[inter.user_idx]
    iid = inter.items.ids[inter.item_idx]
    uf = inter.user_features.reindex(uid)
    itf = inter.item_features.reindex(iid)
    return pd.DataFrame({
        "user": uid.astype(str), "age": uf["age"].to_numpy(), "gender": uf["gender"].to_numpy(),
        "occupation": uf["occupation"].to_numpy(), "item": iid.astype(str),
        "genres": itf["genres"].to_numpy(), "year": itf["year"].astype("float64").to_numpy(),
        "label": (inter.values >= threshold).astype(np.float32),
    })


def movielens_fields(ids: bool = True) -> list[FieldSpec]:
    base = [FieldSpec("age", "numeric", transform="bins", n_bins=8), FieldSpec("gender"),
            FieldSpec("occupation"), FieldSpec("genres", "multi"),
            FieldSpec("year", "numeric", transform="bins", n_bins=10)]
    return ([FieldSpec("user"), FieldSpec("item")] + base) if ids else base


def movielens_ctr(dataset: Any = None, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                  threshold: float = 4.0, ids: bool = True) -> CTRSplit:
    """MovieLens-100K as CTR: label ``rating >= 4``; fields user id, age (bins), gender,
    occupation, item id, genres (multi-valued), release year (bins); random 8:1:1 over ratings."""
    ds = _load("ml-100k", dataset)
    df = movielens_frame(ds.interactions, threshold)
    parts = random_parts(len(df), fractions, seed)
    frames = {k: df.iloc[p].reset_index(drop=True) for k, p in zip(("train", "valid", "test"), parts, strict=True)}
    enc = FeatureEncoder(movielens_fields(ids))
    desc = f"ml-100k as CTR (label rating >= {threshold:g}): random 8:1:1 over ratings, seed {seed}"
    return _encode_parts(enc, frames, "ml-100k-ctr", desc)


def ctr_splits(dataset: Any, seed: int = 0, **options: Any) -> CTRSplit:
    """The CTR split of a registered dataset (a :class:`~recforge.data.Dataset` or its name).

    ``options`` go to the dataset's reader (e.g. ``crosses`` and ``negatives`` for Frappe).
    """
    name = dataset if isinstance(dataset, str) else dataset.name
    readers = {n: spec.ctr_reader for n, spec in DATASETS.items() if spec.ctr_reader}
    if name not in readers:
        raise DataError(f"no CTR reader for dataset {name!r}; available: {', '.join(readers)}")
    reader = globals()[readers[name]]
    unknown = sorted(set(options) - set(inspect.signature(reader).parameters))
    if unknown:
        raise ConfigError(f"the {name} CTR reader has no option(s) {', '.join(unknown)}")
    return reader(None if isinstance(dataset, str) else dataset, seed=seed, **options)
