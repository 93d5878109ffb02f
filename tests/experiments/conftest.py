"""Experiment files over a small CSV log (no real data needed)."""

from __future__ import annotations

import pytest

from recforge.testing.datasets import toy_ratings


@pytest.fixture
def toy_csv(tmp_path):
    """Toy ratings with timestamps as a CSV file: 40 users, 30 items."""
    path = tmp_path / "toy.csv"
    toy_ratings().to_dataframe().to_csv(path, index=False)
    return path


@pytest.fixture
def make_spec(tmp_path, toy_csv):
    """Write an experiment file over the toy CSV and return its path."""

    def make(name="exp", model="bias", params=None, protocol="rating-kfold5", logger="none", extra="", suffix=".toml",
             training=""):
        lines = [
            f'name = "{name}"', "seed = 0", f'protocol = "{protocol}"', f'logger = "{logger}"',
            "[dataset]", f'path = "{toy_csv.as_posix()}"', 'rating_col = "value"', 'timestamp_col = "timestamp"',
            "[model]", f'name = "{model}"', "[model.params]",
            *[f"{k} = {v!r}".replace("'", '"') for k, v in (params or {}).items()],
            "[training]", "threads = 1", training,
            "[outputs]", f'dir = "{(tmp_path / "runs" / name).as_posix()}"', extra,
        ]
        path = tmp_path / f"{name}{suffix}"
        path.write_text("\n".join(lines) + "\n")
        return path

    return make
