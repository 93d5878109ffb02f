"""Damaged and crafted model files: every one is refused with one DataError line naming the file and
the bad entry (never a traceback, never a model that loads and then misbehaves), in Python and
from the CLI (exit 2); and ``train --output`` is checked before the fit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from recforge.cli.main import app
from recforge.config import FitOptions
from recforge.errors import DataError
from recforge.models.base import Recommender
from recforge.models.registry import make_model
from recforge.testing.datasets import toy_ratings


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("m") / "ials.npz"
    make_model("ials", {"embedding_size": 4, "epochs": 2}).fit(toy_ratings(), FitOptions(seed=0)).save(path)
    return path


def _rewrite(src: Path, dst: Path, edit) -> Path:
    """Copy a model file with ``edit(arrays, header)`` applied (arrays: name -> ndarray)."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays.pop("__header__")).decode())
    edit(arrays, header)
    arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(dst, "wb") as fh:
        np.savez(fh, **arrays)
    return dst


def _drop(arrays, header):
    del arrays["item_factors_"]


def _bad_shape(arrays, header):
    arrays["item_factors_"] = arrays["item_factors_"][:, :3]


def _wrong_rows(arrays, header):
    arrays["item_factors_"] = arrays["item_factors_"][:-2]


def _nan(arrays, header):
    arrays["item_factors_"] = np.full_like(arrays["item_factors_"], np.nan)


def _huge_csr(arrays, header):
    header["meta"]["seen_"]["shape"] = [10**12, 10**12]


def _method(arrays, header):
    header["meta"]["recommend"] = {"kind": "json", "value": "boom"}


def _dunder(arrays, header):
    header["meta"]["__class__"] = {"kind": "json", "value": "x"}


def _bad_kind(arrays, header):
    header["meta"]["item_factors_"] = {"kind": "pickle"}


def _bad_config(arrays, header):
    header["config"] = {"embedding_size": "many"}


def _header_list(arrays, header):
    header.clear()
    header.update({"format": 1, "model": "ials", "config": [], "meta": {}})


CASES = {
    "missing-array": (_drop, "item_factors_"),
    "wrong-columns": (_bad_shape, "item_factors_"),
    "wrong-rows": (_wrong_rows, "item_factors_"),
    "all-nan": (_nan, "item_factors_"),
    "huge-csr-shape": (_huge_csr, "seen_"),
    "meta-names-a-method": (_method, "recommend"),
    "meta-dunder": (_dunder, "__class__"),
    "unknown-kind": (_bad_kind, "item_factors_"),
    "bad-config": (_bad_config, "config"),
    "config-not-a-table": (_header_list, "config"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_model_file_is_one_named_error(case, saved, tmp_path):
    edit, named = CASES[case]
    bad = _rewrite(saved, tmp_path / f"{case}.npz", edit)
    with pytest.raises(DataError) as err:
        Recommender.load(bad)
    msg = str(err.value)
    assert "\n" not in msg and str(bad) in msg and named in msg, msg
    r = CliRunner().invoke(app, ["recommend", "--model-path", str(bad), "--user", "1"])
    assert r.exit_code == 2 and "Traceback" not in r.output and named in r.output, r.output
    r = CliRunner().invoke(app, ["export", str(bad), "--format", "npz", "--output", str(tmp_path / "exp")])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert not (tmp_path / "exp").exists()  # a failed export leaves no folder behind


def test_object_array_and_pickle_never_load(saved, tmp_path):
    def obj(arrays, header):
        arrays["item_factors_"] = np.array([{"x": 1}], dtype=object)

    with np.load(saved) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["item_factors_"] = np.array([{"x": 1}], dtype=object)
    bad = tmp_path / "obj.npz"
    np.savez(bad, **arrays)  # an object array needs pickle: np.load(allow_pickle=False) refuses it
    with pytest.raises(DataError, match="item_factors_"):
        Recommender.load(bad)


def test_good_file_still_loads(saved):
    m = Recommender.load(saved)
    assert m.recommend(1, 3)[0].shape == (3,)


def test_set_state_refuses_non_state_keys():
    m = make_model("popularity")
    with pytest.raises(DataError, match="not learned state"):
        m.set_state({"recommend": "x"})


def test_train_output_unwritable_fails_before_the_fit(tmp_path, monkeypatch):
    fitted = []
    monkeypatch.setattr(Recommender, "fit", lambda self, *a, **k: fitted.append(1) or self)
    if os.geteuid() == 0:
        target = Path("/proc/recforge-test/m.npz")  # not writable even for root
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "m.npz"
    r = CliRunner().invoke(app, ["train", "--dataset", str(_csv(tmp_path)), "--model", "popularity",
                                 "--output", str(target)])
    assert r.exit_code == 2 and "cannot write" in r.output and not fitted, r.output


def _csv(tmp_path: Path) -> Path:
    p = tmp_path / "log.csv"
    p.write_text("user_id,item_id\n1,10\n2,11\n1,11\n3,10\n")
    return p


def test_train_output_directory_fails_before_the_fit(tmp_path, monkeypatch):
    fitted = []
    monkeypatch.setattr(Recommender, "fit", lambda self, *a, **k: fitted.append(1) or self)
    (tmp_path / "adir").mkdir()
    r = CliRunner().invoke(app, ["train", "--dataset", str(_csv(tmp_path)), "--model", "popularity",
                                 "--output", str(tmp_path / "adir")])
    assert r.exit_code == 2 and "is a directory" in r.output and not fitted, r.output
    (tmp_path / "afile").write_text("x")
    r = CliRunner().invoke(app, ["train", "--dataset", str(_csv(tmp_path)), "--model", "popularity",
                                 "--output", str(tmp_path / "afile" / "m.npz")])
    assert r.exit_code == 2 and "not a directory" in r.output and not fitted, r.output


@pytest.mark.parametrize("what", ["dir", "latin1", "binary"])
def test_bad_csv_inputs_are_one_line(what, tmp_path):
    if what == "dir":
        p = tmp_path / "x.csv"
        p.mkdir()
    else:
        p = tmp_path / "x.csv"
        p.write_bytes(b"user_id,item_id,rating\n1,Caf\xe9,3\n2,b,4\n" if what == "latin1" else os.urandom(3000))
    r = CliRunner().invoke(app, ["recommend", "--dataset", str(p), "--model", "popularity", "--user", "1"])
    assert r.exit_code == 2 and "Traceback" not in r.output and str(p) in r.output.replace("\n", ""), r.output


def test_user_id_beyond_int64_is_not_a_traceback(tmp_path):
    p = tmp_path / "neg.csv"
    p.write_text("user_id,item_id\n-1,10\n99999999999999999999,11\n-1,11\n3,10\n")
    r = CliRunner().invoke(app, ["recommend", "--dataset", str(p), "--model", "popularity",
                                 "--user", "99999999999999999999"])
    assert r.exit_code in (0, 2) and "Traceback" not in r.output, r.output
    r = CliRunner().invoke(app, ["recommend", "--dataset", str(_csv(tmp_path)), "--model", "popularity",
                                 "--user", "99999999999999999999"])
    assert r.exit_code in (0, 2) and "Traceback" not in r.output, r.output


def test_failed_export_leaves_no_folder(saved, tmp_path):
    out = tmp_path / "onnx-out"
    r = CliRunner().invoke(app, ["export", str(saved), "--format", "onnx", "--output", str(out)])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert not out.exists()
