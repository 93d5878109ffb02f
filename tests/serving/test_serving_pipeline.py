"""Post-processing stages and the pipeline: exact cases, fallbacks, fold-in, config files."""

from __future__ import annotations

import pytest

pytest.importorskip("faiss")

from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from recforge.data.vocabulary import Vocabulary  # noqa: E402
from recforge.errors import ConfigError  # noqa: E402
from recforge.serving.pipeline import Pipeline  # noqa: E402
from recforge.serving.postprocess import MMR, AllowList, BlockList, DropSeen, MinScore, attribute_sets  # noqa: E402


def ctx(history=()):
    return SimpleNamespace(history=np.asarray(history, np.int64))


# ---------------------------------------------------------------------------------------- stages
@pytest.fixture
def small_items():
    voc = Vocabulary([10, 11, 12, 13], "item")
    feats = pd.DataFrame({"genres": ["Horror|Drama", "Comedy", None, "Drama"], "year": [1990, 2000, 2000, 1990]},
                         index=pd.Index([13, 10, 11, 12][::-1][::-1], name="item_id"))
    # index order deliberately differs from the vocabulary's: 13, 10, 11, 12
    return voc, feats


def test_attribute_sets_follow_item_ids_not_row_order(small_items):
    voc, feats = small_items
    sets = attribute_sets(feats, voc, "genres")
    # item 10 -> "Comedy" (row 2), 11 -> None, 12 -> "Drama", 13 -> "Horror|Drama"
    assert sets == [frozenset({"Comedy"}), frozenset(), frozenset({"Drama"}), frozenset({"Horror", "Drama"})]
    assert attribute_sets(feats, voc, "year")[0] == frozenset({"2000"})
    with pytest.raises(ConfigError, match="no column"):
        attribute_sets(feats, voc, "nope")


def test_filters(small_items):
    voc, feats = small_items
    items = np.array([3, 2, 1, 0])
    scores = np.array([4.0, 3.0, np.nan, 1.0])
    it, sc = DropSeen().apply(ctx([2, 0]), items, scores)
    np.testing.assert_array_equal(it, [3, 1])
    it, _ = BlockList(voc, attribute="genres", values=["Drama"], item_features=feats).apply(ctx(), items, scores)
    np.testing.assert_array_equal(it, [1, 0])
    it, _ = BlockList(voc, item_ids=[10, 999]).apply(ctx(), items, scores)
    np.testing.assert_array_equal(it, [3, 2, 1])
    it, _ = AllowList(voc, attribute="year", values=[1990], item_features=feats).apply(ctx(), items, scores)
    np.testing.assert_array_equal(it, [3, 2])
    it, sc = MinScore(2.0).apply(ctx(), items, scores)
    np.testing.assert_array_equal(it, [3, 2])
    with pytest.raises(ConfigError):
        BlockList(voc)
    with pytest.raises(ConfigError):
        MinScore(float("nan"))


def test_mmr_exact_small_case():
    # items 0 and 1 are identical, 2 is orthogonal; relevance 1.0, 0.9, 0.0 after scaling
    vecs = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    items, scores = np.array([0, 1, 2]), np.array([1.0, 0.9, 0.0])
    keep = MMR(vecs, lambda_=1.0, k=3).apply(ctx(), items, scores)
    np.testing.assert_array_equal(keep[0], [0, 1, 2])
    # lambda 0.5: after item 0, item 1 scores 0.5*0.9 - 0.5*1 = -0.05, item 2 scores 0 - 0 = 0
    div = MMR(vecs, lambda_=0.5, k=3).apply(ctx(), items, scores)
    np.testing.assert_array_equal(div[0], [0, 2, 1])
    np.testing.assert_allclose(div[1], [1.0, 0.0, 0.9])
    # lambda 0.6: item 1 scores 0.54 - 0.4 = 0.14 > 0, so the near-duplicate stays second
    np.testing.assert_array_equal(MMR(vecs, lambda_=0.6, k=3).apply(ctx(), items, scores)[0], [0, 1, 2])
    with pytest.raises(ConfigError):
        MMR(vecs, lambda_=1.5)


