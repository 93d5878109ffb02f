"""Shared fixtures: real datasets (skipped when absent), seeds and a torch device list."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data"
if "RECFORGE_DATA_DIR" not in os.environ and _DEFAULT.exists():
    os.environ["RECFORGE_DATA_DIR"] = str(_DEFAULT)
os.environ.setdefault("MPLBACKEND", "Agg")

try:  # pytest-xdist runs one process per core: intra-op threads only add synchronisation stalls
    import torch

    torch.set_num_threads(1)
except ImportError:  # the core suite runs without torch
    pass


def _data_dir() -> Path | None:
    env = os.environ.get("RECFORGE_DATA_DIR")
    return Path(env) if env else None


def has_dataset(name: str) -> bool:
    d = _data_dir()
    return d is not None and (d / name).is_dir()


@pytest.fixture(scope="session")
def ml100k():
    """The ML-100K Dataset; skips when ../shared/data (RECFORGE_DATA_DIR) is absent."""
    if not has_dataset("ml-100k"):
        pytest.skip("ML-100K not available: set RECFORGE_DATA_DIR to a folder holding ml-100k/")
    from recforge.data import load

    return load("ml-100k", download=False)


@pytest.fixture(scope="session")
def gowalla():
    if not has_dataset("gowalla"):
        pytest.skip("Gowalla not available: set RECFORGE_DATA_DIR to a folder holding gowalla/")
    from recforge.data import load

    return load("gowalla", download=False)


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)
