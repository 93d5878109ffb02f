"""MyAnimeList's anime lists (``animelist.csv``) as a log with implicit signals and a score per row.

The Anime Recommendation Database 2020 (Hernan Valdivieso) has one row per (user, anime) on the
user's list: ``user_id, anime_id, rating, watching_status, watched_episodes``, where ``rating`` (the
readme calls it ``score``) is 1-10 and 0 means "not scored". :func:`read_myanimelist` maps a row to:

- ``episodes`` (kind ``count``): episodes watched;
- ``watching``, ``completed``, ``on_hold``, ``dropped``, ``plan_to_watch`` (kind ``binary``): the
  watching status (1, 2, 3, 4, 6) one-hot;
- ``rating`` (kind ``rating``): the score, NaN where it is 0 (not scored).

``values`` are 1.0 (the anime is on the list) and the log is implicit; the rating lives in the
``rating`` signal, which is what the implicit-to-explicit models learn from and predict. The
``myanimelist2020-sample`` dataset is the publisher's 500-line sample (3 users): a format fixture,
too small to train anything worth reporting.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recforge.data.interactions import Interactions
from recforge.data.reading import read_table, stem
from recforge.errors import DataError

__all__ = ["STATUSES", "read_myanimelist"]

#: watching_status code -> signal name (``watching_status.csv``; there is no status 5).
STATUSES = {1: "watching", 2: "completed", 3: "on_hold", 4: "dropped", 6: "plan_to_watch"}
_NEEDED = ("user_id", "anime_id", "watching_status", "watched_episodes")


def _numbers(df: pd.DataFrame, col: str, path: Path, offset: int) -> np.ndarray:
    vals = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(vals)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        cell = df[col].iloc[row]
        empty = pd.isna(cell) or not str(cell).strip()
        what = "is empty" if empty else f"is not a finite number ({str(cell)!r})"
        raise DataError(f"{path}: line {row + offset}: column {col!r} {what}")
    return vals


def read_myanimelist(path: str | Path) -> Interactions:
    """Read an ``animelist.csv`` file
    (header ``user_id,anime_id,rating|score,watching_status,watched_episodes``).

    Raises:
        DataError: One line naming the file, line and column: a missing column, a value that is
            not a number, an unknown watching status, a negative episode count, or a score outside 0-10.
    """
    path = Path(path)
    df, offset = read_table(path, sep=",", text_columns=lambda cols: ("user_id", "anime_id"))
    score = "rating" if "rating" in df.columns else "score"
    missing = [c for c in (*_NEEDED, score) if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(map(repr, missing))}; "
                        f"found {', '.join(map(repr, map(str, df.columns)))}")
    if len(df) == 0:
        raise DataError(f"{path}: no rows")
    status = _numbers(df, "watching_status", path, offset)
    unknown = ~np.isin(status, list(STATUSES))
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise DataError(f"{path}: line {row + offset}: column 'watching_status' is {status[row]:g}, "
                        "not one of "
                        f"{', '.join(f'{k} ({v})' for k, v in STATUSES.items())}")
    episodes = _numbers(df, "watched_episodes", path, offset)
    if (episodes < 0).any():
        row = int(np.flatnonzero(episodes < 0)[0])
        raise DataError(f"{path}: line {row + offset}: column 'watched_episodes' is negative "
                        f"({episodes[row]:g})")
    rating = _numbers(df, score, path, offset)
    outside = (rating < 0) | (rating > 10)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise DataError(f"{path}: line {row + offset}: column {score!r} is {rating[row]:g}, outside 0-10 "
                        "(0 = not scored)")
    frame = pd.DataFrame({"user_id": df["user_id"].to_numpy(), "item_id": df["anime_id"].to_numpy()})
    for col in ("user_id", "item_id"):
        s = frame[col].astype(str)
        if s.str.fullmatch(r"-?\d{1,18}").all():
            frame[col] = s.astype(np.int64)
    base = Interactions.from_dataframe(frame, "user_id", "item_id", source=str(path), line_offset=offset,
                                       name=stem(path))
    one_hot = {name: (status == code).astype(np.float32) for code, name in STATUSES.items()}
    signals = {"episodes": episodes, **one_hot,
               "rating": np.where(rating > 0, rating, np.nan)}
    kinds = {"episodes": "count", **{name: "binary" for name in STATUSES.values()}, "rating": "rating"}
    return Interactions(base.user_idx, base.item_idx, base.values, base.users, base.items, explicit=False,
                        name=base.name, signals=signals, signal_kinds=kinds)
