"""The CTR ranker (feature rows for (user, candidates), scored by DeepFM/LR in one call) and
cold-start routing to a content model, on the clustered synthetic set with known features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recforge.config import FitOptions
from recforge.errors import ConfigError
from recforge.serving import Pipeline

pytest.importorskip("faiss")


def taste(u: int) -> str:
    """User u (raw id 1 + index) likes the items of genre g((u - 1) % 4): see conftest.clustered."""
    return f"g{(u - 1) % 4}"


@pytest.fixture(scope="module")
def user_features() -> pd.DataFrame:
    ids = np.arange(1, 61)
    return pd.DataFrame({"taste": [taste(u) for u in ids], "age": 20 + ids},
                        index=pd.Index(ids, name="user_id"))


def ctr_frame(clustered_data, user_features) -> pd.DataFrame:
    """Every (user, item) pair of the clustered set; label 1 when the item has the user's genre."""
    itf = clustered_data.item_features
    rows = []
    for u in range(1, 61):
        for j in range(40):
            item = 1000 + j
            rows.append({"user": str(u), "age": float(user_features.loc[u, "age"]), "taste": taste(u),
                         "item": str(item), "genres": itf.loc[item, "genres"],
                         "label": float(f"g{j // 10}" == taste(u))})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def ctr_parts(clustered_data, user_features):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from recforge.data.ctr import FeatureEncoder, FieldSpec
    from recforge.models.ctr.fm import DeepFM

    df = ctr_frame(clustered_data, user_features)
    enc = FeatureEncoder([FieldSpec("user"), FieldSpec("age", "numeric", transform="bins", n_bins=4),
                          FieldSpec("taste"), FieldSpec("item"), FieldSpec("genres", "multi")])
    rows = enc.fit_transform(df)
    model = DeepFM(embedding_size=8, hidden=(16,), epochs=20, batch_size=128, learning_rate=0.01,
                   dropout=0.0).fit(rows, FitOptions(seed=0, threads=1))
    return model, enc, df


@pytest.mark.slow  # fits DeepFM once (torch and Lightning start-up)
def test_ctr_rows_are_the_encoders_rows(ctr_parts, ials_model, clustered_data, user_features):
    from recforge.serving.ranking import CTRRanker

    model, enc, df = ctr_parts
    rk = CTRRanker(model, enc, ials_model.items_.ids, user_features, clustered_data.item_features)
    assert rk.user_side == ["user", "age", "taste"] and rk.item_side == ["item", "genres"]
    items = ials_model.items_.index(np.array([1000, 1015, 1039]))
    idx, val = rk.rows(7, items)
    ref = enc.transform(df[(df.user == "7") & df.item.isin(["1000", "1015", "1039"])])
    np.testing.assert_array_equal(idx, ref.index)
    np.testing.assert_array_equal(val, ref.value)
    # one vectorised call gives the model's own scores of those rows
    ctx = type("Ctx", (), {"user_id": 7})()
    np.testing.assert_allclose(rk.score(ctx, items), model.decision_function(ref.index, ref.value))
    # a user without features: out-of-vocabulary id and taste, the missing-age bin
    ui, uv = rk.user_row("stranger")
    ref_new = enc.transform(pd.DataFrame({"user": ["stranger"], "age": [np.nan], "taste": ["?"], "item": ["1000"],
                                          "genres": ["g0|all"]}))
    np.testing.assert_array_equal(ui, ref_new.index[0, rk.user_slots])


@pytest.mark.slow  # fits DeepFM once (torch and Lightning start-up)
def test_deepfm_ranker_puts_the_users_genre_first(ctr_parts, pop_model, clustered_data, user_features):
    from recforge.serving.ranking import CTRRanker

    model, enc, _ = ctr_parts
    rk = CTRRanker(model, enc, pop_model.items_.ids, user_features, clustered_data.item_features)
    plain = Pipeline(pop_model, retriever="popularity", n_candidates=40)
    ranked = Pipeline(pop_model, retriever="popularity", n_candidates=40, ranker=rk)
    for u in (2, 7, 12, 33):
        seen = clustered_data.csr()[u - 1].indices
        left = 10 - len(seen)  # unseen items of the user's genre
        got = ranked.recommend(u, left).item_ids
        assert all(clustered_data.item_features.loc[i, "genres"].startswith(taste(u)) for i in got), (u, got)
        base = plain.recommend(u, left).item_ids
        assert base != got  # popularity alone mixes genres
    assert ranked.describe()["ranker"] == "ctr:deepfm"


