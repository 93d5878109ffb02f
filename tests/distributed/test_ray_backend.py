"""The Ray backend against the local one, on a real local Ray cluster (127.0.0.1, 2 CPUs) started
once for this module: full-ranking evaluation gives identical metrics and lists, the batch job
writes identical rows (SQLite and PostgreSQL) under the same lock, and tuning runs its trials on
Ray workers with pruning, each completed trial scoring what the local objective scores.

"Identical" is bit for bit against a local run with the workers' numerics: the same blocks and one
BLAS thread (a float32 product of a block rounds differently with another thread count)."""

from __future__ import annotations

import uuid

import pytest

ray = pytest.importorskip("ray", reason="the Ray tests need ray: pip install 'recforge[ray]'")
pytest.importorskip("sqlalchemy", reason="the batch tests need SQLAlchemy (the serve extra)")

import json  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from recforge.data.interactions import Interactions  # noqa: E402
from recforge.errors import ConfigError, DataError  # noqa: E402
from recforge.evaluation.blocks import (  # noqa: E402
    LocalExecutor,
    block_executor,
    current_executor,
    memory_budget,
    plan_blocks,
)
from recforge.evaluation.protocols import evaluate, full_ranking  # noqa: E402
from recforge.models import make_model  # noqa: E402
from recforge.serving.batch import run_batch  # noqa: E402
from recforge.serving.db import make_engine  # noqa: E402
from recforge.serving.locks import table_lock  # noqa: E402
from recforge.splits import random_split  # noqa: E402

from recforge.distributed.batch import run_batch_ray  # noqa: E402
from recforge.distributed.cluster import connect  # noqa: E402
from recforge.distributed.evaluate import evaluate_ray  # noqa: E402
from recforge.distributed.scoring import RayExecutor, ray_scoring  # noqa: E402

pytestmark = pytest.mark.slow


def one_blas_thread():
    """The local reference with the workers' numerics: each Ray worker scores with one BLAS
    thread, and a float32 matrix product rounds differently with another thread count."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    """One local Ray cluster for the module: 127.0.0.1, 2 CPUs, no dashboard."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=200 * 2**20, _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


@pytest.fixture(scope="class")
def pool(ray_cluster):
    """Two scoring actors for the scoring tests (started once: on a loaded machine that takes
    seconds), stopped before the tuning tests, whose trials need the two CPUs they hold."""
    ex = RayExecutor(2)
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def log() -> Interactions:
    """300 users x 120 items, ~20 interactions each, power-law item popularity; string user ids."""
    rng = np.random.default_rng(7)
    pop = 1.0 / np.arange(1, 121) ** 0.8
    rows = []
    for u in range(300):
        items = rng.choice(120, size=int(rng.integers(8, 32)), replace=False, p=pop / pop.sum())
        rows += [(f"u{u}", int(i) + 1000) for i in items]
    return Interactions.from_dataframe(pd.DataFrame(rows, columns=["user_id", "item_id"]))


# ---------------------------------------------------------------------------------------- cluster
def test_connect_joins_the_running_cluster_and_checks_the_cpus():
    info = connect(None, 2)
    assert (info.started, info.cpus, info.workers) == (False, 2, 2)
    with pytest.raises(ConfigError, match="offers 2 CPU"):
        connect(None, 3)
    with pytest.raises(ConfigError, match="positive integer"):
        connect(None, 0)
    assert ray.is_initialized()  # a joined cluster is left running


# ---------------------------------------------------------------------------------------- scoring
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def database(request, tmp_path):
    """A SQLite file, or the PostgreSQL test database (tables dropped afterwards)."""
    table = f"t_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'recs.db'}", table
        return
    url = request.getfixturevalue("pg_url")
    yield url, table
    eng = make_engine(url)
    with eng.begin() as conn:
        for t in sa.inspect(conn).get_table_names():
            if t.startswith(table):
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{t}"')
    eng.dispose()


def _rows(url, table):
    eng = make_engine(url)
    with eng.connect() as conn:
        t = sa.Table(table, sa.MetaData(), autoload_with=conn)
        rows = conn.execute(sa.select(t.c.user_id, t.c.rank, t.c.item_id, t.c.score, t.c.model_version)
                            .order_by(t.c.user_id, t.c.rank)).all()
        names = sa.inspect(conn).get_table_names()
    eng.dispose()
    return rows, names


@pytest.fixture(scope="module")
def log_file(tmp_path_factory, log):
    path = tmp_path_factory.mktemp("log") / "log.csv"
    log.to_dataframe()[["user_id", "item_id"]].to_csv(path, index=False)
    return path