def test_mmr_over_genres_diversifies(small_items):
    voc, feats = small_items
    mmr = MMR.from_attribute(voc, feats, "genres", lambda_=0.3, k=4)
    items = np.array([2, 3, 0, 1])  # Drama, Horror|Drama, Comedy, none
    it, _ = mmr.apply(ctx(), items, np.array([1.0, 0.99, 0.98, 0.97]))
    assert it[0] == 2 and it[1] == 0  # after a Drama, the Comedy beats the other Drama


# ---------------------------------------------------------------------------------------- pipeline
def test_exact_pipeline_equals_model_recommend(ials_model):
    p = Pipeline(ials_model, index={"kind": "exact"}, n_candidates=50)
    for u in [1, 2, 17, 60]:
        want, want_sc = ials_model.recommend(u, 8)
        got = p.recommend(u, 8)
        assert got.source == "model"
        np.testing.assert_array_equal(got.item_ids, want)
        np.testing.assert_allclose(got.scores, want_sc, rtol=1e-5)


def test_recommend_indices_matches_single_requests(ials_model):
    p = Pipeline(ials_model, index={"kind": "flat"}, ranker=ials_model)
    users = np.arange(0, 60, 7)
    idx, sc = p.recommend_indices(users, 5)
    for r, u in enumerate(users):
        one = p.recommend(ials_model.users_.ids[u], 5)
        np.testing.assert_array_equal(p.view.item_ids[idx[r]], one.item_ids)


def test_unknown_user_gets_popular_then_fold_in(ials_model, clustered_data):
    p = Pipeline(ials_model, index={"kind": "exact"})
    cold = p.recommend("stranger", 5)
    assert cold.source == "fallback-popularity"
    counts = clustered_data.item_counts()
    assert [counts[p.view.item_index(i)] for i in cold.item_ids] == sorted(counts, reverse=True)[:5]
    clicks = [1030, 1031, 1032]  # cluster 3 items
    recent = [(p.view.item_index(i), 1.0) for i in clicks]
    warm = p.recommend("stranger", 5, recent)
    assert warm.source == "model"
    assert not set(clicks) & set(warm.item_ids)
    assert all(1030 <= i < 1040 for i in warm.item_ids)  # the rest of cluster 3
    # the folded-in vector is the model's own fold_in, with the events' values
    c = p.context("stranger", recent)
    assert c.folded
    np.testing.assert_allclose(c.vector, ials_model.fold_in(clicks, [1.0, 1.0, 1.0]), rtol=1e-5)


def test_fold_in_model_gets_history_and_event_values(fold_toy):
    p = Pipeline(fold_toy, index={"kind": "exact"}, ranker=fold_toy)
    u = p.view.user_index(1)
    train = p.view.train_history(u)
    new = [i for i in range(len(p.view.item_ids)) if i not in set(train.tolist())][:2]
    recent = [(new[0], 3.0), (new[1], 0.5), (new[0], 9.0)]  # latest first: the repeat is older
    c = p.context(1, recent)
    assert c.folded and not c.cold
    idx, vals = fold_toy.calls[-1]
    np.testing.assert_array_equal(np.sort(idx), np.union1d(train, new))
    want = dict(zip(idx.tolist(), vals.tolist(), strict=True))
    assert want[new[0]] == 3.0 and want[new[1]] == 0.5 and all(want[i] == 1.0 for i in train.tolist())
    np.testing.assert_allclose(c.vector, vals @ fold_toy.item_vecs_[idx], rtol=1e-5)
    # the ranker scores the folded vector against the model's public item vectors
    rec = p.recommend(1, 5, recent)
    got = fold_toy.items_.index(rec.item_ids)
    np.testing.assert_allclose(rec.scores, fold_toy.item_vecs_[got] @ c.vector.astype(np.float64), rtol=1e-5)
    assert list(rec.scores) == sorted(rec.scores, reverse=True)


