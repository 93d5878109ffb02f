"""``ials`` on Ray actors: the same factors as the local solver, and ``recforge train --backend ray``.

A real local Ray cluster (2 CPUs, 127.0.0.1) is started once for the module; the module is
skipped when Ray is not installed.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'recforge[ray]')")

from typer.testing import CliRunner  # noqa: E402

from recforge.cli.main import app  # noqa: E402
from recforge.config import FitOptions  # noqa: E402
from recforge.data.interactions import Interactions  # noqa: E402
from recforge.distributed.ials import _ShardSolver, _slice_rows, shard_bounds  # noqa: E402
from recforge.distributed.train import fit_on_ray  # noqa: E402
from recforge.errors import ConfigError  # noqa: E402
from recforge.models._threads import kernel_threads  # noqa: E402
from recforge.models.factorization._base import chunk_bounds  # noqa: E402
from recforge.models.factorization.ials import ImplicitALS, solve_half  # noqa: E402
from recforge.models.registry import get_model_class  # noqa: E402


TOL = {"rtol": 1e-3, "atol": 1e-4}


@pytest.fixture(scope="module")
def cluster():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, address="local", _node_ip_address="127.0.0.1",
                 logging_level="WARNING")
    yield ray
    if started:
        ray.shutdown()


def power_log(n_users: int = 300, n_items: int = 120, n: int = 6000, seed: int = 0) -> Interactions:
    """An implicit log with power-law item popularity and counts as values (some users and items
    have no rows after deduplication only by chance; one item is never seen)."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items) ** 0.9
    items = rng.choice(n_items - 1, n, p=pop / pop.sum())
    users = rng.integers(0, n_users, n)
    df = pd.DataFrame({"user": users, "item": items, "count": rng.integers(1, 4, n).astype(float)})
    df = df.groupby(["user", "item"], as_index=False)["count"].sum()
    return Interactions.from_dataframe(df, user="user", item="item", rating="count", name="power-log")


def test_same_factors_as_the_local_solver(cluster, solver="cg"):
    # (the exact solver's shards: test_shards_solve_exactly_what_the_whole_solve_gives)
    data = power_log()
    cfg = {"epochs": 4, "embedding_size": 16, "solver": solver, "reg": 5.0}
    local = ImplicitALS(**cfg).fit(data, FitOptions(seed=7, threads=2))
    remote = ImplicitALS(**cfg)
    out = fit_on_ray(remote, data, workers=2, options=FitOptions(seed=7))
    assert out is remote and remote.fits_on_ray
    # the actors run the local kernel on the same rows, B and G: equal up to float32 rounding. On
    # one thread the shards give the bits of the whole solve (test_shards_solve_exactly_...); across
    # threads and processes the compiled float32 sums round differently in the last bits (seen: 3e-7
    # per half-step, 4e-5 after 4 sweeps of the unconverged CG), hence rtol 1e-3 / atol 1e-4 on
    # factors of size ~0.3: a wrong shard or a stale broadcast is off by the factors' own scale
    np.testing.assert_allclose(remote.user_factors_, local.user_factors_, **TOL)
    np.testing.assert_allclose(remote.item_factors_, local.item_factors_, **TOL)
    assert np.abs(local.user_factors_).max() > 0.05  # the comparison is of trained factors, not of zeros
    assert remote.history_["epoch"] == [0.0, 1.0, 2.0, 3.0]
    users = data.users.ids[:5]
    np.testing.assert_array_equal(remote.recommend(users, k=5)[0], local.recommend(users, k=5)[0])