def _cli(*args):
    from recforge.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_evaluate_on_ray_gives_identical_metrics(ml100k):
    # a budget that splits ML-100K's 943 test users into blocks of ~300, so both workers score
    with memory_budget("12MB"):
        with one_blas_thread():
            local = evaluate(make_model("ials", {"epochs": 3}), ml100k, "ratio-full", k=10).summary
        seen = []

        def on_fit(model, split, fold):
            seen.append(plan_blocks(model, split.test.n_users, 10).n_blocks)

        remote = evaluate_ray(make_model("ials", {"epochs": 3}), ml100k, "ratio-full", workers=2, k=10,
                              on_fit=on_fit).summary
    assert seen and seen[0] >= 3
    cols = [c for c in local.columns if "@" in c or c in ("n_eval", "n_fallback")]
    assert len(cols) >= 8
    assert local[cols].to_dict("records") == remote[cols].to_dict("records")
    assert local["NDCG@10"].iloc[0] > 0.1  # a real ranking, not an empty one
    assert isinstance(current_executor(), LocalExecutor)  # the pool evaluate_ray started is gone


class TestScoringOnRay:
    """Evaluation and the batch job on one actor pool for the class: the local backend's outputs,
    bit for bit. (The pool holds both CPUs: a test that starts its own pool runs outside the class.)"""

    def test_full_ranking_on_ray_equals_local_lists_and_metrics(self, log, pool):
        split = random_split(log, test_fraction=0.2, seed=0)
        metrics = ("HR", "NDCG", "MAP")
        with block_executor(pool), ray_scoring(2) as ex:
            assert ex is pool and current_executor() is pool  # an enclosing pool of the same size is reused
            for name in ("popularity", "item-knn-implicit", "ials"):
                model = make_model(name, {"epochs": 3} if name == "ials" else {}).fit(split.train)
                with block_executor(None), one_blas_thread():  # the local loop, for reference
                    base, recs, n_fb = full_ranking(model, split.test, 10, metrics, block=37)  # 8 blocks, last short
                per, recs_ray, n_fb_ray = full_ranking(model, split.test, 10, metrics, block=37)
                assert ex._loaded is model  # the model was shipped to the workers
                np.testing.assert_array_equal(recs_ray, recs)
                for m in base:
                    np.testing.assert_array_equal(per[m], base[m])
                assert n_fb_ray == n_fb
            assert len(set(ex.pids)) == 2 and os.getpid() not in ex.pids  # two worker processes did the scoring
        assert isinstance(current_executor(), LocalExecutor)

    def test_batch_on_ray_writes_the_same_rows_under_the_same_lock(self, database, log, pool):
        url, table = database
        model = make_model("ials", {"epochs": 3}).fit(log)
        with one_blas_thread():
            local = run_batch(model, url, k=5, table=f"{table}_local", batch_size=64, version="v")
        with block_executor(pool):  # run_batch_ray uses the module's actors
            res = run_batch_ray(model, url, workers=2, k=5, table=table, batch_size=64, version="v")
        assert pool._loaded is model
        assert (res.n_users, res.n_rows) == (local.n_users, local.n_rows) == (300, 1500)
        rows, names = _rows(url, table)
        assert rows == _rows(url, f"{table}_local")[0]
        assert not [n for n in names if n.startswith(f"{table}__")]  # the staging table was swapped in
        # the same lock as the local job: while another job holds it, the Ray job waits, then gives up
        eng = make_engine(url)
        try:
            with block_executor(pool), table_lock(eng, table), pytest.raises(DataError, match="another batch job"):
                run_batch_ray(make_model("popularity").fit(log), url, workers=2, k=5, table=table, lock_timeout=0.3)
        finally:
            eng.dispose()
        assert _rows(url, table)[0] == rows  # the previous set stays

    def test_cli_evaluate_and_batch_with_backend_ray(self, log_file, tmp_path, pool):
        common = ["--model", "item-knn-implicit", "--dataset", log_file, "--protocol", "ratio-full", "--k", 10,
                  "--format", "json", "--memory-budget", "2MB"]  # blocks of ~100 users
        with one_blas_thread():
            local = _cli("evaluate", *common)
        with block_executor(pool):
            remote = _cli("evaluate", *common, "--backend", "ray", "--workers", 2)
        assert local.exit_code == 0 and remote.exit_code == 0, remote.output
        a, b = (json.loads(r.stdout[r.stdout.index("{"):]) for r in (local, remote))
        assert b["backend"].startswith("ray (2 workers")
        strip = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]  # noqa: E731
        assert strip(a["rows"]) == strip(b["rows"])

        db = tmp_path / "recs.db"
        with block_executor(pool):
            out = _cli("batch", "--model", "popularity", "--dataset", log_file, "--database", db, "--k", 3,
                       "--batch-size", 100, "--backend", "ray", "--no-progress")
        assert out.exit_code == 0, out.output
        assert "wrote 900 rows for 300 users" in out.output and "scored on ray (2 workers" in out.output

    def test_cli_backend_options_are_checked_in_one_line(self, log_file):
        out = _cli("evaluate", "--model", "popularity", "--dataset", log_file, "--workers", 2)
        assert out.exit_code == 2 and "--workers needs --backend ray" in out.output
        out = _cli("evaluate", "--model", "popularity", "--dataset", log_file, "--backend", "spark")
        assert out.exit_code == 2 and "--backend must be local or ray" in out.output
        out = _cli("batch", "--model", "popularity", "--dataset", log_file, "--backend", "ray", "--workers", 3,
                   "--database", "unused.db")
        assert out.exit_code == 2 and "offers 2 CPU(s)" in out.output and "Traceback" not in out.output


