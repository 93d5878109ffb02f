"""Synthetic interaction logs of any size, written to Parquet one row group at a time.

A log has power-law item popularity and user activity (rank-frequency ``(rank + offset)^-exponent``,
the shape of MovieLens and Netflix: a few blockbusters and heavy users, a long tail of both), no
repeated (user, item) pair, ratings that depend on a user bias, an item bias and noise, and
timestamps spread over each user's active period. The presets copy the sizes of public logs:
``ml-20m`` (138,493 users x 26,744 items x 20,000,263 ratings, half stars, at least 20 per user),
``netflix`` (480,189 x 17,770 x 100,480,507, whole stars) and ``1m-items`` (1M users x 1M items x
100M, a shop's catalogue).

Memory: the per-user and per-item arrays (counts, biases, permutations) are held whole; raw rows
are generated in blocks of users (about :data:`BLOCK_ROWS` rows) and written as soon as a row group
is full, so at most one row group plus one block of rows is in memory at any time. The output
depends only on the :class:`SynthSpec` (seed included), never on the row-group size.

With ``signals=True`` each row also carries implicit signals drawn from the same latent preference
``p`` that makes the rating (``p = 3.6 + user bias + item bias + noise``, before rounding): ``plays ~
Poisson(exp(0.8 (p - 3)))``, ``hours = plays x Gamma(2, 0.4 exp(0.3 (p - 3)))`` (0 without plays,
two decimals), and the star ``rating`` is kept on a ``rated_share`` of the rows (drawn at random,
independent of ``p``) and missing on the others: a simulated log of the shape a streaming service
has (plays and watch time for everything, a few ratings). They come from their own random stream,
so the ids, ratings and timestamps are those of the same spec without signals.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from recforge.errors import ConfigError

BLOCK_ROWS = 1 << 18  # rows generated per block of users (the unit of the seed's sub-streams)
_T0 = 788_918_400  # 1995-01-01, the start of MovieLens' ratings
_T1 = 1_427_846_400  # 2015-04-01, the end of ML-20M's


@dataclass(frozen=True)
class SynthSpec:
    """What :func:`synth_blocks` generates.

    Attributes:
        n_users: Users (raw ids ``1..n_users``; ids are shuffled against activity).
        n_items: Items (raw ids ``1..n_items``; shuffled against popularity).
        n_interactions: Rows, exactly (distinct (user, item) pairs).
        seed: Seeds every random choice.
        item_exponent: Exponent of the popularity power law.
        item_offset: Rank offset of the popularity law (flattens the head); None: scaled from
            ML-20M's (45 at 26,744 items, where the most popular item gets ~0.3% of the rows).
        user_exponent: Exponent of the activity power law.
        user_offset: Rank offset of the activity law; None: scaled from ML-20M's (300 at 138,493 users).
        min_per_user: Rows every user gets at least (ML-20M: 20); None: ``min(20, n_interactions // n_users)``.
        half_stars: Ratings in steps of 0.5 from 0.5 (MovieLens) instead of whole stars from 1.
        signals: Add ``plays`` (count) and ``hours`` (duration) columns and keep the rating on
            ``rated_share`` of the rows only (see the module docstring).
        rated_share: With ``signals``, the share of rows whose rating is kept.
    """

    n_users: int
    n_items: int
    n_interactions: int
    seed: int = 0
    item_exponent: float = 1.0
    item_offset: float | None = None
    user_exponent: float = 1.0
    user_offset: float | None = None
    min_per_user: int | None = None
    half_stars: bool = False
    signals: bool = False
    rated_share: float = 0.3

    def __post_init__(self) -> None:
        for name in ("n_users", "n_items", "n_interactions"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"synth: {name} must be a positive integer, got {v!r}")
        if self.n_interactions > self.n_users * self.n_items:
            raise ConfigError(
                f"synth: {self.n_interactions:,} interactions do not fit in {self.n_users:,} users x "
                f"{self.n_items:,} items (each pair at most once)"
            )
        if not 0.0 <= float(self.rated_share) <= 1.0:
            raise ConfigError(f"synth: rated_share must be in [0, 1], got {self.rated_share!r}")
        if self.item_exponent <= 0 or self.user_exponent <= 0:
            raise ConfigError("synth: the power-law exponents must be > 0")
        if self.min_per_user is not None and not 0 <= self.min_per_user * self.n_users <= self.n_interactions:
            raise ConfigError(f"synth: min_per_user={self.min_per_user} x {self.n_users:,} users is more than "
                              f"{self.n_interactions:,} interactions")

    @property
    def floor(self) -> int:
        """Rows every user gets at least."""
        if self.min_per_user is not None:
            return int(self.min_per_user)
        return int(min(20, self.n_interactions // self.n_users, self.n_items))

    @property
    def block_users(self) -> int:
        """Users per generation block: about :data:`BLOCK_ROWS` rows at the mean activity."""
        mean = self.n_interactions / self.n_users
        return int(max(1, min(self.n_users, BLOCK_ROWS // max(1.0, mean))))


#: Sizes of public logs (ratings as in the original; ``1m-items``: a shop's catalogue).
PRESETS: dict[str, SynthSpec] = {
    "ml-20m": SynthSpec(138_493, 26_744, 20_000_263, min_per_user=20, half_stars=True),
    "netflix": SynthSpec(480_189, 17_770, 100_480_507, min_per_user=1),
    "1m-items": SynthSpec(1_000_000, 1_000_000, 100_000_000, min_per_user=5),
}


def preset(name: str, **overrides: Any) -> SynthSpec:
    """A preset spec with some fields replaced (``seed=1``, ``n_interactions=...``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown synth preset {name!r}; presets: {', '.join(PRESETS)}")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})


def power_law_weights(n: int, exponent: float, offset: float) -> np.ndarray:
    """Normalised weights ``(rank + offset)^-exponent`` for ranks ``1..n`` (most frequent first)."""
    w = (np.arange(1, n + 1, dtype=np.float64) + offset) ** -exponent
    return w / w.sum()


@dataclass(frozen=True)
class _Plan:
    counts: np.ndarray  # rows per user index (activity order shuffled)
    item_p: np.ndarray  # popularity per item index
    item_cdf: np.ndarray
    item_bias: np.ndarray
    user_bias: np.ndarray
    user_start: np.ndarray
    user_span: np.ndarray


def _plan(spec: SynthSpec) -> _Plan:
    """The per-user and per-item arrays (O(users + items) memory; no rows)."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0]))
    n_u, n_i, n = spec.n_users, spec.n_items, spec.n_interactions
    i_off = spec.item_offset if spec.item_offset is not None else max(1.0, 45.0 * n_i / 26_744)
    u_off = spec.user_offset if spec.user_offset is not None else max(1.0, 300.0 * n_u / 138_493)
    item_p = power_law_weights(n_i, spec.item_exponent, i_off)[rng.permutation(n_i)]
    user_p = power_law_weights(n_u, spec.user_exponent, u_off)[rng.permutation(n_u)]
    floor = spec.floor
    counts = np.full(n_u, floor, dtype=np.int64) + rng.multinomial(n - floor * n_u, user_p)
    # a user can hold each item once: move what overflows to users with room, by the same law
    while (over := counts > n_i).any():
        excess = int((counts[over] - n_i).sum())
        counts[over] = n_i
        room = np.where(counts < n_i, user_p, 0.0)
        counts += rng.multinomial(excess, room / room.sum())
    cdf = np.cumsum(item_p)
    cdf /= cdf[-1]
    span_days = np.minimum(rng.lognormal(np.log(200.0), 1.2, n_u), (_T1 - _T0) / 86_400)
    span = (span_days * 86_400).astype(np.int64)
    start = _T0 + (rng.random(n_u) * (_T1 - _T0 - span)).astype(np.int64)
    return _Plan(counts, item_p, cdf, rng.normal(0.0, 0.5, n_i) + 0.15 * np.log(item_p * n_i),
                 rng.normal(0.0, 0.4, n_u), start, span)


def _sample_items(counts: np.ndarray, plan: _Plan, rng: np.random.Generator, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """``counts[j]`` distinct items for each user ``j`` of a block, drawn by popularity without
    replacement (successive sampling: draw with replacement, keep each item's first draw).

    Returns (local user index per row, item index per row), grouped by user.
    """
    heavy = counts > n_items // 8
    light_users = np.flatnonzero(~heavy & (counts > 0))
    users_out: list[np.ndarray] = []
    items_out: list[np.ndarray] = []
    if len(light_users):
        need = counts[light_users]
        draw_u: list[np.ndarray] = []
        draw_i: list[np.ndarray] = []
        active = np.arange(len(light_users))
        factor = 1.25
        while len(active):
            size = np.ceil(need[active] * factor).astype(np.int64) + 4
            du = np.repeat(active, size)
            di = np.searchsorted(plan.item_cdf, rng.random(len(du)), side="right")
            draw_u.append(du)
            draw_i.append(np.minimum(di, n_items - 1))
            allu = np.concatenate(draw_u)
            alli = np.concatenate(draw_i)
            _, first = np.unique(allu * n_items + alli, return_index=True)
            have = np.bincount(allu[first], minlength=len(light_users))
            active = np.flatnonzero(have < need)
            factor *= 2.0
        first.sort()  # distinct draws in draw order (rounds in order, so per user too)
        fu = allu[first]
        order = np.argsort(fu, kind="stable")
        fu = fu[order]
        fi = alli[first][order]
        starts = np.r_[0, np.cumsum(np.bincount(fu, minlength=len(light_users)))[:-1]]
        rank = np.arange(len(fu)) - starts[fu]
        keep = rank < need[fu]
        users_out.append(light_users[fu[keep]])
        items_out.append(fi[keep])
    for j in np.flatnonzero(heavy):
        # exponential keys: the c smallest of E/p are a popularity-weighted sample without replacement
        keys = rng.exponential(size=n_items) / plan.item_p
        top = np.argpartition(keys, counts[j] - 1)[: counts[j]]
        users_out.append(np.full(len(top), j, dtype=np.int64))
        items_out.append(np.sort(top))
    if not users_out:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    u = np.concatenate(users_out)
    i = np.concatenate(items_out)
    order = np.argsort(u, kind="stable")
    return u[order], i[order]


def synth_blocks(spec: SynthSpec) -> Iterator[dict[str, np.ndarray]]:
    """Yield the log as column blocks (``user_id``, ``item_id``, ``rating``, ``timestamp``), one
    block of :attr:`SynthSpec.block_users` users at a time; the same spec gives the same blocks."""
    plan = _plan(spec)
    step = spec.block_users
    lo, hi, quantum = (0.5, 5.0, 0.5) if spec.half_stars else (1.0, 5.0, 1.0)
    for b, s in enumerate(range(0, spec.n_users, step)):
        rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 1, b]))
        counts = plan.counts[s : s + step]
        lu, it = _sample_items(counts, plan, rng, spec.n_items)
        u = lu + s
        raw = 3.6 + plan.user_bias[u] + plan.item_bias[it] + rng.normal(0.0, 0.9, len(u))
        rating = np.clip(np.round(raw / quantum) * quantum, lo, hi).astype(np.float32)
        ts = plan.user_start[u] + (rng.random(len(u)) * plan.user_span[u]).astype(np.int64)
        block = {"user_id": u + 1, "item_id": it + 1, "rating": rating, "timestamp": ts}
        if spec.signals:
            block.update(_signals(raw, rating, np.random.default_rng(np.random.SeedSequence([spec.seed, 2, b])),
                                  spec.rated_share))
        yield block


def _signals(pref: np.ndarray, rating: np.ndarray, rng: np.random.Generator, rated_share: float
             ) -> dict[str, np.ndarray]:
    """``plays``, ``hours`` and the partly missing ``rating`` of one block (module docstring)."""
    plays = rng.poisson(np.exp(0.8 * (pref - 3.0))).astype(np.float32)
    hours = plays * rng.gamma(2.0, 0.4 * np.exp(0.3 * (pref - 3.0)))
    kept = np.where(rng.random(len(pref)) < rated_share, rating, np.nan).astype(np.float32)
    return {"rating": kept, "plays": plays, "hours": np.round(hours, 2).astype(np.float32)}


def write_synth(spec: SynthSpec, path: str | Path, *, row_group_size: int = 1_000_000,
                compression: str = "zstd") -> dict[str, Any]:
    """Write the log of ``spec`` to a Parquet file (atomically), ``row_group_size`` rows per group;
    a path ending in ``.csv`` (or ``.csv.gz``) gets a CSV file instead, written block by block
    (a missing rating is an empty cell).

    Returns a summary: ``rows``, ``row_groups``, ``max_buffered_rows`` (the most rows held at once)
    and ``path``.
    """
    from recforge._optional import require
    from recforge.io import atomic_path

    if row_group_size < 1:
        raise ConfigError(f"synth: row_group_size must be >= 1, got {row_group_size}")
    path = Path(path)
    if path.name.lower().endswith((".csv", ".csv.gz")):
        return _write_csv(spec, path)
    pa = require("pyarrow", purpose="writing Parquet")
    import pyarrow.parquet as pq

    fields = [("user_id", pa.int64()), ("item_id", pa.int64()), ("rating", pa.float32()), ("timestamp", pa.int64())]
    if spec.signals:
        fields += [("plays", pa.float32()), ("hours", pa.float32())]
    schema = pa.schema(fields)
    pending: list[dict[str, np.ndarray]] = []
    n_pending = rows = groups = max_buffered = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema, compression=compression) as writer:
        def flush(n_rows: int) -> None:
            nonlocal pending, n_pending, rows, groups
            cols = {c: np.concatenate([p[c] for p in pending]) for c in schema.names}
            arrays = {c: pa.array(cols[c][:n_rows], mask=np.isnan(cols[c][:n_rows]) if c == "rating" else None)
                      for c in schema.names}  # a rating not kept is a null
            writer.write_table(pa.table(arrays, schema=schema), row_group_size=n_rows)
            rest = {c: cols[c][n_rows:] for c in schema.names}
            pending = [rest] if len(rest["user_id"]) else []
            n_pending -= n_rows
            rows += n_rows
            groups += 1

        for block in synth_blocks(spec):
            pending.append(block)
            n_pending += len(block["user_id"])
            max_buffered = max(max_buffered, n_pending)
            while n_pending >= row_group_size:
                flush(row_group_size)
        if n_pending:
            flush(n_pending)
    return {"path": str(path), "rows": rows, "row_groups": groups, "max_buffered_rows": max_buffered}


def _write_csv(spec: SynthSpec, path: Path) -> dict[str, Any]:
    """:func:`write_synth` to a CSV file (gzip for ``.gz``), one block of users at a time."""
    import gzip

    import pandas as pd

    from recforge.io import atomic_path

    rows = blocks = biggest = 0
    with atomic_path(path) as tmp:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(tmp, "wt", newline="") as fh:  # type: ignore[operator]
            for block in synth_blocks(spec):
                frame = pd.DataFrame(block)
                frame.to_csv(fh, index=False, header=blocks == 0, float_format="%g")
                rows += len(frame)
                blocks += 1
                biggest = max(biggest, len(frame))
    return {"path": str(path), "rows": rows, "row_groups": blocks, "max_buffered_rows": biggest}
