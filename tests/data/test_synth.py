"""Synthetic logs: exact sizes, no repeated pair, determinism, power-law tails, row-group streaming."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

pq = pytest.importorskip("pyarrow.parquet")

from recforge.data.synth import PRESETS, SynthSpec, power_law_weights, preset, synth_blocks, write_synth  # noqa: E402
from recforge.errors import ConfigError  # noqa: E402


def _read(path):
    return pq.read_table(path).to_pandas()


def test_shape_counts_and_distinct_pairs(tmp_path):
    spec = SynthSpec(700, 400, 30_000, seed=3)
    info = write_synth(spec, tmp_path / "log.parquet", row_group_size=7_000)
    df = _read(tmp_path / "log.parquet")
    assert info["rows"] == len(df) == 30_000
    assert list(df.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert df.user_id.between(1, 700).all() and df.item_id.between(1, 400).all()
    assert df.user_id.nunique() == 700  # every user gets min(20, 30000 // 700) = 20 rows at least
    assert df.groupby("user_id").size().min() >= 20
    assert not df.duplicated(["user_id", "item_id"]).any()
    assert set(np.unique(df.rating)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert df.timestamp.between(788_918_400, 1_427_846_400).all()


def test_heavy_users_capped_at_the_catalogue(tmp_path):
    # 10 users x 50 items x 400 rows: the power law asks more than 50 of its top users; they get all 50
    spec = SynthSpec(10, 50, 400, seed=1, min_per_user=1)
    df = pd_blocks(spec)
    per_user = df.groupby("user_id").size()
    assert per_user.max() <= 50 and per_user.sum() == 400
    assert not df.duplicated(["user_id", "item_id"]).any()


def pd_blocks(spec):
    import pandas as pd

    return pd.concat([pd.DataFrame(b) for b in synth_blocks(spec)], ignore_index=True)


def test_same_seed_same_log_whatever_the_row_groups(tmp_path):
    spec = SynthSpec(300, 200, 9_000, seed=7)
    write_synth(spec, tmp_path / "a.parquet", row_group_size=1_000)
    write_synth(spec, tmp_path / "b.parquet", row_group_size=4_096)
    a, b = _read(tmp_path / "a.parquet"), _read(tmp_path / "b.parquet")
    assert a.equals(b)
    other = _read(write_synth(SynthSpec(300, 200, 9_000, seed=8), tmp_path / "c.parquet")["path"])
    assert not a.equals(other)


def test_popularity_and_activity_follow_the_power_law():
    # rank-frequency slope of item counts on ranks well past the offset ~ -exponent
    spec = SynthSpec(20_000, 5_000, 600_000, seed=0, item_offset=5.0, min_per_user=1)
    df = pd_blocks(spec)
    counts = np.sort(df.item_id.value_counts().to_numpy())[::-1].astype(float)
    ranks = np.arange(1, len(counts) + 1)
    sel = (ranks >= 50) & (ranks <= 1_000)
    slope = np.polyfit(np.log(ranks[sel] + 5.0), np.log(counts[sel]), 1)[0]
    assert -1.15 < slope < -0.85
    act = np.sort(df.user_id.value_counts().to_numpy())[::-1]
    assert act[0] > 20 * np.median(act)  # heavy users: a long tail of activity


def test_power_law_weights_exact():
    w = power_law_weights(3, 1.0, 0.0)
    np.testing.assert_allclose(w, np.array([1, 1 / 2, 1 / 3]) / (11 / 6))


def test_row_groups_bound_the_rows_in_memory(tmp_path, monkeypatch):
    import recforge.data.synth as synth

    monkeypatch.setattr(synth, "BLOCK_ROWS", 10_000)  # blocks of 200 users, so the log spans 20 of them
    spec = SynthSpec(4_000, 1_000, 200_000, seed=0)
    tracemalloc.start()
    try:
        info = write_synth(spec, tmp_path / "log.parquet", row_group_size=20_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    meta = pq.ParquetFile(tmp_path / "log.parquet").metadata
    assert meta.num_row_groups == info["row_groups"] == 10
    assert all(meta.row_group(g).num_rows == 20_000 for g in range(10))
    # one block of users plus one row group, never the whole log (200k rows x 24 bytes = 4.8 MB)
    assert info["max_buffered_rows"] < 20_000 + spec.block_users * 1_000
    assert peak < 4_800_000


def test_presets_and_errors():
    assert PRESETS["ml-20m"].n_interactions == 20_000_263
    assert preset("netflix", n_interactions=1_000_000).n_interactions == 1_000_000
    with pytest.raises(ConfigError, match="unknown synth preset"):
        preset("ml-1b")
    with pytest.raises(ConfigError, match="do not fit"):
        SynthSpec(2, 2, 5)
    with pytest.raises(ConfigError, match="positive integer"):
        SynthSpec(0, 2, 1)
