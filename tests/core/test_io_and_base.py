import numpy as np
import pytest

from recforge.config import FitOptions
from recforge.errors import ConfigError, DataError
from recforge.io import atomic_write
from recforge.models.base import Recommender
from recforge.models.baselines.bias import Bias, BiasConfig
from recforge.models.registry import get_model_class, make_model
from recforge.testing import checkerboard, toy_ratings
from recforge.topk import topk_rows


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(p) as fh:
            fh.write("half")
            raise RuntimeError("boom")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os
    import stat

    from recforge.io import atomic_path

    old = os.umask(0o022)
    try:
        new_file = tmp_path / "new.txt"
        with atomic_write(new_file) as fh:
            fh.write("x")
        assert stat.S_IMODE(new_file.stat().st_mode) == 0o644  # not mkstemp's 0o600
        kept = tmp_path / "kept.npz"
        kept.write_bytes(b"old")
        kept.chmod(0o640)
        with atomic_path(kept) as tmp:
            tmp.write_bytes(b"new")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_bytes() == b"new"
    finally:
        os.umask(old)


def test_failed_save_leaves_previous_model(tmp_path, monkeypatch):
    data = toy_ratings()
    path = tmp_path / "m.npz"
    Bias(epochs=2).fit(data).save(path)
    before = path.read_bytes()
    model = Bias(epochs=3).fit(data)

    def broken(fh, **arrays):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError):
        model.save(path)
    assert path.read_bytes() == before


def test_load_rejects_non_model_files(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a recforge model file"):
        Recommender.load(bad)
    with pytest.raises(DataError, match="no such model file"):
        Recommender.load(tmp_path / "missing.npz")


def test_saved_file_has_no_pickle(tmp_path):
    path = Bias().fit(toy_ratings()).save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as npz:  # would raise if any array needed pickle
        assert "__header__" in npz.files


def test_config_coercion_and_errors():
    assert Bias({"reg_user": "3", "epochs": "4"}).config == BiasConfig(reg_user=3.0, epochs=4)
    with pytest.raises(ConfigError, match="epochs"):
        Bias(epochs="many")
    with pytest.raises(ConfigError, match="reg_user = -1.0: must be >= 0"):
        Bias(reg_user=-1.0)
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        get_model_class("nope")
    assert make_model("bias", {"epochs": 2}).config.epochs == 2


def test_topk_rows_tie_break_and_inf():
    s = np.array([[1.0, 3.0, 3.0, -np.inf], [0.0, 0.0, 0.0, 0.0]])
    idx, vals = topk_rows(s, 3)
    assert idx.tolist() == [[1, 2, 0], [0, 1, 2]]
    assert vals[0].tolist() == [3.0, 3.0, 1.0]


def test_recommend_pads_short_lists_and_rejects_bad_k():
    data = checkerboard(6)
    model = get_model_class("popularity")().fit(data, FitOptions(seed=0))
    ids, scores = model.recommend(0, k=6)
    # user 0 has seen 2 of 6 items; 4 remain, the rest is padding
    assert (ids[4:] == -1).all() and np.isnan(scores[4:]).all() and (ids[:4] >= 0).all()
    with pytest.raises(ConfigError):
        model.recommend(0, k=True)
