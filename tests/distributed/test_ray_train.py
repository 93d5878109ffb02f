"""Torch models on Ray Train (TorchTrainer + Lightning DDP over gloo) against one process.

A real local Ray cluster (2 CPUs, 127.0.0.1) is started once for the module; the module is skipped
when Ray (with Ray Train) is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'recforge[ray]')")
pytest.importorskip("ray.train.lightning", reason="Ray Train is not installed (pip install 'recforge[ray]')")

from recforge.config import FitOptions  # noqa: E402
from recforge.distributed.train import RankSlices, fit_on_ray  # noqa: E402
from recforge.errors import ConfigError  # noqa: E402
from recforge.evaluation.protocols import get_protocol  # noqa: E402
from recforge.models.registry import get_model_class  # noqa: E402
from recforge.testing.datasets import toy_ratings  # noqa: E402
from recforge.training.loop import trainer_plan  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, address="local", _node_ip_address="127.0.0.1",
                 logging_level="WARNING")
    yield ray
    if started:
        ray.shutdown()


def test_rank_slices_split_every_batch_into_contiguous_parts():
    batches = [(torch.arange(5), torch.arange(5) * 10), (torch.arange(1), torch.arange(1)),
               (torch.arange(4), torch.arange(3))]
    r0, r1 = list(RankSlices(batches, 0, 2)), list(RankSlices(batches, 1, 2))
    assert len(RankSlices(batches, 1, 2)) == 3
    assert r0[0][0].tolist() == [0, 1] and r1[0][0].tolist() == [2, 3, 4]
    assert r1[0][1].tolist() == [20, 30, 40]
    # fewer rows than workers, or not row-aligned: every worker keeps the whole batch
    assert r0[1][0].tolist() == r1[1][0].tolist() == [0]
    assert r0[2][1].tolist() == r1[2][1].tolist() == [0, 1, 2]
    # the parts of three workers cover the batch once, in order
    parts = [RankSlices([(torch.arange(7),)], r, 3).part((torch.arange(7),))[0].tolist() for r in range(3)]
    assert sum(parts, []) == list(range(7))


class _Recording:
    """A TrainerPlan of one process that shards like worker 1 of 2 and records the calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def trainer_options(self) -> dict:
        self.calls.append("options")
        return {}

    def prepare(self, trainer):
        self.calls.append("prepare")
        return trainer

    def shard(self, train):
        self.calls.append("shard")
        return RankSlices(train, 1, 2)


def test_fit_network_trains_on_the_plans_share_of_every_batch():
    data = toy_ratings(n_users=30, n_items=20)
    cfg = {"epochs": 1, "batch_size": 64, "embedding_size": 4}
    plan = _Recording()
    with trainer_plan(plan):
        half = get_model_class("mf-torch")(**cfg).fit(data, FitOptions(seed=0))
    assert plan.calls == ["shard", "options", "prepare"]
    whole = get_model_class("mf-torch")(**cfg).fit(data, FitOptions(seed=0))
    # the same initialisation, but the step saw half of each batch: different weights
    uh, _ = half.embeddings()
    uw, _ = whole.embeddings()
    assert not np.allclose(uh, uw)


def test_epoch_callback_and_gpu_devices_are_refused_before_ray_starts():
    model = get_model_class("mf-torch")(epochs=1)
    data = toy_ratings()
    with pytest.raises(ConfigError, match="epoch_callback"):
        fit_on_ray(model, data, workers=2, options=FitOptions(epoch_callback=lambda e, m: None))
    with pytest.raises(ConfigError, match="CPU workers"):
        model.fit(data, FitOptions(backend="ray", device="cuda"))


@pytest.mark.slow
def test_mf_torch_on_two_ray_workers_matches_one_process(cluster, ml100k, tmp_path):
    # ML-100K, random 80/20, full ranking: the protocol fits a clone with backend="ray" (as
    # `recforge run` with [training] backend = "ray" does) and one in this process, same seed
    proto = get_protocol("ratio-full")
    split = proto.splits(ml100k, 0)[0]
    model = get_model_class("mf-torch")(epochs=2)
    fitted = []
    res = proto.run_splits(model, [split], ml100k, k=10, on_fit=lambda f, s, i: fitted.append(f),
                           options=FitOptions(seed=1, backend="ray", workers=2))
    local = model.clone().fit(split.train, FitOptions(seed=1))
    ndcg_ray = float(res.summary["NDCG@10"].iloc[0])
    ndcg_local = proto.score(local, split, k=10, dataset=ml100k, seed=0).metrics["NDCG@10"]
    # every step of the 2 workers is the one-process step on the same batch (half each, gradients
    # averaged): NDCG within 0.005 (measured: equal to 4 decimals) and the weights within 1e-4
    assert ndcg_local > 0.05
    assert abs(ndcg_ray - ndcg_local) <= 0.005
    remote = fitted[0]
    (ur, ir), (ul, il) = remote.embeddings(), local.embeddings()
    np.testing.assert_allclose(ur, ul, atol=1e-4)
    np.testing.assert_allclose(ir, il, atol=1e-4)
    assert remote.history_["epoch"] == [0.0, 1.0]
    # the model came back to this process: it recommends, saves and loads like a local fit
    users = split.test.users.ids[split.test.user_idx[:3]]
    ids, scores = remote.recommend(users, k=5)
    back = type(remote).load(remote.save(tmp_path / "mf.npz"))
    ids2, scores2 = back.recommend(users, k=5)
    np.testing.assert_array_equal(ids, ids2)
    np.testing.assert_allclose(scores, scores2)
    assert str(remote.device) == "cpu"