def test_history_scoring_ranker_scores_a_user_with_events(ials_model, history_toy):
    p = Pipeline(ials_model, index={"kind": "exact"}, n_candidates=15, ranker=history_toy)
    u = p.view.user_index(1)
    train = p.view.train_history(u)
    new = next(i for i in range(len(p.view.item_ids)) if i not in set(train.tolist()))
    rec = p.recommend(1, 5, [(new, 2.5)])
    assert rec.source == "model"
    idx, vals, user = history_toy.calls[-1]
    assert user == history_toy.users_.index_one(1)
    np.testing.assert_array_equal(history_toy.items_.ids[idx], p.view.item_ids[np.union1d(train, [new])])
    assert vals[np.searchsorted(idx, history_toy.items_.index_one(p.view.item_ids[new]))] == 2.5
    row = vals @ history_toy.cooc_[idx]
    np.testing.assert_allclose(rec.scores, row[history_toy.items_.index(rec.item_ids)])
    assert list(rec.scores) == sorted(rec.scores, reverse=True)
    # without events the user is scored from training: no history call
    n_calls = len(history_toy.calls)
    p.recommend(1, 5)
    assert len(history_toy.calls) == n_calls


def test_ranker_without_history_capabilities_scores_from_training(ials_model, plain_toy):
    p = Pipeline(ials_model, index={"kind": "exact"}, n_candidates=20, ranker=plain_toy)
    rec = p.recommend(5, 10, [(p.view.item_index(1001), 4.0)])
    np.testing.assert_allclose(rec.scores, plain_toy.score(5, rec.item_ids))
    assert "calls" not in vars(plain_toy)


def test_known_user_events_change_the_list(ials_model):
    p = Pipeline(ials_model, index={"kind": "exact"})
    before = p.recommend(1, 5)  # user 1 is in cluster 0
    recent = [(p.view.item_index(i), 1.0) for i in (1020, 1021, 1022, 1023, 1024, 1025)]
    after = p.recommend(1, 5, recent)
    assert before.item_ids != after.item_ids
    assert sum(1020 <= i < 1030 for i in after.item_ids) > sum(1020 <= i < 1030 for i in before.item_ids)


def test_model_without_embeddings_answers_from_recent_items(pop_model):
    p = Pipeline(pop_model, retriever="popularity")
    assert p.recommend("nobody", 3).source == "popularity"  # the primary here, and it says so
    p2 = Pipeline(pop_model, retriever="item-knn")
    assert p2.recommend("nobody", 3).source == "fallback-popularity"
    rec = p2.recommend("nobody", 4, [(p2.view.item_index(1010), 1.0), (p2.view.item_index(1011), 1.0)])
    assert rec.source == "item-knn"  # co-occurrence, not the model: the source says which
    assert all(1010 <= i < 1020 for i in rec.item_ids)
    with pytest.raises(ConfigError, match="no embeddings"):
        Pipeline(pop_model, retriever="ann")


def test_ranker_reorders_candidates(ials_model, pop_model):
    p = Pipeline(ials_model, index={"kind": "exact"}, n_candidates=20, ranker=pop_model)
    rec = p.recommend(5, 10)
    pop = pop_model.score(5, rec.item_ids)
    assert list(pop) == sorted(pop, reverse=True)
    np.testing.assert_allclose(rec.scores, pop)
    # an unknown user: the ranker cannot score, retrieval order is kept
    rec2 = p.recommend("x", 5, [(p.view.item_index(1001), 1.0)])
    assert rec2.source == "model"


def test_block_and_short_lists_are_padded_with_allowed_popular_items(ials_model, clustered_data):
    feats = clustered_data.item_features
    p = Pipeline.from_config({
        "retrieval": {"kind": "ann", "index": "exact", "n_candidates": 3},
        "postprocess": [{"kind": "drop-seen"}, {"kind": "block", "attribute": "genres", "values": ["g1"]}],
    }, ials_model, item_features=feats)
    rec = p.recommend(2, 10)  # user 2 is in cluster 1, which is blocked
    assert len(rec.item_ids) == 10
    assert not any(1010 <= i < 1020 for i in rec.item_ids)
    assert any(s is None for s in rec.scores)  # padding carries no model score


