"""Fuzzing every file reader with random and mutated bytes: CSV, TSV, libFM, Parquet, model npz,
config TOML/YAML. Each either reads the file or raises a one-line RecforgeError (DataError or
ConfigError, which the CLI prints with exit 2); never another exception.

``make test`` runs a bounded number of examples; ``make fuzz`` sets ``RECFORGE_FUZZ_EXAMPLES``
higher.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recforge.config import FitOptions, read_config
from recforge.data.interactions import Interactions
from recforge.data.libfm import read_libfm
from recforge.errors import RecforgeError
from recforge.models.base import Recommender
from recforge.models.registry import make_model

EXAMPLES = int(os.environ.get("RECFORGE_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
DIR = Path(tempfile.mkdtemp(prefix="recforge-fuzz-readers-"))


def _seed_csv(sep: str = ",") -> bytes:
    rows = [f"{u}{sep}{i}{sep}{r}{sep}{1_600_000_000 + n}" for n, (u, i, r) in
            enumerate([(1, 10, 4), (1, 11, 3), (2, 10, 5), (3, 12, 1), (2, 12, 2)])]
    return (sep.join(["user_id", "item_id", "rating", "timestamp"]) + "\n" + "\n".join(rows) + "\n").encode()


def _seed_parquet() -> bytes:
    pytest.importorskip("pyarrow")
    buf = io.BytesIO()
    pd.read_csv(io.BytesIO(_seed_csv())).to_parquet(buf)
    return buf.getvalue()


def _seed_model() -> bytes:
    df = pd.read_csv(io.BytesIO(_seed_csv()))
    data = Interactions.from_dataframe(df, "user_id", "item_id", "rating", "timestamp")
    path = DIR / "seed.npz"
    make_model("bias").fit(data, FitOptions(seed=0)).save(path)
    return path.read_bytes()


SEEDS: dict[str, Callable[[], bytes]] = {
    "csv": _seed_csv,
    "tsv": lambda: _seed_csv("\t"),
    "libfm": lambda: b"1 0:1 5:1 9:1\n0 1:1 6:1 8:1\n-1 2:1 5:1 7:1\n",
    "parquet": _seed_parquet,
    "npz": _seed_model,
    "toml": lambda: b'[dataset]\nname = "ml-100k"\n[model]\nname = "bias"\n[model.params]\nreg = 0.1\n',
    "yaml": lambda: b"dataset:\n  name: ml-100k\nmodel:\n  name: bias\n  params: {reg: 0.1}\n",
}


def _read(kind: str, path: Path) -> object:
    if kind == "csv":
        return Interactions.from_csv(path, rating="rating", timestamp="timestamp")
    if kind == "tsv":
        return Interactions.from_csv(path, rating="rating", timestamp="timestamp", sep="\t")
    if kind == "libfm":
        return read_libfm(path)
    if kind == "parquet":
        return Interactions.from_parquet(path, rating="rating", timestamp="timestamp")
    if kind == "npz":
        model = Recommender.load(path)
        return model.recommend(1, 2)  # a model that loads must also answer
    return read_config(path)


def _check(kind: str, data: bytes) -> None:
    fd, name = tempfile.mkstemp(dir=DIR, suffix=f".{'csv' if kind == 'tsv' else kind}")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _read(kind, Path(name))
    except RecforgeError as exc:
        assert "\n" not in str(exc).strip(), f"{kind}: multi-line error: {exc!s:.500}"
    finally:
        os.unlink(name)


@st.composite
def mutated(draw, kind: str) -> bytes:
    """The seed file of ``kind`` with random byte flips, insertions, deletions or a truncation."""
    data = bytearray(SEEDS[kind]())
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[pos:]
        else:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 64))]
    return bytes(data)


KINDS = list(SEEDS)


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_random_bytes_give_a_recforge_error(kind, data):
    _check(kind, data.draw(st.binary(max_size=4096)))


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_mutated_files_give_a_recforge_error(kind, data):
    _check(kind, data.draw(mutated(kind)))


@pytest.mark.parametrize("kind", KINDS)
def test_the_seed_files_read(kind):
    path = DIR / f"seed-ok.{'csv' if kind == 'tsv' else kind}"
    path.write_bytes(SEEDS[kind]())
    assert _read(kind, path) is not None


def test_model_arrays_with_extreme_values(tmp_path):
    seed = DIR / "x.npz"
    seed.write_bytes(_seed_model())
    with np.load(seed) as z:
        arrays = {k: z[k] for k in z.files}
    for val in (np.inf, -np.inf, np.nan):
        arrays["item_bias_"] = np.full_like(arrays["item_bias_"], val)
        np.savez(tmp_path / "bad.npz", **arrays)
        with pytest.raises(RecforgeError, match="item_bias_"):
            Recommender.load(tmp_path / "bad.npz")