# ---------------------------------------------------------------------------------------- tuning
TUNE_FILE = """
name = "bpr-ray-{tag}"
seed = 0
[dataset]
name = "ml-100k"
[protocol]
name = "loo-full"
k = 10
[model]
name = "bpr"
[model.params]
epochs = 4
embedding_size = 16
[training]
threads = 1
[logger]
kind = "none"
[tune]
n_trials = 5
pruner = "median"
report_every = 1
# four good learning rates, then one that leaves the factors at their random start: it must be pruned
enqueue = [{{learning_rate = 0.05}}, {{learning_rate = 0.04}}, {{learning_rate = 0.03}}, {{learning_rate = 0.06}},
           {{learning_rate = 0.000001}}]
[tune.space.learning_rate]
type = "float"
low = 0.000001
high = 0.1
log = true
"""


@pytest.mark.services
def test_tune_on_ray_shares_a_postgresql_study_and_prunes(ml100k, pg_url, tmp_path):
    import optuna

    from recforge.distributed.tune import open_storage, tune_ray
    from recforge.tuning import tune

    cfg = tmp_path / "bpr.toml"
    cfg.write_text(TUNE_FILE.format(tag=uuid.uuid4().hex[:6]))
    lines: list[str] = []
    res = tune_ray(cfg, workers=2, storage=pg_url, output=tmp_path / "ray", echo=lines.append)
    trials = res.trials.set_index("trial")
    assert len(trials) == 5 and sum(line.startswith("trial ") for line in lines) == 5
    # the fifth trial starts when at least three have finished: the median pruner stops it at epoch 1
    assert trials.loc[4, "state"] == "pruned" and trials.loc[4, "epochs_reported"] == 1
    assert (trials["state"] == "complete").sum() >= 2 and res.best_value > 0.03
    assert (tmp_path / "ray" / "trials.csv").exists() and res.best_file.exists()
    # the study lives in PostgreSQL, where the workers shared it
    stored = optuna.load_study(study_name=res.study.study_name, storage=open_storage(pg_url))
    assert len(stored.trials) == 5
    optuna.delete_study(study_name=res.study.study_name, storage=open_storage(pg_url))
    # each completed trial scored what the local objective scores for its hyperparameters
    local = tune(cfg, n_trials=4, output=tmp_path / "local").trials.set_index("trial")
    for t in trials.index[:4]:
        if trials.loc[t, "state"] == "complete" and local.loc[t, "state"] == "complete":
            assert trials.loc[t, "value"] == local.loc[t, "value"]


def test_cli_tune_with_backend_ray_uses_a_journal_file_by_default(ml100k, tmp_path):
    cfg = tmp_path / "bpr.toml"
    cfg.write_text(TUNE_FILE.format(tag="cli").replace("n_trials = 5", "n_trials = 2"))
    out = _cli("tune", cfg, "--backend", "ray", "--output", tmp_path / "out")
    assert out.exit_code == 0, out.output
    assert (tmp_path / "out" / "optuna-journal.log").stat().st_size > 0
    states = pd.read_csv(tmp_path / "out" / "trials.csv")["state"]
    assert states.isin(["complete", "pruned"]).sum() == 2  # the other enqueued trials stay waiting, as locally
    bad = _cli("tune", cfg, "--storage", "x.log")
    assert bad.exit_code == 2 and "--storage is for --backend ray" in bad.output