def test_from_config_file_and_errors(tmp_path, ials_model, clustered_data):
    cfg = tmp_path / "pipe.toml"
    cfg.write_text(
        '[retrieval]\nkind = "ann"\nindex = "hnsw"\nn_candidates = 30\nef_search = 64\n'
        '[ranking]\nkind = "model"\n'
        '[[postprocess]]\nkind = "drop-seen"\n'
        '[[postprocess]]\nkind = "mmr"\nlambda = 0.5\nusing = "genres"\n'
    )
    p = Pipeline.from_config(cfg, ials_model, item_features=clustered_data.item_features)
    assert p.describe() == {"retrieval": "ann", "index": "hnsw", "fallback": ["item-knn", "popularity"],
                            "n_candidates": 30, "ranker": "ials", "cold_start": None,
                            "postprocess": ["drop-seen", "mmr"]}
    assert len(p.recommend(3, 5).item_ids) == 5
    yml = tmp_path / "pipe.yaml"
    yml.write_text("pipeline:\n  retrieval: {kind: popularity}\n")
    assert Pipeline.from_config(yml, ials_model).describe()["retrieval"] == "popularity"
    for bad, msg in [
        ({"retrieval": {"kind": "lsh"}}, "retrieval kind"),
        ({"retrieval": {"nprobes": 2}}, "unknown retrieval option"),
        ({"ranking": {"kind": "gbdt"}}, "ranking kind"),
        ({"postprocess": [{"kind": "shuffle"}]}, "unknown postprocess"),
        ({"postprocess": [{"kind": "min-score", "threshold": 1, "x": 2}]}, "unknown option"),
        ({"postprocess": [{"kind": "block", "attribute": "genres", "values": ["g1"]}]}, "needs item features"),
        ({"extra": {}}, "unknown pipeline section"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            Pipeline.from_config(bad, ials_model)


def test_similar_items(ials_model, pop_model):
    p = Pipeline(ials_model, index={"kind": "exact"})
    ids, sc = p.similar_items(1000, 3)
    want, want_sc = ials_model.similar_items(1000, 3)
    np.testing.assert_array_equal(ids, want)
    np.testing.assert_allclose(sc, want_sc, rtol=1e-5)
    # a model with neither neighbours nor embeddings: item co-occurrence
    q = Pipeline(pop_model, retriever="popularity")
    ids, _ = q.similar_items(1000, 3)
    assert len(ids) == 3 and all(1000 <= i < 1010 for i in ids)
    assert len(q.similar_items(424242, 3)[0]) == 0


@pytest.mark.slow
def test_ml100k_hnsw_and_ivf_recall(ml100k):
    from recforge.config import FitOptions
    from recforge.models.factorization.als import ImplicitALS
    from recforge.serving.retrieval import EmbeddingIndex, IndexConfig, recall_against_exact

    m = ImplicitALS(embedding_size=32, epochs=5).fit(ml100k.interactions.to_implicit(), FitOptions(seed=0, threads=1))
    uv, iv = m.embeddings()
    exact = EmbeddingIndex(iv, IndexConfig(kind="exact")).search(uv[:300], 100)[0]
    hnsw = EmbeddingIndex(iv, IndexConfig(kind="hnsw")).search(uv[:300], 100)[0]
    ivf = EmbeddingIndex(iv, IndexConfig(kind="ivf", nprobe=8)).search(uv[:300], 100)[0]
    assert recall_against_exact(hnsw, exact) >= 0.97
    assert recall_against_exact(ivf, exact) >= 0.6


def test_id_lookups_are_the_vocabularys(ials_model):
    # the request path's one-id lookup (Vocabulary.index_one, a dict) answers what Vocabulary.index does
    from recforge.data.vocabulary import Vocabulary

    view = Pipeline(ials_model, index={"kind": "exact"}).view
    for raw in (1000, "1000", np.int64(1000), "01000", 1000.0, "x", "-5", 424242):
        assert view.items.index_one(raw) == int(view.items.index(np.asarray([raw]))[0]), raw
    assert view.item_index("1000") == view.item_index(1000) >= 0 and view.user_index("stranger") == -1
    words = Vocabulary(["a", "b", "7"])
    for raw in ("b", 7, np.int64(7), "zz"):
        assert words.index_one(raw) == int(words.index(np.asarray([raw]))[0]), raw
