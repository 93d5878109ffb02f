"""Frappe's published CTR protocol, rebuilt from the publisher's raw log.

The libFM version of Frappe (He and Chua, "Neural Factorization Machines for Sparse Predictive
Analytics", SIGIR 2017; also used by AFM and by BARS' Frappe_x1) is the 96,203 rows of the raw log
``frappe.csv`` as positives, two sampled negatives per positive (its README: "sample 2 negative
samples for 1 positive => # of total instances: 288609"), split 7:2:1 at random. Only its
validation (57,722 rows) and test (28,860 rows) files are public here; the training file is not.
This module rebuilds the training part:

1. **Feature indices.** :func:`libfm_index` assigns each field's values indices in order of first
   appearance in ``frappe.csv``, fields in the libFM column order (user, item, daytime, weekday,
   isweekend, homework, cost, weather, country, city), starting at 0: 5,382 features, exactly the
   published feature space. The rule is checked, not assumed: every positive row of the
   validation and test files must map back to a distinct row of ``frappe.csv``
   (:func:`rebuild_frappe` raises :class:`DataError` naming the file and line of the first that
   does not). On the publisher's archive all 28,599 positives map back (match rate 1.0).
2. **Training positives.** The raw rows left after removing one raw row per validation/test
   positive (a multiset difference: the log has 8 duplicated rows): 67,604 rows.
3. **Training negatives.** Two per training positive, drawn as the published negatives were: a
   copy of the positive row (user and the 8 context fields kept) with the app replaced by one
   drawn uniformly from all 4,082 apps of the log, never an app that user has among their
   positives anywhere in the log. Neither the NFM README nor the data README says more than "2
   negative samples for 1 positive"; the rest is read off the published validation/test negatives
   (their user+context is always a raw row's, their app is never one the user used, and their app
   counts are flat: uniform over the catalogue, not by popularity). The published training file
   had 202,027 rows (67,604 positives and so 134,423 negatives, because the 7:2:1 split was drawn
   over all 288,609 rows); two per positive gives 135,208.

The validation and test rows are the published files unchanged, decoded from feature indices to
the raw values (the index is a bijection, so re-encoding gives the files back): models then see
``daytime = "morning"``, which is what a live request carries.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recforge.data.ctr._negatives import sample_negatives
from recforge.data.sources import sha256
from recforge.errors import DataError

__all__ = [
    "ARCHIVE",
    "ARCHIVE_SHA256",
    "FRAPPE_FIELDS",
    "FRAPPE_ITEM_FEATURES",
    "FrappeRebuild",
    "LibFMIndex",
    "libfm_index",
    "read_frappe_archive",
    "rebuild_frappe",
]

FRAPPE_FIELDS = ("user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather", "country", "city")
#: Columns of ``meta.csv`` usable as item features (``unknown`` is a value of its own there).
FRAPPE_ITEM_FEATURES = ("category", "downloads", "developer", "language", "price", "rating")
ARCHIVE = "Mobile_Frappe.zip"
#: SHA-256 of the publisher's ``Mobile_Frappe.zip`` (the checksum other projects pin for the download).
ARCHIVE_SHA256 = "4adc616de57170f282397f6e6e30215f97fa7ad1b7f40bd12ef5dceaaf3e9b4e"
_LOG = "Mobile_Frappe/frappe/frappe.csv"
_META = "Mobile_Frappe/frappe/meta.csv"
N_FEATURES = 5382


def read_frappe_archive(path: str | Path, check: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(log, meta)`` from the publisher's ``Mobile_Frappe.zip``, every column as strings.

    Args:
        path: The archive.
        check: Compare its SHA-256 with :data:`ARCHIVE_SHA256` first (the rebuild's indices and
            counts hold for that archive only).

    Raises:
        DataError: The file is missing, is another version (checksum), or lacks a member or column.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file (the Frappe raw log, {ARCHIVE})")
    if check and (got := sha256(path)) != ARCHIVE_SHA256:
        raise DataError(f"{path}: checksum mismatch (sha256 {got[:16]}..., expected {ARCHIVE_SHA256[:16]}...): "
                        "not the publisher's Frappe archive, so the published split cannot be rebuilt from it")
    try:
        with zipfile.ZipFile(path) as zf:
            log_bytes, meta_bytes = zf.read(_LOG), zf.read(_META)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{path}: not the Frappe archive ({exc})") from None
    opts = {"sep": "\t", "dtype": str, "keep_default_na": False, "quoting": 3}
    log = pd.read_csv(io.BytesIO(log_bytes), **opts)
    meta = pd.read_csv(io.BytesIO(meta_bytes), **opts)
    for name, frame, need in ((_LOG, log, FRAPPE_FIELDS), (_META, meta, ("item", *FRAPPE_ITEM_FEATURES))):
        missing = [c for c in need if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: {name} line 1 (header): missing column(s) {', '.join(missing)}")
    return log, meta


@dataclass(frozen=True)
class LibFMIndex:
    """The libFM feature index of every raw value: field ``f``'s values own ``offsets[f] + j``.

    Attributes:
        fields: Field names in libFM column order.
        values: Per field, its raw values in index order.
        offsets: Per field, the index of its first value.
    """

    fields: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]
    offsets: tuple[int, ...]

    @property
    def n_features(self) -> int:
        return self.offsets[-1] + len(self.values[-1])

    def encode(self, frame: pd.DataFrame, source: str = "frame") -> np.ndarray:
        """``(n, fields)`` feature indices of raw rows; a value not in the index is a :class:`DataError`."""
        cols = []
        for f, (name, vals, off) in enumerate(zip(self.fields, self.values, self.offsets, strict=True)):
            pos = pd.Index(vals, dtype=object).get_indexer(frame[name].astype(str).to_numpy(dtype=object))
            if (pos < 0).any():
                row = int(np.flatnonzero(pos < 0)[0])
                raise DataError(f"{source}: row {row}: {name} value {frame[name].iloc[row]!r} has no libFM index")
            cols.append(pos + off)
        return np.stack(cols, axis=1).astype(np.int64)

    def decode(self, x: np.ndarray, source: str = "rows") -> pd.DataFrame:
        """Raw values of ``(n, fields)`` feature-index rows (the inverse of :meth:`encode`)."""
        x = np.asarray(x, dtype=np.int64)
        out = {}
        for f, (name, vals, off) in enumerate(zip(self.fields, self.values, self.offsets, strict=True)):
            local = x[:, f] - off
            bad = (local < 0) | (local >= len(vals))
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DataError(f"{source}: line {row + 1}: feature {x[row, f]} is not a {name} index "
                                f"({off}..{off + len(vals) - 1})")
            out[name] = np.asarray(vals, dtype=object)[local]
        return pd.DataFrame(out)


def libfm_index(log: pd.DataFrame, fields: Sequence[str] = FRAPPE_FIELDS) -> LibFMIndex:
    """Indices by first appearance in ``log``, field after field (the NFM conversion's layout)."""
    values, offsets, off = [], [], 0
    for name in fields:
        vals = tuple(pd.unique(log[name].astype(str)))
        values.append(vals)
        offsets.append(off)
        off += len(vals)
    return LibFMIndex(tuple(fields), tuple(values), tuple(offsets))


@dataclass
class FrappeRebuild:
    """The published Frappe split, rebuilt.

    Attributes:
        train: Training rows (raw values and ``label``): the leftover positives, then the sampled negatives.
        valid: The published validation file, decoded (raw values and ``label``).
        test: The published test file, decoded.
        index: The recovered :class:`LibFMIndex`.
        train_log_rows: Row numbers (0-based, header excluded) of ``frappe.csv`` that are training positives.
        n_matched: Validation + test positives that mapped back to a row of ``frappe.csv``.
        n_positives: Validation + test positives.
    """

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    index: LibFMIndex
    train_log_rows: np.ndarray
    n_matched: int
    n_positives: int

    @property
    def match_rate(self) -> float:
        return self.n_matched / max(self.n_positives, 1)

    @property
    def n_train_positives(self) -> int:
        return int((self.train["label"] == 1).sum())


def _occurrence_keys(x: np.ndarray) -> pd.DataFrame:
    """Rows as keys plus their occurrence number among equal rows (a multiset as a set)."""
    df = pd.DataFrame(x, columns=[f"f{j}" for j in range(x.shape[1])])
    df["occ"] = df.groupby(list(df.columns), sort=False).cumcount()
    return df


def rebuild_frappe(log: pd.DataFrame, validation: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                   seed: int = 0, negatives: int = 2, sources: tuple[str, str] = ("frappe.validation.libfm",
                                                                                   "frappe.test.libfm")) -> FrappeRebuild:
    """Rebuild the published training part (see the module docstring) with negatives drawn by ``seed``.

    Args:
        log: ``frappe.csv`` (string columns).
        validation: ``(labels 0/1, feature indices)`` of the published validation file.
        test: The same for the test file.
        seed: Seed of the training negatives (the rebuild is deterministic given it).
        negatives: Sampled negatives per training positive (the published protocol: 2).
        sources: File names used in error messages.

    Raises:
        DataError: The recovered index does not span the published 5,382 features, or a
            validation/test positive maps back to no (unused) row of ``frappe.csv``.
    """
    index = libfm_index(log)
    if index.n_features != N_FEATURES:
        raise DataError(f"frappe.csv: {index.n_features} distinct field values, the libFM files have {N_FEATURES}")
    raw = index.encode(log, "frappe.csv")
    pos_parts = [(x[y == 1], np.flatnonzero(y == 1), src) for (y, x), src in zip((validation, test), sources,
                                                                                  strict=True)]
    pos = np.concatenate([p[0] for p in pos_parts])
    raw_keys = _occurrence_keys(raw)
    keys = list(raw_keys.columns)
    raw_keys["_row"] = np.arange(len(raw))
    hit = _occurrence_keys(pos).merge(raw_keys, on=keys, how="left")["_row"].to_numpy()
    missing = np.flatnonzero(np.isnan(hit))
    if len(missing):
        first = int(missing[0])
        n_val = len(pos_parts[0][0])
        src, lines = (pos_parts[0][2], pos_parts[0][1]) if first < n_val else (pos_parts[1][2], pos_parts[1][1])
        line = int(lines[first if first < n_val else first - n_val]) + 1
        raise DataError(f"{src}: line {line}: positive row does not map back to a row of frappe.csv "
                        f"({len(pos) - len(missing)} of {len(pos)} positives matched, "
                        f"{(len(pos) - len(missing)) / len(pos):.4f}); the libFM index cannot be recovered")
    used = np.zeros(len(raw), bool)
    used[hit.astype(np.int64)] = True
    train_rows = np.flatnonzero(~used)
    fields = list(FRAPPE_FIELDS)
    train_pos = log.iloc[train_rows][fields].reset_index(drop=True).astype(str)
    train_pos["label"] = np.float32(1.0)
    # the catalogue and the exclusions of the published negatives: all apps, each user's whole log
    everything = log[["user", "item"]].astype(str)
    extra = sample_negatives(train_pos, negatives, seed=seed, items=index.values[1], exclude=everything)
    train = pd.concat([train_pos, extra], ignore_index=True)

    def decoded(part: tuple[np.ndarray, np.ndarray], src: str) -> pd.DataFrame:
        y, x = part
        frame = index.decode(x, src)
        frame["label"] = np.asarray(y, dtype=np.float32)
        return frame

    return FrappeRebuild(train, decoded(validation, sources[0]), decoded(test, sources[1]), index, train_rows,
                         len(pos) - len(missing), len(pos))
