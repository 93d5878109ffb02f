"""ONNX export of every torch model (onnxruntime parity <= 1e-4), the portable npz (the one model format) for any."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.config import FitOptions
from recforge.errors import ConfigError
from recforge.export import export_model, read_portable
from recforge.models.base import Estimator, Recommender
from recforge.models.registry import get_model_class, list_models
from recforge.testing.datasets import toy_ratings

TORCH_MODELS = [e.name for e in list_models() if e.extra == "torch" and e.task in ("rating", "ranking")
                and get_model_class(e.name).backend == "torch"]  # glocal-k trains with torch, stores numpy: npz
SMALL = {"epochs": 2, "embedding_size": 8, "batch_size": 256, "hidden_size": 16}


def _torch_model(name):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    cls = get_model_class(name)
    fields = cls.config_class().to_dict()
    params = {k: v for k, v in SMALL.items() if k in fields}
    return cls(params).fit(toy_ratings(n_users=30, n_items=25), FitOptions(seed=0, threads=1))


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_onnx_parity_every_torch_model(name, tmp_path):
    import onnx

    model = _torch_model(name)
    if model.uses_signals:  # scores pairs from their rows' signals: no (user, item) graph, npz instead
        with pytest.raises(ConfigError, match="export it as npz"):
            export_model(model, tmp_path, format="onnx")
        assert [p.name for p in export_model(model, tmp_path / "auto")] == ["model.npz"]
        return
    paths = export_model(model, tmp_path, format="onnx")
    assert {p.name for p in paths} >= {"score.onnx", "ids.npz", "model.json"}
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["model"] == name and meta["n_items"] == len(model.items_)
    assert all(v <= 1e-4 for v in meta["parity_max_abs_diff"].values())
    graph = onnx.load(str(tmp_path / "score.onnx")).graph
    assert [i.name for i in graph.input] == ["user", "item"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"  # dynamic batch size

    from recforge.export import OnnxScorer

    scorer = OnnxScorer(tmp_path)
    users = np.concatenate([model.users_.ids[:7], [10**9]])
    items = np.concatenate([model.items_.ids[:7], model.items_.ids[:1]])
    got, want = scorer.score(users, items), model.score(users, items)
    assert np.isnan(got[-1]) and np.isnan(want[-1])  # unknown user: NaN, as the model says
    np.testing.assert_allclose(got[:-1], want[:-1], atol=1e-4)


def test_two_tower_networks_export_their_towers(tmp_path):
    """A network exposing user_tower/item_tower gets both tower graphs, each parity-checked."""
    model = _torch_model("mf-torch")
    net = model.network()
    net.user_tower = lambda u: net.user(u)
    net.item_tower = lambda i: net.item(i)
    paths = export_model(model, tmp_path, format="onnx")
    assert {"user_tower.onnx", "item_tower.onnx"} <= {p.name for p in paths}
    meta = json.loads((tmp_path / "model.json").read_text())
    assert set(meta["parity_max_abs_diff"]) == {"score", "user_tower", "item_tower"}
    from recforge.export.onnx import onnx_session

    vec = onnx_session(tmp_path / "item_tower.onnx").run(None, {"item": np.array([0, 3, 5])})[0]
    np.testing.assert_allclose(vec, net.item.weight.detach().numpy()[[0, 3, 5]], atol=1e-6)


def test_onnx_rejects_non_torch_models(tmp_path):
    model = get_model_class("bias")().fit(toy_ratings())
    with pytest.raises(ConfigError, match="not a torch model"):
        export_model(model, tmp_path, format="onnx")
    with pytest.raises(ConfigError, match="unknown export format"):
        export_model(model, tmp_path, format="pmml")


@pytest.mark.parametrize("name", ["svd", "item-knn", "bias"])
def test_portable_npz_is_the_model_file(name, tmp_path):
    data = toy_ratings()
    model = get_model_class(name)({"epochs": 3} if name == "svd" else {}).fit(data, FitOptions(seed=0))
    paths = export_model(model, tmp_path)  # auto: npz for classical models
    want = ["model.npz", "embeddings.npz"] if model.has_embeddings else ["model.npz"]
    assert [p.name for p in paths] == want
    header, arrays = read_portable(tmp_path)
    assert header["model"] == name and header["config"] == model.config.to_dict()
    state = model.get_state()
    for key, val in state.items():
        if isinstance(val, np.ndarray):
            np.testing.assert_array_equal(arrays[key], val)
        elif sp.issparse(val):
            assert (arrays[key] != sp.csr_matrix(val)).nnz == 0 and arrays[key].shape == val.shape
    np.testing.assert_array_equal(arrays["users_"], model.users_.ids)
    # the one format: recforge reads the export back as a working model
    back = Estimator.load(tmp_path / "model.npz")
    users, items = data.users.ids[data.user_idx[:50]], data.items.ids[data.item_idx[:50]]
    np.testing.assert_array_equal(back.score(users, items), model.score(users, items))
    if model.has_embeddings:
        # the factors are enough to rebuild every score: mu + b_u + b_i + p_u . q_i
        u, i = data.user_idx[:50], data.item_idx[:50]
        sc = arrays["global_mean_"] + arrays["user_bias_"][u] + arrays["item_bias_"][i] + np.sum(
            arrays["user_factors"][u] * arrays["item_factors"][i], axis=1)
        np.testing.assert_allclose(sc, model.score(users, items), rtol=1e-6)
    for p in paths:
        np.load(p, allow_pickle=False)  # readable without pickle


@pytest.mark.parametrize("name", ["svd", "mf-torch"])
def test_save_load_round_trip_is_exact(name, tmp_path):
    if name == "mf-torch":
        model = _torch_model(name)
    else:
        model = get_model_class(name)({"epochs": 3}).fit(toy_ratings(), FitOptions(seed=0))
    path = model.save(tmp_path / "m.npz")
    back = Recommender.load(path)
    n = min(len(model.users_), len(model.items_))
    users, items = model.users_.ids[:n], model.items_.ids[:n]
    np.testing.assert_array_equal(back.predict(users, items), model.predict(users, items))
    np.testing.assert_array_equal(back.recommend(users[:5], k=5)[0], model.recommend(users[:5], k=5)[0])
    np.load(path, allow_pickle=False)


# ---------------------------------------------------------------------------------------- CTR models
CTR_SMALL = {
    "lr": {"epochs": 2, "batch_size": 128},
    "fm": {"epochs": 2, "batch_size": 128, "embedding_size": 4},
    # batch norm and a multi-valued field (several slots pooled into one field) in the graph
    "deepfm": {"epochs": 2, "batch_size": 128, "embedding_size": 4, "hidden": (8, 8), "batch_norm": True},
    "dcnv2": {"epochs": 2, "batch_size": 128, "embedding_size": 4, "hidden": (8, 8), "cross_layers": 2},
}
# further configurations of registered models whose graphs differ: (model name, config)
CTR_VARIANTS = {
    "dcnv2-low-rank": ("dcnv2", {"epochs": 2, "batch_size": 128, "embedding_size": 4, "hidden": (8,), "low_rank": 2,
                                 "structure": "stacked"}),
}


def _ctr_model(name):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from recforge.testing.ctr_conformance import toy_ctr

    train = toy_ctr(600)[0]
    model_name, config = CTR_VARIANTS.get(name, (name, CTR_SMALL.get(name)))
    return get_model_class(model_name)(config).fit(train, FitOptions(seed=0, threads=1))


def test_every_ctr_model_is_covered():
    ctr = {e.name for e in list_models() if e.task == "ctr"}
    assert ctr == set(CTR_SMALL)


@pytest.mark.parametrize("name", sorted(CTR_SMALL) + sorted(CTR_VARIANTS))
def test_onnx_parity_every_ctr_model(name, tmp_path):
    import onnx

    from recforge.export import OnnxCTRScorer
    from recforge.export.onnx import onnx_session
    from recforge.testing.ctr_conformance import toy_ctr, toy_ctr_frame

    model = _ctr_model(name)
    paths = export_model(model, tmp_path)  # auto: ONNX for the torch CTR models
    assert [p.name for p in paths] == ["score.onnx", "encoder.json", "model.json"]
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["task"] == "ctr" and meta["n_slots"] == len(model.slot_fields_)
    assert set(meta["parity_max_abs_diff"]) == {"logit", "probability"}
    assert all(v <= 1e-4 for v in meta["parity_max_abs_diff"].values())
    graph = onnx.load(str(tmp_path / "score.onnx")).graph
    assert [i.name for i in graph.input] == ["index", "value"]
    assert [o.name for o in graph.output] == ["logit", "probability"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"  # dynamic batch size

    # encoded rows of three batch sizes, straight through onnxruntime
    test = toy_ctr(600)[2]
    sess = onnx_session(tmp_path / "score.onnx")
    for n in (1, 7, len(test)):
        z, p = sess.run(None, {"index": test.index[:n], "value": test.value[:n]})
        np.testing.assert_allclose(z, model.decision_function(test.subset(np.arange(n))), atol=1e-4)
        np.testing.assert_allclose(p, model.predict_proba(test.subset(np.arange(n))), atol=1e-4)
    # raw rows through the exported encoder, no torch involved
    scorer = OnnxCTRScorer(tmp_path)
    df, _ = toy_ctr_frame(40, seed=5)
    np.testing.assert_allclose(scorer.score_frame(df), model.score_frame(df), atol=1e-4)
    ctx, cand = {"user": "u3", "ctx": "b"}, df[["item", "price", "tags"]]
    np.testing.assert_allclose(scorer.score_candidates(ctx, cand), model.score_candidates(ctx, cand), atol=1e-4)


def test_ctr_onnx_parity_failure_is_reported(tmp_path, monkeypatch):
    from recforge.errors import DataError
    from recforge.export import onnx as onnx_mod

    model = _ctr_model("fm")
    monkeypatch.setattr(onnx_mod, "ctr_onnx_parity", lambda m, f: {"logit": 0.5, "probability": 0.1})
    with pytest.raises(DataError, match="parity check failed"):
        export_model(model, tmp_path, format="onnx")


def test_cli_exports_a_saved_ctr_model(tmp_path):
    import typer
    from typer.testing import CliRunner

    from recforge.cli.experiment_cmds import register

    app = typer.Typer()

    @app.command("version")
    def _version() -> None:  # a second command keeps typer in multi-command mode
        pass

    register(app)
    model = _ctr_model("deepfm")
    path = model.save(tmp_path / "deepfm.npz")
    res = CliRunner().invoke(app, ["export", str(path), "--format", "onnx", "--output", str(tmp_path / "onnx")])
    assert res.exit_code == 0, res.output
    assert "parity" in res.output
    assert (tmp_path / "onnx" / "score.onnx").exists() and (tmp_path / "onnx" / "encoder.json").exists()
    meta = json.loads((tmp_path / "onnx" / "model.json").read_text())
    assert meta["model"] == "deepfm" and max(meta["parity_max_abs_diff"].values()) <= 1e-4


def test_ctr_model_portable_npz(tmp_path):
    model = _ctr_model("fm")
    paths = export_model(model, tmp_path, format="npz")
    assert [p.name for p in paths] == ["model.npz"]
    header, arrays = read_portable(tmp_path)
    assert header["model"] == "fm" and arrays["n_features_"] == model.n_features_
    np.testing.assert_array_equal(arrays["torch_state.factors.weight"], model.feature_factors().numpy())
    assert arrays["encoder_"]["n_features"] == model.n_features_
    from recforge.testing.ctr_conformance import toy_ctr

    back = Estimator.load(tmp_path / "model.npz")
    test = toy_ctr(600)[2]
    np.testing.assert_allclose(back.predict_proba(test), model.predict_proba(test), atol=1e-7)


def test_export_chooses_by_backend_not_class_name(tmp_path):
    """A torch CTR model is exported as ONNX by default; its backend says so, not its class name."""
    model = _ctr_model("lr")
    assert model.backend == "torch" and not isinstance(model, Recommender)
    assert "score.onnx" in {p.name for p in export_model(model, tmp_path / "auto")}


def test_int8_quantized_ctr_export_keeps_the_order_and_says_how_far_it_moved(tmp_path):
    import onnx

    from recforge.errors import ConfigError
    from recforge.export import OnnxCTRScorer
    from recforge.testing.ctr_conformance import toy_ctr

    model = _get_deepfm_wide()
    paths = export_model(model, tmp_path / "q", format="onnx", quantize="int8")
    assert [p.name for p in paths] == ["score.onnx", "encoder.json", "model.json"]
    ops = {n.op_type for n in onnx.load(str(tmp_path / "q" / "score.onnx")).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul"}, ops  # really int8 matmuls
    q = json.loads((tmp_path / "q" / "model.json").read_text())["quantized"]
    assert q["kind"] == "int8-dynamic" and q["spearman_logit"] >= 0.99
    assert 0 < q["max_abs_diff_vs_float"]["probability"] < 0.05  # not exact, and says so
    test = toy_ctr(600)[2]
    got = OnnxCTRScorer(tmp_path / "q").decision_function(test.index, test.value)
    ref = model.decision_function(test)
    assert np.corrcoef(got, ref)[0, 1] > 0.99
    plain = json.loads((export_model(model, tmp_path / "f", format="onnx")[-1]).read_text())
    assert plain["quantized"] is None
    with pytest.raises(ConfigError, match="quantize must be int8"):
        export_model(model, tmp_path / "x", format="onnx", quantize="int4")
    with pytest.raises(ConfigError, match="quantize applies to"):
        export_model(model, tmp_path / "y", format="npz", quantize="int8")


def _get_deepfm_wide():
    pytest.importorskip("onnxruntime")
    from recforge.testing.ctr_conformance import toy_ctr

    train = toy_ctr(600)[0]
    config = {"epochs": 2, "batch_size": 128, "embedding_size": 8, "hidden": (64, 64)}
    return get_model_class("deepfm")(config).fit(train, FitOptions(seed=0, threads=1))


def test_a_rejected_int8_graph_leaves_the_float_export_in_place(tmp_path, monkeypatch):
    """When the int8 graph fails its order check, an existing export folder (a new one is removed)
    used to hold it (and a model.json that described it) after the error; now it keeps the float
    graph and says so."""
    import onnx

    from recforge.errors import DataError
    from recforge.export import onnx as onnx_export

    model = _get_deepfm_wide()
    monkeypatch.setattr(onnx_export, "QUANTIZED_MIN_SPEARMAN", 1.5)  # no graph can pass
    (tmp_path / "q").mkdir()  # re-exporting into the folder the service reads
    with pytest.raises(DataError, match="changes the model's order too much.*keeps the float graph"):
        export_model(model, tmp_path / "q", format="onnx", quantize="int8")
    ops = {n.op_type for n in onnx.load(str(tmp_path / "q" / "score.onnx")).graph.node}
    assert not ops & {"MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul"}, ops
    assert json.loads((tmp_path / "q" / "model.json").read_text())["quantized"] is None
    assert not [p.name for p in (tmp_path / "q").iterdir() if p.name.startswith(".")]  # no temp file left
