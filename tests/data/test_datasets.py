import hashlib
import io
import zipfile

import numpy as np
import pytest

from recforge.data import load
from recforge.data import sources
from recforge.data.libfm import read_libfm
from recforge.data.stats import compute_stats, plot_stats
from recforge.errors import DataError


def test_unknown_dataset_lists_names():
    with pytest.raises(DataError, match="unknown dataset 'nope'; available: ml-100k"):
        load("nope")


def test_missing_files_message(tmp_path, monkeypatch):
    monkeypatch.setenv("RECFORGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RECFORGE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="dataset 'gowalla': file 'train.txt' not found"):
        load("gowalla")


def test_corrupted_file_detected(tmp_path, monkeypatch):
    folder = tmp_path / "criteo-sample"
    folder.mkdir()
    (folder / "criteo_sample.txt").write_text("label\n0\n")
    monkeypatch.setenv("RECFORGE_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="criteo_sample.txt: checksum mismatch"):
        load("criteo-sample")


def test_download_verifies_and_caches(tmp_path, monkeypatch):
    """A download from the publisher URL (here a local file:// zip) is checked and cached atomically."""
    payload = b"label,I1\n1,2\n"
    digest = hashlib.sha256(payload).hexdigest()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("pkg/data.csv", payload)
    archive = tmp_path / "pkg.zip"
    archive.write_bytes(buf.getvalue())
    src = sources.Source("toy", ("data.csv",), url=archive.as_uri(), zip_prefix="pkg/")
    monkeypatch.delenv("RECFORGE_DATA_DIR", raising=False)
    monkeypatch.setenv("RECFORGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "checksums", lambda folder: {"data.csv": digest})
    folder = sources.locate(src)
    assert (folder / "data.csv").read_bytes() == payload
    # a wrong checksum refuses the download and leaves nothing behind
    monkeypatch.setattr(sources, "checksums", lambda folder: {"data.csv": "0" * 64})
    src2 = sources.Source("toy2", ("data.csv",), url=archive.as_uri(), zip_prefix="pkg/")
    with pytest.raises(DataError, match="fails its SHA-256 check"):
        sources.locate(src2)
    assert not (tmp_path / "cache" / "toy2" / "data.csv").exists()


def test_libfm_errors_name_line(tmp_path):
    p = tmp_path / "x.libfm"
    p.write_text("1 3:1 5:1\n-1 4:1 oops\n")
    with pytest.raises(DataError, match="x.libfm: line 2: bad feature token 'oops'"):
        read_libfm(p)
    p.write_text("1 3:1 5:1\n0 4:1\n")
    with pytest.raises(DataError, match="line 2: 1 features, expected 2"):
        read_libfm(p)
    p.write_text("2 3:1\n")
    with pytest.raises(DataError, match="line 1: label '2' is not one of"):
        read_libfm(p, labels=(0.0, 1.0))
    p.write_text("-1 3:1 5:1\n1 4:1 6:1\n")
    y, x = read_libfm(p, labels=(-1.0, 1.0))
    assert y.tolist() == [0, 1] and x.tolist() == [[3, 5], [4, 6]]


@pytest.mark.realdata
def test_ml100k_contents(ml100k):
    d = ml100k.interactions
    assert (d.n_users, d.n_items, len(d)) == (943, 1682, 100_000)
    assert d.sparsity == pytest.approx(0.9370, abs=5e-5)
    st = compute_stats(d)
    assert st.rating_distribution == {"1": 6110, "2": 11370, "3": 27145, "4": 34174, "5": 21201}
    assert st.per_user["min"] == 20
    items = d.item_features
    assert items.loc[1, "title"] == "Toy Story (1995)"
    assert items.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert any("é" in t for t in items["title"])  # latin-1 decoded correctly
    assert d.user_features.loc[1, "occupation"] == "technician"


@pytest.mark.realdata
def test_ml100k_predefined_splits(ml100k):
    full = ml100k.interactions
    for name in ("u1", "ua"):
        s = ml100k.split(name)
        assert s.train.users is full.users
        assert len(s.train) + len(s.test) == 100_000
        assert not np.intersect1d(s.train.pair_keys(), s.test.pair_keys()).size
    assert len(ml100k.split("ua").test) == 9430
    with pytest.raises(DataError, match="no predefined split 'u9'"):
        ml100k.split("u9")


@pytest.mark.realdata
def test_ml100k_plots(ml100k, tmp_path):
    paths = plot_stats(ml100k.interactions, tmp_path)
    assert [p.name for p in paths] == ["rating_distribution.png", "long_tail.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.realdata
@pytest.mark.slow
def test_gowalla_given_split(gowalla):
    s = gowalla.split("given")
    assert (len(s.train), len(s.test)) == (810_128, 217_242)
    assert (gowalla.interactions.n_users, gowalla.interactions.n_items) == (29_858, 40_981)


@pytest.mark.realdata
def test_ctr_datasets_load():
    import os
    from pathlib import Path

    if not (Path(os.environ.get("RECFORGE_DATA_DIR", "/nonexistent")) / "frappe").is_dir():
        pytest.skip("CTR data absent")
    f = load("frappe")
    y, x = f.tables["test"]
    assert x.shape == (28_860, 10) and int(y.sum()) == 9_536
    assert f.tables["log"].shape == (96_203, 11) and len(f.tables["meta"]) == 4_082  # Mobile_Frappe.zip
    assert load("frappe-pooled").tables["test"][1].shape == (28_860, 10)
    ip = load("ipinyou-fnn-sample")
    y, x = ip.tables["train"]
    assert x.shape == (26_773, 16) and int(y.sum()) == 255
    assert len(ip.tables["fields"]) == 16
    assert load("criteo-sample").tables["frame"].shape == (200, 40)