@pytest.mark.slow  # fits DeepFM once (torch and Lightning start-up)
def test_ctr_ranker_from_a_config_file(tmp_path, ctr_parts, ials_model, clustered_data, user_features):
    model, enc, _ = ctr_parts
    model.save(tmp_path / "deepfm.npz")
    enc.save(tmp_path / "enc.json")
    user_features.to_csv(tmp_path / "users.csv")
    clustered_data.item_features.to_csv(tmp_path / "items.csv")
    cfg = tmp_path / "pipe.toml"
    cfg.write_text('[retrieval]\nkind = "popularity"\nn_candidates = 40\n'
                   '[ranking]\nkind = "ctr"\nmodel = "deepfm.npz"\nencoder = "enc.json"\n'
                   'user_features = "users.csv"\nitem_features = "items.csv"\n')
    p = Pipeline.from_config(cfg, ials_model)
    got = p.recommend(7, 3).item_ids
    assert all(clustered_data.item_features.loc[i, "genres"].startswith("g2") for i in got)
    bad = tmp_path / "bad.toml"
    bad.write_text('[ranking]\nkind = "ctr"\nmodel = "deepfm.npz"\nuser_features = "users.csv"\n'
                   'item_features = "items.csv"\n')
    if getattr(model, "encoder_", None) is None:
        with pytest.raises(ConfigError, match="needs encoder"):
            Pipeline.from_config(bad, ials_model)
    else:  # a CTR model that keeps its encoder needs no encoder file
        assert Pipeline.from_config(bad, ials_model).recommend(7, 3).item_ids == got
    bad.write_text('[ranking]\nkind = "ctr"\nmodel = "deepfm.npz"\nencoder = "enc.json"\nitem_features = "items.csv"\n')
    with pytest.raises(ConfigError, match="'age' is neither"):
        Pipeline.from_config(bad, ials_model)
    with pytest.raises(ConfigError, match="ranking kind must be none, model or ctr"):
        Pipeline.from_config({"ranking": {"kind": "deep"}}, ials_model)


@pytest.mark.slow  # fits DeepFM once (torch and Lightning start-up)
def test_ctr_ranker_rejects_a_foreign_encoder(ctr_parts, ials_model, clustered_data, user_features):
    from recforge.data.ctr import FeatureEncoder, FieldSpec
    from recforge.serving.ranking import CTRRanker

    model, _, df = ctr_parts
    other = FeatureEncoder([FieldSpec("item"), FieldSpec("genres", "multi")]).fit(df)
    with pytest.raises(ConfigError, match="features"):
        CTRRanker(model, other, ials_model.items_.ids, user_features, clustered_data.item_features)
    with pytest.raises(ConfigError, match="CTR model"):
        CTRRanker(ials_model, other, ials_model.items_.ids, user_features, clustered_data.item_features)


# ---------------------------------------------------------------------------------------- cold start
@pytest.fixture(scope="module")
def content_model(clustered_data):
    from recforge.models.content.content import ContentBased

    return ContentBased(columns=("genres",)).fit(clustered_data, FitOptions(seed=0))


def genre_of(clustered_data, item) -> str:
    return clustered_data.item_features.loc[item, "genres"].split("|")[0]


def test_cold_users_get_the_cold_model(ials_model, content_model, clustered_data):
    p = Pipeline(ials_model, cold_start=content_model, cold_threshold=5)
    events = [(p.view.item_index(i), 1.0) for i in (1031, 1033, 1035)]  # three g3 items
    rec = p.recommend("new-user", 6, events)
    assert rec.source == "cold-start"
    assert {genre_of(clustered_data, i) for i in rec.item_ids} == {"g3"}
    assert not {1031, 1033, 1035} & set(rec.item_ids)
    # no events: the fallback chain (popular items)
    assert p.recommend("new-user", 5).source == "fallback-popularity"
    # a warm user stays with the model; a threshold above every history sends them to the cold model
    assert p.recommend(3, 5).source == "model"
    all_cold = Pipeline(ials_model, cold_start=content_model, cold_threshold=100)
    r = all_cold.recommend(3, 4)
    assert r.source == "cold-start"
    assert {genre_of(clustered_data, i) for i in r.item_ids} == {taste(3)}
    # without a cold model, the same new user is folded into the factor model
    assert Pipeline(ials_model).recommend("new-user", 5, events).source == "model"
    assert p.describe()["cold_start"] == {"model": "content", "threshold": 5}


def test_cold_start_in_batch_and_config(tmp_path, ials_model, plain_toy, content_model, clustered_data):
    content_model.save(tmp_path / "content.npz")
    cfg = tmp_path / "p.toml"
    cfg.write_text('[cold_start]\nmodel = "content.npz"\nthreshold = 100\n')
    p = Pipeline.from_config(cfg, ials_model)
    idx, _ = p.recommend_indices(np.array([0, 1, 2]), 3)
    for r, u in enumerate((1, 2, 3)):
        got = ials_model.items_.ids[idx[r]]
        assert {genre_of(clustered_data, i) for i in got} == {taste(u)}
    bad = tmp_path / "bad.toml"
    bad.write_text('[cold_start]\nmodel = "content.npz"\nminimum = 3\n')
    with pytest.raises(ConfigError, match="unknown cold_start option"):
        Pipeline.from_config(bad, ials_model)
    with pytest.raises(ConfigError, match="must score a history"):
        Pipeline(ials_model, cold_start=plain_toy)  # a model that does not declare scores_history
    with pytest.raises(ConfigError, match="threshold"):
        Pipeline(ials_model, cold_start=content_model, cold_threshold=0)


def test_cold_start_passes_history_and_values_to_the_cold_model(ials_model, history_toy):
    p = Pipeline(ials_model, cold_start=history_toy, cold_threshold=5)
    events = [(p.view.item_index(1031), 2.0), (p.view.item_index(1033), 0.5)]  # latest first
    rec = p.recommend("new-user", 4, events)
    assert rec.source == "cold-start"
    idx, vals, _ = history_toy.calls[-1]
    np.testing.assert_array_equal(history_toy.items_.ids[idx], [1033, 1031])  # oldest first
    np.testing.assert_allclose(vals, [0.5, 2.0])
    row = vals @ history_toy.cooc_[idx]
    row[idx] = -np.inf
    want = history_toy.items_.ids[np.lexsort((np.arange(len(row)), -row))[:4]]
    assert rec.item_ids == want.tolist()
