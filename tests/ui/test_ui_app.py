"""The UI's routes in process (TestClient) over a tiny synthetic catalogue: every page renders,
events posted to the mounted service change the lists, each item carries a reason, uploads show
the CLI's one-line errors, the leaderboard keeps the protocol on every row."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest

from recforge.ui.catalog import Catalog

PNG = b"\x89PNG\r\n\x1a\n"
ACTION = [10, 11, 12, 13, 14]  # the tiny data's groups (conftest.tiny_data)
DRAMA = [20, 21, 22, 23, 24]


def recs(client, slug, user, k=5):
    r = client.get(f"/svc/{slug}/v1/users/{user}/recommendations", params={"k": k})
    assert r.status_code == 200, r.text
    return r.json()


def rate(client, state, user, item, value):
    r = client.post(f"/svc/{state.served[0].slug}/v1/events",
                    json={"user_id": user, "item_id": item, "type": "rating", "value": value},
                    headers={"X-API-Key": state.api_key})
    assert r.status_code == 201, r.text


# ---------------------------------------------------------------------------------------- pages
@pytest.mark.parametrize("url, text", [
    ("/try", "Find movies"), ("/data", "Statistics"), ("/leaderboard", "No runs folder"),
    ("/user", "User drill-down"), ("/embeddings", "None of the served models has embeddings"),
    ("/ops", "Operations"),
])
def test_every_page_renders_with_navigation(ui, url, text):
    _, client = ui
    r = client.get(url)
    assert r.status_code == 200 and text in r.text
    assert 'aria-current="page"' in r.text and 'href="#main"' in r.text  # current page marked, skip link


def test_root_redirects_to_try(ui):
    _, client = ui
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/try"


def test_try_page_names_every_model_and_the_write_key(ui):
    state, client = ui
    html = client.get("/try").text
    for m in state.served:
        assert f'id="recs-{m.slug}"' in html and m.label in html
    assert f'data-key="{state.api_key}"' in html and 'data-scale=\'[1.0, 5.0]\'' in html


def test_no_asset_points_off_the_machine():
    root = Path(__import__("recforge.ui", fromlist=["x"]).__file__).parent
    for path in [*root.glob("templates/*.html"), *root.glob("static/*")]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9]", text, re.I), f"{path.name} references another host"


# ---------------------------------------------------------------------------------------- try it
def test_search_by_title_and_genre_most_popular_first(ui, data):
    _, client = ui
    counts = dict(zip(data.items.ids.tolist(), data.item_counts().tolist(), strict=True))
    got = client.get("/api/search", params={"q": "drama movie", "limit": 50}).json()["items"]
    assert sorted(x["item_id"] for x in got) == DRAMA
    assert [counts[x["item_id"]] for x in got] == sorted((counts[i] for i in DRAMA), reverse=True)
    got = client.get("/api/search", params={"genre": "Thriller"}).json()["items"]
    assert {x["item_id"] for x in got} == set(ACTION)
    assert client.get("/api/search", params={"q": "21"}).json()["items"][0]["title"] == "Drama Movie 21"
    assert client.get("/api/search", params={"q": "nothing like it"}).json()["items"] == []
    # years 1990 + position: Action 10-14 are 1990-1994, Drama 20-24 1995-1999
    got = client.get("/api/search", params={"year_min": 1993, "year_max": 1995}).json()["items"]
    assert sorted(x["item_id"] for x in got) == [13, 14, 20]
    got = client.get("/api/search", params={"genre": "Drama", "year_min": 1998}).json()["items"]
    assert sorted(x["item_id"] for x in got) == [23, 24]


def test_ratings_posted_to_the_service_change_every_models_list(ui):
    state, client = ui
    user = "ui-new"
    before = {m.slug: recs(client, m.slug, user) for m in state.served}
    assert all(b["source"] == "fallback-popularity" for b in before.values())
    for item in DRAMA[:3]:
        rate(client, state, user, item, 5)
    after = {m.slug: recs(client, m.slug, user) for m in state.served}
    for m in state.served:
        ids = [x["item_id"] for x in after[m.slug]["items"]]
        assert after[m.slug]["source"] not in ("fallback-popularity", "none")  # the model (its retriever) answered
        assert not set(ids) & set(DRAMA[:3])  # rated items are not recommended again
        assert ids != [x["item_id"] for x in before[m.slug]["items"]]
    # item-kNN follows the rated group: the two unrated Drama movies lead its list
    assert {x["item_id"] for x in after["item-knn-implicit"]["items"][:2]} == set(DRAMA[3:])
    hist = client.get("/api/history", params={"user": user}).json()
    assert [e["item_id"] for e in hist["recent"]] == DRAMA[:3][::-1] and hist["known"] is False


def test_every_recommended_item_gets_a_reason(ui):
    state, client = ui
    user = "ui-reasons"
    for item in DRAMA[:2]:
        rate(client, state, user, item, 5)
    body = recs(client, "item-knn-implicit", user)
    ids = ",".join(str(x["item_id"]) for x in body["items"])
    got = client.get("/api/explain", params={"user": user, "items": ids, "source": body["source"]}).json()["items"]
    assert [x["item_id"] for x in got] == [x["item_id"] for x in body["items"]]
    assert all(x["reasons"] for x in got)
    first = got[0]
    assert first["item_id"] in DRAMA
    assert first["reasons"][0].startswith("because you liked Drama Movie 2")
    assert "matches your genres: Drama" in first["reasons"]


def test_popularity_fallback_gives_only_the_popular_reason(ui, data):
    _, client = ui
    got = client.get("/api/explain", params={"user": "nobody", "items": "10,20",
                                             "source": "fallback-popularity"}).json()["items"]
    counts = dict(zip(data.items.ids.tolist(), data.item_counts().tolist(), strict=True))
    assert got[0]["reasons"] == [f"popular: {counts[10]} interactions (popularity fallback)"]


def test_catalog_reasons_exact(data):
    cat = Catalog(data)
    # Drama 21 and 20 share more users than Drama 21 and Action 10
    got = cat.explain([21], [10, 20], "model")[0]
    assert got.reasons[0] == "because you liked Drama Movie 20"
    assert got.reasons[1] == "matches your genres: Drama"
    # an item without a liked neighbour and outside the top decile: the model's score is the reason
    lonely = Catalog(data).explain([99], [], "model")[0]
    assert lonely.reasons == ["not in the catalogue"]
    assert cat.search("", "Drama", limit=2)[0]["genres"] == ["Drama"]


def test_popular_among_similar_users_reason(data):
    df = data.to_dataframe()
    liked = [20, 21, 22]
    per_user = df.groupby("user_id")["item_id"].apply(set)
    similar = [u for u, items in per_user.items() if len(items & set(liked)) >= 2]
    assert len(similar) == 6
    got = Catalog(data).explain([23, 24], liked, "model")
    for item, reason in zip([23, 24], got, strict=True):
        share = sum(item in per_user[u] for u in similar) / len(similar)
        assert f"popular among similar users: {share:.0%} of 6 who liked your picks" in reason.reasons
    # the user is not among their own similar users
    shares, n = Catalog(data).similar_users_share([0], [1], user=data.users.ids[0])
    assert n == int(np.sum(np.asarray(data.csr()[:, 0].todense()).ravel() > 0)) - 1


def test_existing_user_history_counts_the_dataset(ui, data):
    _, client = ui
    n = int(np.sum(data.user_idx == data.users.index_one(3)))
    got = client.get("/api/history", params={"user": "3"}).json()
    assert got["known"] is True and got["n_train"] == n


def test_bad_ids_are_refused(ui):
    _, client = ui
    assert client.get("/api/history", params={"user": "a/b"}).status_code == 422
    assert client.get("/api/search", params={"limit": 1000}).status_code == 422


# ---------------------------------------------------------------------------------------- data
def test_data_page_shows_the_stats_and_every_plot_is_a_png(ui, data):
    _, client = ui
    html = client.get("/data").text
    assert f"<td>{data.n_users}</td>" in html and f"<td>{len(data)}</td>" in html
    for kind in ("rating_distribution", "long_tail", "activity", "sparsity"):
        assert f"/data/plot/{kind}.png" in html
        r = client.get(f"/data/plot/{kind}.png")
        assert r.status_code == 200 and r.content.startswith(PNG), kind
    assert client.get("/data/plot/nope.png").status_code == 404


def test_upload_a_valid_csv_shows_its_stats(ui):
    _, client = ui
    csv = b"user,item,stars\n1,a,5\n1,b,3\n2,a,4\n3,c,1\n"
    r = client.post("/data/upload", files={"file": ("mine.csv", csv, "text/csv")},
                    data={"user_col": "user", "item_col": "item", "rating_col": "stars"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/data?upload=")
    html = client.get(r.headers["location"]).text
    assert "Data: mine.csv" in html and "<td>3</td>" in html  # 3 users, 3 items
    token = r.headers["location"].split("=", 1)[1]
    assert client.get(f"/data/plot/long_tail.png?upload={token}").content.startswith(PNG)


def test_upload_a_malformed_csv_shows_the_clis_one_line_error(ui, tmp_path):
    from recforge.data import load_file
    from recforge.errors import DataError

    _, client = ui
    csv = "user_id,item_id,rating\n1,2,3\n1,3,abc\n"
    ref = tmp_path / "bad.csv"
    ref.write_text(csv)
    with pytest.raises(DataError) as exc:
        load_file(ref, rating="rating")
    want = "error: " + str(exc.value).replace(str(ref), "bad.csv")
    r = client.post("/data/upload", files={"file": ("bad.csv", csv.encode(), "text/csv")},
                    data={"rating_col": "rating"})
    assert r.status_code == 422
    shown = re.search(r'<p class="error" role="alert" id="upload-error">(.*?)</p>', r.text, re.S).group(1)
    assert shown == want.replace("'", "&#39;") and "\n" not in shown
    assert "line 3" in shown and "bad.csv" in shown and str(tmp_path) not in r.text


@pytest.mark.parametrize("name, body, status, fragment", [
    ("notes.txt", b"x", 422, "unsupported file type .txt"),
    ("big.csv", b"user_id,item_id\n" + b"1,2\n" * 20000, 413, "larger than"),
    ("cols.csv", b"a,b\n1,2\n", 422, "no column &#39;user_id&#39; (--user-col) the file&#39;s columns are a, b"),
    ("bin.parquet", b"not parquet at all", 422, "bin.parquet"),
])
def test_upload_refusals_are_one_line(ui, name, body, status, fragment):
    _, client = ui
    r = client.post("/data/upload", files={"file": (name, body, "application/octet-stream")})
    assert r.status_code == status
    line = re.search(r'<p class="error" role="alert" id="upload-error">(.*?)</p>', r.text, re.S).group(1)
    assert line.startswith("error: ") and fragment in line and "\n" not in line and "Traceback" not in r.text


# ---------------------------------------------------------------------------------------- leaderboard
def test_leaderboard_rows_carry_protocol_and_fold_intervals(data, tmp_path, make_state, write_run):
    from fastapi.testclient import TestClient
    from scipy import stats

    from recforge.ui.app import create_ui_app

    runs = tmp_path / "runs"
    write_run(runs / "a", "svd-u1u5", "svd", "rating-u1u5", {"RMSE": [0.9, 1.0, 1.1]})
    write_run(runs / "b", "pop-loo", "popularity", "loo-full", {"NDCG@10": [0.05]}, fit_seconds=0.25)
    (runs / "broken").mkdir()
    (runs / "broken" / "run.json").write_text("{not json")
    state = make_state(data, tmp_path, runs=runs)
    with TestClient(create_ui_app(state)) as client:
        html = client.get("/leaderboard").text
    rows = re.findall(r"<tr>\s*<td><input.*?</tr>", html, re.S)
    assert len(rows) == 2
    assert all('class="protocol"' in r for r in rows)
    assert "loo-full" in rows[0] and "rating-u1u5 (3 folds)" in rows[1]  # sorted by protocol
    half = stats.t.ppf(0.975, 2) * 0.1 / np.sqrt(3)
    assert f"[{1.0 - half:.4f}, {1.0 + half:.4f}]" in rows[1]
    assert "[" not in rows[0].split("NDCG")[0].split("loo-full")[1].split("0.0500")[1].split("</td>")[0]
    assert "0.25" in rows[0]
    assert "skipped:" in html and "broken/run.json: not a readable run record" in html


def test_user_intervals_exact():
    from scipy import stats

    from recforge.ui.runs import user_intervals

    got = user_intervals({("m", "HR@10"): np.array([0.0, 1.0, 1.0, 0.0, np.nan]), ("m", "x"): np.array([1.0])})
    half = stats.t.ppf(0.975, 3) * np.std([0, 1, 1, 0], ddof=1) / 2
    assert got == [{"model": "m", "metric": "HR@10", "mean": 0.5, "low": pytest.approx(0.5 - half),
                    "high": pytest.approx(0.5 + half), "n": 4}]


def test_compare_needs_two_runs_and_the_same_protocol(data, tmp_path, make_state, write_run):
    from fastapi.testclient import TestClient

    from recforge.ui.app import create_ui_app

    runs = tmp_path / "runs"
    spec = {"dataset": {"name": "ml-100k"}, "model": {"name": "popularity", "params": {}}}
    write_run(runs / "a", "pop-loo", "popularity", "loo-full", {"NDCG@10": [0.05]},
              spec={**spec, "name": "pop-loo", "protocol": {"name": "loo-full"}})
    write_run(runs / "b", "pop-ratio", "popularity", "ratio-full", {"NDCG@10": [0.04]},
              spec={**spec, "name": "pop-ratio", "protocol": {"name": "ratio-full"}})
    state = make_state(data, tmp_path, runs=runs)
    with TestClient(create_ui_app(state)) as client:
        r = client.post("/leaderboard/compare", data={"run": ["a"]})
        assert r.status_code == 422 and "select exactly two runs to compare (1 selected)" in r.text
        r = client.post("/leaderboard/compare", data={"run": ["a", "b"]}, follow_redirects=False)
        assert r.status_code == 303
        page = client.get(r.headers["location"])
        assert page.status_code == 200 and "Paired test: pop-loo vs pop-ratio" in page.text
        job = state.jobs.wait("compare:a|b", timeout=60)
        assert job.state == "error" and "compare needs the same dataset, protocol, k and seed" in job.error
        again = client.get(r.headers["location"]).text
        assert "error: compare needs the same dataset" in again and 'data-state="error"' in again
        assert state.jobs.get("compare:a|b") is job  # reloading shows the error, it does not rerun
        assert client.get("/leaderboard/compare", params={"a": "a", "b": "zzz"}).status_code == 404


def test_run_plots_are_served_only_from_the_run_folder(data, tmp_path, make_state, write_run):
    from fastapi.testclient import TestClient

    from recforge.ui.app import create_ui_app

    runs = tmp_path / "runs"
    folder = write_run(runs / "a", "pop", "popularity", "loo-full", {"HR@10": [0.1]})
    (folder / "plots").mkdir()
    (folder / "plots" / "metric_vs_k.png").write_bytes(PNG + b"rest")
    state = make_state(data, tmp_path, runs=runs)
    with TestClient(create_ui_app(state)) as client:
        assert "/runs/file?run=a&amp;name=plots/metric_vs_k.png" in client.get("/leaderboard").text
        assert client.get("/runs/file", params={"run": "a", "name": "plots/metric_vs_k.png"}).content == PNG + b"rest"
        assert client.get("/runs/file", params={"run": "a", "name": "../../events.db"}).status_code == 404
        assert client.get("/runs/file", params={"run": "a", "name": "run.json"}).status_code == 404


# ---------------------------------------------------------------------------------------- drill-down
def test_user_drilldown_ranks_the_held_out_item(ui, data):
    from recforge.splits import leave_one_out

    state, client = ui
    first = client.get("/user", params={"user": "7"})
    assert first.status_code == 200 and "History in the dataset" in first.text
    assert state.jobs.wait("holdout", timeout=120).state == "done"
    html = client.get("/user", params={"user": "7"}).text
    split = leave_one_out(data, seed=0)
    test = split.test
    held = test.items.ids[test.item_idx[test.user_idx == test.users.index_one(7)]].tolist()
    assert len(held) == 1 and f"<th scope=\"row\">{state.catalog.title(held[0])}</th>" in html
    # popularity ranks the held-out item by training counts among the items user 7 had not seen
    counts = split.train.item_counts().astype(float)
    seen = set(split.train.item_idx[split.train.user_idx == split.train.users.index_one(7)].tolist())
    j = split.train.items.index_one(held[0])
    unseen = [i for i in range(split.train.n_items) if i not in seen]
    want = 1 + sum(counts[i] > counts[j] for i in unseen)
    pop = re.search(r"Rank of the held-out item.*?<tr><th scope=\"row\">.*?</th>(.*?)</tr>", html, re.S).group(1)
    assert re.findall(r'<td class="num">(\d+)</td>', pop)[1] == str(want)


def test_embedding_page_draws_the_map_with_the_users_items(data, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from recforge.ui import pages_insights
    from recforge.ui.app import create_ui_app
    from recforge.ui.insights import embedding_figure

    # a served model with embeddings: ALS on the tiny data (few epochs), the projection replaced
    # by the first two coordinates so the test does not run UMAP
    from recforge.config import FitOptions
    from recforge.models.registry import make_model
    from recforge.ui.served import serve_models
    from recforge.ui.state import UIConfig, UIState

    model = make_model("ials", {"embedding_size": 4, "epochs": 2}).fit(data, FitOptions(seed=0, threads=1))
    served = serve_models([("ials", model, None)], item_features=data.item_features, database=tmp_path / "e.db")
    state = UIState(UIConfig(k=5), data=data, dataset_name="tiny", served=served, workdir=tmp_path)
    monkeypatch.setattr(pages_insights, "item_coords",
                        lambda m: (m.items_.ids, np.asarray(m.embeddings()[1])[:, :2].astype(float)))
    with TestClient(create_ui_app(state)) as client:
        client.get("/embeddings", params={"user": "7"})
        assert state.jobs.wait("umap:ials", timeout=60).state == "done"
        state.catalog.titles[0] = "Evil </script><b>title"
        html = client.get("/embeddings", params={"user": "7"}).text
    assert "Evil <\\/script><b>title" in html and "</script><b>" not in html  # a title cannot end the script
    assert '<script src="/vendor/plotly.min.js"' in html and "this user&#39;s items" not in html
    fig = embedding_figure(model.items_.ids, np.zeros((10, 2)), state.catalog, [20, 21], "t")
    assert fig["data"][-1]["name"] == "this user's items" and len(fig["data"][-1]["x"]) == 2
    assert {t["name"] for t in fig["data"][:-1]} == {"Action", "Drama"}
    n_hist = int(np.sum(data.user_idx == data.users.index_one(7)))
    assert f"The {n_hist} items of user 7 are the yellow diamonds" in html


# ---------------------------------------------------------------------------------------- operations
def test_ops_reports_requests_events_and_version(ui):
    state, client = ui
    slug = state.served[0].slug
    recs(client, slug, "ops-user")
    rate(client, state, "ops-user", DRAMA[0], 4)
    bad = client.post(f"/svc/{slug}/v1/events", json={"user_id": "x", "item_id": 999, "type": "click"},
                      headers={"X-API-Key": state.api_key})
    assert bad.status_code == 422
    got = client.get("/api/ops").json()["services"][0]
    assert got["version"] == state.served[0].version and got["requests"] == 3
    assert got["events"] == {"rating": 1} and got["rejected"] == {"unknown-item": 1}
    assert got["sources"] == {"fallback-popularity": 1} and got["latency_ms"]["p99"] is not None
    assert got["by_route"] == {"/v1/events": 2, "/v1/users/{user_id}/recommendations": 1}
    html = client.get("/ops").text
    assert state.served[0].version in html and "unknown-item 1" in html


def test_events_need_the_pages_key(ui):
    state, client = ui
    r = client.post(f"/svc/{state.served[0].slug}/v1/events", json={"user_id": "x", "item_id": 10, "type": "click"})
    assert r.status_code == 401


@pytest.mark.slow
def test_compare_two_saved_runs_gives_recforge_compares_paired_tests(data, tmp_path, make_state):
    """Two real `recforge run` outputs on a CSV log; the page's table equals `compare()`'s own."""
    from fastapi.testclient import TestClient

    from recforge.experiments import run
    from recforge.experiments.compare import compare
    from recforge.experiments.spec import ExperimentSpec
    from recforge.ui.app import create_ui_app

    log = tmp_path / "log.csv"
    data.to_dataframe()[["user_id", "item_id"]].to_csv(log, index=False)
    runs = tmp_path / "runs"
    specs = []
    for model in ("popularity", "item-knn-implicit"):
        spec = ExperimentSpec.from_dict({"name": model, "seed": 0, "dataset": {"path": str(log)},
                                         "protocol": {"name": "loo-full", "k": 3}, "model": {"name": model},
                                         "logger": {"kind": "none"}, "outputs": {"dir": str(runs / model)}})
        run(spec)
        specs.append(spec.replace(output=str(tmp_path / "direct" / model)))
    want = compare(specs, output=tmp_path / "direct" / "compare").tests
    stamps = {p: p.stat().st_mtime_ns for p in runs.rglob("*") if p.is_file()}
    state = make_state(data, tmp_path, runs=runs)
    with TestClient(create_ui_app(state)) as client:
        url = "/leaderboard/compare?a=popularity&b=item-knn-implicit"
        client.get(url)
        job = state.jobs.wait("compare:popularity|item-knn-implicit", timeout=300)
        assert job.state == "done", job.error
        html = client.get(url).text
    got = job.result["tests"]
    assert [(t["metric"], t["model"]) for t in got] == list(zip(want["metric"], want["model"], strict=True))
    for t, (_, w) in zip(got, want.iterrows(), strict=True):
        assert t["mean"] == pytest.approx(w["mean"]) and t["n"] == w["n"]
        if t["model"] != "popularity":
            assert t["p_ttest"] == pytest.approx(w["p_ttest"]) and t["p_wilcoxon"] == pytest.approx(w["p_wilcoxon"])
    assert "p (Wilcoxon)" in html and "loo-full" in html and "95% interval" in html
    pop = next(c for c in job.result["intervals"] if c["model"] == "popularity" and c["metric"] == "HR@3")
    w = want[(want["model"] == "popularity") & (want["metric"] == "HR@3")].iloc[0]
    assert pop["mean"] == pytest.approx(w["mean"]) and pop["low"] < pop["mean"] < pop["high"]
    # the saved runs are read, never rewritten: the reruns write under the UI's work folder
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("*") if p.is_file()} == stamps


def test_jobs_run_one_at_a_time_keep_errors_as_one_line_and_retry_them():
    import threading

    from recforge.errors import ConfigError
    from recforge.ui.jobs import Jobs

    jobs = Jobs()
    gate = threading.Event()
    running = []

    def slow():
        running.append("a")
        gate.wait(5)
        return 1

    a = jobs.start("a", "first", slow)
    b = jobs.start("b", "second", lambda: running.append("b") or 2)
    assert jobs.start("a", "again", lambda: 99) is a  # one job per key
    time.sleep(0.2)
    assert running == ["a"] and b.state == "queued"  # the second waits for the first
    gate.set()
    assert jobs.wait("b", 5).result == 2 and a.result == 1 and running == ["a", "b"]

    def bad():
        raise ConfigError("pick two different runs to compare")

    assert jobs.wait(jobs.start("c", "bad", bad).key, 5).error == "pick two different runs to compare"
    assert jobs.start("c", "bad again", lambda: 3).state == "error"  # no automatic retry
    retried = jobs.start("c", "bad again", lambda: 3, retry=True)
    assert jobs.wait("c", 5) is retried and retried.result == 3
    jobs.shutdown()
