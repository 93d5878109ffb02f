"""Readers for the libFM / SVMlight text formats used by CTR datasets (Frappe, iPinYou)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recforge.errors import DataError


def read_libfm(
    path: str | Path, *, n_fields: int | None = None, labels: tuple[float, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``label idx:val idx:val ...`` lines with one active feature per field.

    Args:
        path: The file.
        n_fields: Features per line; inferred from the first line when None. Every line must have it.
        labels: Allowed label values (e.g. ``(0, 1)`` or ``(-1, 1)``); labels map to 0/1 with
            ``label > 0`` as the positive class.

    Returns:
        ``(y, X)``: int8 labels in {0, 1} and an int64 matrix ``(n_rows, n_fields)`` of feature indices.

    Raises:
        DataError: naming the file and line of the first bad token, missing field or bad label.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a file")
    ys: list[float] = []
    rows: list[list[int]] = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{path}: line {lineno}: not UTF-8 text") from None
            parts = line.split()
            if not parts:
                continue
            try:
                y = float(parts[0])
            except ValueError:
                raise DataError(f"{path}: line {lineno}: label {parts[0]!r} is not a number") from None
            if labels is not None and y not in labels:
                raise DataError(f"{path}: line {lineno}: label {parts[0]!r} is not one of {labels}")
            feats = []
            for tok in parts[1:]:
                idx, sep, val = tok.partition(":")
                if not sep or not (idx.isascii() and idx.isdigit()):
                    raise DataError(f"{path}: line {lineno}: bad feature token {tok!r} (expected index:value)")
                try:
                    if float(val) == 0.0:
                        continue
                except ValueError:
                    raise DataError(f"{path}: line {lineno}: bad feature value in {tok!r}") from None
                feats.append(int(idx))
            if n_fields is None:
                n_fields = len(feats)
            if len(feats) != n_fields:
                raise DataError(
                    f"{path}: line {lineno}: {len(feats)} features, expected {n_fields} (one per field)"
                )
            ys.append(y)
            rows.append(feats)
    if not rows:
        raise DataError(f"{path}: the file is empty")
    return (np.asarray(ys) > 0).astype(np.int8), np.asarray(rows, dtype=np.int64)
