"""Bayesian personalised ranking (BPR-MF) trained by parallel SGD: Hogwild (default) or race-free blocks.

The compiled samplers and epoch drivers are in :mod:`recforge.models.factorization._bpr_kernels`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from recforge.config import FitOptions, ModelConfig
from recforge.data.interactions import Interactions
from recforge.models._threads import kernel_threads
from recforge.models.factorization._base import FactorRecommender, chunk_bounds, init_factors, seed_sequence
from recforge.models.factorization._bpr_kernels import (
    MAX_TRIES,
    SGDSettings,
    bpr_blocks_epoch,
    bpr_hogwild_epochs,
    draw_negatives,
    positives_bitmap,
)
from recforge.training.epochs import fit_epochs

__all__ = ["BPR", "BPRConfig", "draw_negatives"]


@dataclass(frozen=True)
class BPRConfig(ModelConfig):
    """Hyperparameters of :class:`BPR`.

    Defaults chosen to hold up on both ML-100K protocols rather than one: uniform negatives with
    4 candidates (dynamic negative sampling) give loo-full HR@10/NDCG@10 0.098/0.048 and
    ratio-full Recall@20/NDCG@20 0.353/0.421 (3 seeds); the popularity negatives of implicit's BPR
    give 0.099/0.051 on loo-full but only 0.214/0.254 on ratio-full.
    """

    ALIASES: ClassVar[dict[str, str]] = {
        "negatives": "negative_sampling",
        "sampling": "pair_sampling",
        "item_bias": "use_bias",
    }

    embedding_size: int = 64
    """Number of latent factors ``k`` (the item bias is extra)."""
    epochs: int = 100
    """Epochs; each makes as many updates as there are training pairs."""
    learning_rate: float = 0.01
    """SGD step size."""
    learning_rate_decay: float = 1.0
    """The step size is multiplied by this after every epoch (1.0: constant)."""
    reg: float = 0.01
    """L2 penalty on the user and item factors, applied at every update that touches them."""
    reg_bias: float = 0.01
    """L2 penalty on the item biases."""
    use_bias: bool = True
    """Learn an item bias ``b_i`` (as implicit's BPR does; was ``item_bias``)."""
    negative_sampling: Literal["uniform", "popularity"] = "uniform"
    """How negatives are drawn among the user's non-positives: ``uniform`` over the items (the BPR
    paper) or ``popularity``: proportional to each item's training count, as implicit's BPR does,
    by picking the item of a random training pair (slightly better on leave-last-out splits,
    where the held-out item is often a popular one, much worse on random holdouts). Was ``negatives``."""
    n_candidates: int = 4
    """Negatives drawn per update; with more than one, the update uses the candidate the model
    currently scores highest (dynamic negative sampling, Zhang et al., SIGIR 2013). 1 is plain BPR."""
    collisions: Literal["redraw", "skip"] = "redraw"
    """What happens when a drawn negative is one of the user's positives: ``redraw`` until a true
    negative turns up (up to 64 tries), or ``skip`` the update, as implicit's BPR does (with
    popularity negatives this leaves active users' pairs less trained: set it, with
    ``negative_sampling="popularity"``, ``n_candidates=1``, ``pair_sampling="pairs"`` and
    ``init_std=0.0045``, to reproduce implicit's BPR)."""
    init_std: float = 0.01
    """Standard deviation of the normal initialisation of the factors."""
    pair_sampling: Literal["pairs", "users"] = "users"
    """What an epoch visits: ``users``: as many draws as there are pairs, each a uniform random
    user and one of their positives (the sampler of NGCF/LightGCN; every user weighs the same,
    which lifts ML-100K loo-full NDCG@10 from 0.047 to 0.054); ``pairs``: every training pair
    once, in random order (active users weigh more). ``users`` needs ``parallel="hogwild"``.
    Was ``sampling``."""
    loss: Literal["bpr", "hinge"] = "bpr"
    """The pairwise loss: ``bpr`` (``-ln sigmoid(x_uij)``, the paper) or ``hinge``
    (``max(0, margin - x_uij)``: a pair stops moving once ranked apart by ``margin``)."""
    margin: float = 1.0
    """The hinge loss's margin (used with ``loss="hinge"`` only)."""
    parallel: Literal["blocks", "hogwild"] = "hogwild"
    """How threads share the work. ``blocks``: race-free rounds over user x item blocks (a fit
    is a pure function of the seed and the thread count; ``threads`` barriers per epoch).
    ``hogwild``: each thread runs every epoch over its own users with unsynchronised item updates
    (one parallel region per fit, so it degrades least on an oversubscribed machine, but with
    several threads the result varies from run to run)."""

    def validate(self) -> None:
        self.check(self.embedding_size >= 1, "embedding_size", "must be >= 1")
        self.check(self.epochs >= 1, "epochs", "must be >= 1")
        self.check(0 < self.learning_rate < 10, "learning_rate", "must be in (0, 10)")
        self.check(0 < self.learning_rate_decay <= 1, "learning_rate_decay", "must be in (0, 1]")
        self.check(self.reg >= 0, "reg", "must be >= 0")
        self.check(self.reg_bias >= 0, "reg_bias", "must be >= 0")
        self.check(self.init_std >= 0, "init_std", "must be >= 0")
        self.check(1 <= self.n_candidates <= 1024, "n_candidates", "must be in [1, 1024]")
        self.check(self.loss in ("bpr", "hinge"), "loss", "must be 'bpr' or 'hinge'")
        self.check(self.margin > 0, "margin", "must be > 0")
        self.check(
            self.pair_sampling == "pairs" or self.parallel == "hogwild",
            "pair_sampling",
            "pair_sampling='users' needs parallel='hogwild' (set pair_sampling='pairs' for parallel='blocks')",
        )


class BPR(FactorRecommender):
    r"""BPR-MF: matrix factorisation trained to rank each user's positives above other items.

    With :math:`\hat x_{ui} = b_i + p_u^\top q_i`, it maximises over triples of a user, an observed
    (positive) item ``i`` and an unobserved item ``j``

    .. math::
        \sum_{(u,i,j)} \ln \sigma(\hat x_{ui} - \hat x_{uj})
        - \lambda (\lVert p_u \rVert^2 + \lVert q_i \rVert^2 + \lVert q_j \rVert^2)
        - \lambda_b (b_i^2 + b_j^2)

    by SGD: every epoch makes as many updates as there are positive pairs, each on a uniform
    random user and one of their positives (``pair_sampling="users"``) or on every pair once in
    random order (``pair_sampling="pairs"``), each with a negative ``j`` drawn by rejection against
    the user's positives (a bit test, or a binary search of the sorted CSR row), so a positive is
    never used as a negative. Negatives are uniform over the items or proportional to their
    popularity (``negative_sampling``); with ``n_candidates > 1`` the update uses the
    highest-scoring of that many draws (dynamic negative sampling). ``history_`` holds each epoch's
    ``train_auc`` (the share of updates whose positive already outscored the negative) and
    ``updates`` (updates made: draws that found no negative are skipped).

    Threads (``FitOptions.threads``; one thread below ~10^7 multiply-adds per epoch):

    - ``parallel="hogwild"`` (default): Hogwild (Niu et al., NIPS 2011). Users are split into one
      contiguous range per thread with equal shares of the pairs; each thread runs all epochs on
      its range in one parallel region (one per epoch when a callback, a logger or verbose output
      looks between epochs), with unsynchronised updates of the shared item vectors.
      With one thread the fit is a pure function of the seed; with several, update races make
      it vary slightly from run to run.
    - ``parallel="blocks"``: race-free. Users and items are split at random (afresh every epoch)
      into ``T`` blocks each, and an epoch runs ``T`` rounds; in round ``s`` thread ``b`` trains
      the pairs of user block ``b`` whose positive lies in item block ``(b + s) mod T``, drawing
      negatives from that item block too. No two threads touch the same vector, so the fit is a
      pure function of the seed and the thread count, and because the blocks are redrawn each
      epoch the negatives keep their distribution in expectation. It costs ``T`` barriers per
      epoch, which an oversubscribed machine makes expensive.

    References: S. Rendle, C. Freudenthaler, Z. Gantner, L. Schmidt-Thieme, "BPR: Bayesian
    Personalized Ranking from Implicit Feedback", UAI 2009; W. Zhang, T. Chen, J. Wang, Y. Yu,
    "Optimizing Top-N Collaborative Filtering via Dynamic Negative Item Sampling", SIGIR 2013;
    F. Niu, B. Recht, C. Re, S. Wright, "Hogwild!", NIPS 2011; block rounds as in R. Gemulla et al.,
    "Large-Scale Matrix Factorization with Distributed Stochastic Gradient Descent", KDD 2011.
    """

    name = "bpr"
    task = "ranking"
    config_class = BPRConfig

    def _fit(self, data: Interactions, options: FitOptions) -> None:
        cfg = self.config
        rng = seed_sequence(options, 16)
        k = cfg.embedding_size
        P, Q = init_factors(rng, data.n_users, data.n_items, k, cfg.init_std, self.item_known_)
        bias = np.zeros(data.n_items, np.float32)
        csr = data.csr()
        indptr = csr.indptr.astype(np.int64)
        indices = csr.indices.astype(np.int32, copy=False)  # read only: no copy of a mapped store's ids
        pos = (indptr, indices, positives_bitmap(indptr, indices, data.n_items))
        params = (P, Q, bias)
        base_seed = np.uint64(rng.integers(0, 2**63))
        settings = SGDSettings(
            popular=cfg.negative_sampling == "popularity",
            n_candidates=cfg.n_candidates,
            tries=MAX_TRIES if cfg.collisions == "redraw" else 1,
            learning_rate=np.float32(cfg.learning_rate),
            decay=np.float32(cfg.learning_rate_decay),
            reg=np.float32(cfg.reg),
            reg_bias=np.float32(cfg.reg_bias),
            use_bias=cfg.use_bias,
            hinge=cfg.loss == "hinge",
            margin=np.float32(cfg.margin),
        )
        publish = lambda: self._set_factors(P, Q, bias)  # noqa: E731 - the kernels update in place
        with kernel_threads(options, work=(5.0 + cfg.n_candidates) * len(data) * k) as threads:
            if cfg.parallel == "hogwild":
                by_user = cfg.pair_sampling == "users"
                # threads split the users at equal shares of their draws: pairs, or users
                bounds = chunk_bounds(csr.indptr, float(by_user), float(not by_user), threads)
                active = (np.diff(indptr) > 0).astype(np.int64)
                share = np.add.reduceat(active, bounds[:-1]) if by_user else np.diff(indptr[bounds])
                draws = np.floor(len(indices) * share / max(share.sum(), 1) + 0.5).astype(np.int64)
                stats = np.zeros((cfg.epochs, len(bounds) - 1, 2), np.int64)

                def hogwild(first: int, count: int) -> dict[str, list[float]]:
                    # one parallel region for all the epochs when nobody looks between them
                    bpr_hogwild_epochs(pos, params, settings, bounds, draws, by_user, base_seed, first, count, stats)
                    return _epoch_stats(stats[first : first + count, :, 0].sum(1), stats[first : first + count, :, 1].sum(1))

                def one_epoch(epoch: int) -> dict[str, float]:
                    return {key: vals[0] for key, vals in hogwild(epoch, 1).items()}

                fit_epochs(self, cfg.epochs, one_epoch, options, name=self.name, publish=publish, steps=hogwild)
            else:
                entries = np.empty((2, len(indices)), np.int32)
                scratch = np.empty((2, len(indices)), np.int32)

                def blocks(epoch: int) -> dict[str, float]:
                    lr = np.float32(settings.learning_rate * settings.decay**epoch)
                    correct, used = bpr_blocks_epoch(pos, params, settings, lr, entries, scratch, threads,
                                                     base_seed, epoch)
                    return {key: v[0] for key, v in _epoch_stats(np.array([correct]), np.array([used])).items()}

                fit_epochs(self, cfg.epochs, blocks, options, name=self.name, publish=publish)

    def _set_factors(self, P: np.ndarray, Q: np.ndarray, bias: np.ndarray) -> None:
        self.user_factors_ = P
        self.item_factors_ = Q
        self.item_bias_ = bias

    def _item_offsets(self) -> np.ndarray | float:
        return self.item_bias_


def _epoch_stats(correct: np.ndarray, used: np.ndarray) -> dict[str, list[float]]:
    """Per-epoch ``train_auc`` (correctly ordered share of the updates) and ``updates``."""
    return {"train_auc": list(correct / np.maximum(used, 1)), "updates": list(used.astype(np.float64))}