def test_fit_options_backend_and_save_load(cluster, tmp_path):
    data = power_log(seed=1)
    local = ImplicitALS(epochs=2, embedding_size=8).fit(data, FitOptions(seed=3, verbose=True))
    model = ImplicitALS(epochs=2, embedding_size=8).fit(data, FitOptions(seed=3, backend="ray", workers=2,
                                                                         verbose=True))
    np.testing.assert_allclose(model.item_factors_, local.item_factors_, **TOL)
    assert len(model.history_["train_loss"]) == 2  # verbose: the driver computes the objective
    np.testing.assert_allclose(model.history_["train_loss"], local.history_["train_loss"], rtol=1e-3)
    back = ImplicitALS.load(model.save(tmp_path / "ials.npz"))
    np.testing.assert_array_equal(back.user_factors_, model.user_factors_)
    np.testing.assert_allclose(back.fold_in(data.items.ids[:3]), local.fold_in(data.items.ids[:3]), **TOL)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_shards_solve_exactly_what_the_whole_solve_gives(solver):
    # the actors' class, used in this process: sharded half-steps equal the local half-step bit for bit
    data = power_log(seed=4)
    csr = data.csr()
    rows = (csr.indptr.astype(np.int64), csr.indices.astype(np.int32), (10.0 * csr.data).astype(np.float32))
    rng = np.random.default_rng(0)
    X = rng.normal(0, 0.1, (data.n_users, 8)).astype(np.float32)
    Y = rng.normal(0, 0.1, (data.n_items, 8)).astype(np.float32)
    Bd = Y.astype(np.float64)
    G = (Bd.T @ Bd + 5.0 * np.eye(8)).astype(np.float32)
    whole = X.copy()
    # one thread, as each shard solver runs: with several numba threads even the whole solve is not
    # bit-reproducible from run to run (seen: 3e-7 apart on rows that a different thread solved)
    with kernel_threads(1):
        solve_half(solver, 3, chunk_bounds(rows[0], 1.0, 1.0, 4), *rows, whole, Y, G)
    parts = shard_bounds(rows[0], 1.0, 1.0, 3)
    assert len(parts) == 3
    sharded = np.empty_like(X)
    cols = (np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32))
    for lo, hi in parts:
        shard = _ShardSolver(solver, 3, 1, 1.0, 1.0, _slice_rows(rows, lo, hi), cols, X[lo:hi], Y[:0])
        sharded[lo:hi] = shard.solve("users", Y, G)
    np.testing.assert_array_equal(sharded, whole)
    assert not np.array_equal(whole, X)


def test_shards_balance_cost_and_cover_every_row():
    indptr = np.concatenate([[0], np.cumsum([50, 1, 1, 1, 1, 1, 1, 1, 40, 3])])
    parts = shard_bounds(indptr, 1.0, 1.0, 2)
    assert parts[0][0] == 0 and parts[-1][1] == 10
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    assert len(parts) == 2
    assert shard_bounds(np.zeros(1, np.int64), 1.0, 1.0, 3) == []


def test_models_without_a_ray_backend_are_refused():
    data = power_log(n=500)
    with pytest.raises(ConfigError, match="cannot train on Ray"):
        get_model_class("ease")().fit(data, FitOptions(backend="ray"))
    with pytest.raises(ConfigError, match="backend"):
        FitOptions(backend="spark")
    with pytest.raises(ConfigError, match="workers"):
        FitOptions(workers=0)


def test_more_workers_than_the_cluster_has_cpus_is_one_line(cluster):
    with pytest.raises(ConfigError, match="CPU"):
        fit_on_ray(ImplicitALS(epochs=1), power_log(n=500), workers=64)


def test_cli_train_ials_on_ray(cluster, tmp_path):
    data = power_log(seed=2)
    data.to_dataframe().to_csv(tmp_path / "log.csv", index=False)
    runner = CliRunner()
    out = tmp_path / "ials.npz"
    args = ["train", "--model", "ials", "--dataset", str(tmp_path / "log.csv"), "--set", "epochs=2",
            "--set", "embedding_size=8", "--seed", "5", "--output", str(out)]
    res = runner.invoke(app, [*args, "--backend", "ray", "--workers", "2"])
    assert res.exit_code == 0, res.output
    ref = tmp_path / "local.npz"
    res = runner.invoke(app, [*args[:-1], str(ref)])
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(ImplicitALS.load(out).user_factors_, ImplicitALS.load(ref).user_factors_,
                               **TOL)
    bad = runner.invoke(app, [*args, "--backend", "spark"])
    assert bad.exit_code == 2 and "use local or ray" in bad.output


def test_cli_run_with_training_backend_ray(cluster, tmp_path):
    # `recforge run FILE` with [training] backend = "ray": the protocol's fit runs on the actors
    data = power_log(seed=3)
    data.to_dataframe().to_csv(tmp_path / "log.csv", index=False)
    text = f"""
name = "ials-on-ray"
seed = 0
[dataset]
path = "{tmp_path / 'log.csv'}"
[model]
name = "ials"
[model.params]
epochs = 2
embedding_size = 8
[protocol]
name = "ratio-full"
[training]
backend = "ray"
workers = 2
[logger]
kind = "none"
"""
    (tmp_path / "exp.toml").write_text(text)
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(tmp_path / "exp.toml"), "--no-outputs", "--output", str(tmp_path / "out"),
                              "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert 0.05 < out["metrics"]["NDCG@20"] <= 1.0  # a fitted ials ranks (same factors: tests above)
    (tmp_path / "bad.toml").write_text(text.replace('backend = "ray"', 'backend = "spark"'))
    bad = runner.invoke(app, ["run", str(tmp_path / "bad.toml"), "--no-outputs"])
    assert bad.exit_code == 2 and "backend" in bad.output
