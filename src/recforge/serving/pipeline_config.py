"""Reading a :class:`~recforge.serving.pipeline.Pipeline`'s config file or dict.

The file format is described in :mod:`recforge.serving.pipeline`; this module turns its
``[retrieval]``, ``[ranking]``, ``[cold_start]`` and ``[[postprocess]]`` tables into the
constructor's arguments (stages, rankers, cold-start model), rejecting unknown options by name.
``Pipeline.from_config`` calls it; it does not import the pipeline, so the two modules form no cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from recforge.errors import ConfigError
from recforge.models.base import Estimator, Recommender
from recforge.serving.features import FEATURE_SUFFIXES, load_item_features, load_user_features
from recforge.serving.postprocess import MMR, AllowList, BlockList, DropSeen, MinScore, Stage
from recforge.serving.ranking import CTRRanker
from recforge.serving.retrieval import IndexConfig

__all__ = ["SECTIONS", "make_stage", "pipeline_arguments"]

SECTIONS = ("retrieval", "ranking", "postprocess", "cold_start")
Resolve = Callable[[Any], Path]


def pipeline_arguments(
    config: dict[str, Any] | str | Path,
    model: Recommender,
    *,
    item_features: pd.DataFrame | None = None,
    ranker: Recommender | None = None,
    base_dir: Path | None = None,
    user_features: pd.DataFrame | None = None,
    cold_start: Recommender | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``Pipeline(model, **kwargs)`` for a config dict or a TOML/YAML file
    (what ``Pipeline.from_config`` builds).

    Args:
        config: The pipeline tables, or a file holding them (top level or a ``[pipeline]`` table).
        model: The fitted retrieval model.
        item_features: Item features for block/allow lists, MMR over a column and CTR ranking.
        ranker: A fitted ranking model that replaces ``ranking.model``.
        base_dir: Folder that relative paths resolve against (default: the config file's).
        user_features: User features for a CTR ranker.
        cold_start: A fitted cold-start model that replaces ``cold_start.model``.

    Raises:
        ConfigError: On an unknown section or option, or an inconsistent choice.
    """
    if not isinstance(config, dict):
        from recforge.config import read_config

        path = Path(config)
        base_dir = path.parent
        config = read_config(path)
        config = config.get("pipeline", config)
    cfg = dict(config)
    unknown = sorted(set(cfg) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown pipeline section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")

    def resolve(path: Any) -> Path:
        p = Path(str(path))
        return base_dir / p if not p.is_absolute() and base_dir is not None else p

    ret = dict(cfg.get("retrieval", {}))
    kind = ret.pop("kind", "model")
    index = {k: ret.pop(k) for k in list(ret) if k in IndexConfig.__dataclass_fields__ or k == "index"}
    if "index" in index:
        index["kind"] = index.pop("index")
    kwargs: dict[str, Any] = {}
    for key in ("n_candidates", "item_knn_neighbors", "recent_weight"):
        if key in ret:
            kwargs[key] = ret.pop(key)
    if "fallback" in ret:
        fb = ret.pop("fallback")
        kwargs["fallback"] = [fb] if isinstance(fb, str) else list(fb)
    if ret:
        raise ConfigError(f"unknown retrieval option(s) {', '.join(sorted(ret))}")
    rank = dict(cfg.get("ranking", {}))
    rkind = rank.pop("kind", "none")
    if rkind not in ("none", "model", "ctr"):
        raise ConfigError(f"ranking kind must be none, model or ctr, not {rkind!r}")
    ranker_obj: Any = None
    if rkind == "model":
        path = rank.pop("model", None)
        if ranker is None:
            ranker = Recommender.load(resolve(path)) if path else model
        ranker_obj = ranker
    elif rkind == "ctr":
        ranker_obj = _ctr_ranker(rank, model, ranker, resolve, user_features, item_features)
    rank.pop("model", None)
    if rank:
        raise ConfigError(f"unknown ranking option(s) {', '.join(sorted(rank))}")
    cold = dict(cfg.get("cold_start", {}))
    cold_path = cold.pop("model", None)
    if cold_start is None and cold_path:
        cold_start = Recommender.load(resolve(cold_path))
    if "threshold" in cold:
        kwargs["cold_threshold"] = cold.pop("threshold")
    if cold:
        raise ConfigError(f"unknown cold_start option(s) {', '.join(sorted(cold))}; valid: model, threshold")
    post = cfg.get("postprocess", [{"kind": "drop-seen"}])
    if not isinstance(post, list):
        raise ConfigError("postprocess must be a list of tables ([[postprocess]] in TOML)")
    stages = [make_stage(dict(s), model, item_features) for s in post]
    return {"retriever": kind, "index": index, "ranker": ranker_obj, "stages": stages, "cold_start": cold_start,
            **kwargs}


def _ctr_ranker(spec: dict[str, Any], model: Recommender, ctr_model: Any, resolve: Resolve,
                user_features: pd.DataFrame | None, item_features: pd.DataFrame | None) -> CTRRanker:
    """A :class:`CTRRanker` from a ``[ranking]`` table with ``kind = "ctr"`` (options popped)."""
    from recforge.data.ctr import FeatureEncoder

    path = spec.pop("model", None)
    onnx = spec.pop("onnx", None)
    if onnx and path:
        raise ConfigError("ranking kind ctr: give model (the torch model file) or onnx (its export folder), not both")
    kept: Any = None
    if ctr_model is None and onnx:
        from recforge.export.onnx import OnnxCTRScorer

        folder = resolve(onnx)
        if not (Path(folder) / "model.json").is_file():
            raise ConfigError(f"ranking onnx = {onnx!r}: no model.json there (write it with "
                              "`recforge export MODEL --format onnx --output FOLDER`)")
        ctr_model = OnnxCTRScorer(folder)
        kept = ctr_model.encoder
    elif ctr_model is None:
        if not path:
            raise ConfigError("ranking kind ctr needs model = <a saved CTR model file> or onnx = <its ONNX export folder>")
        ctr_model = Estimator.load(resolve(path))
    enc = spec.pop("encoder", None)
    kept = kept if kept is not None else getattr(ctr_model, "encoder_", None)  # the training rows' encoder
    if enc:
        encoder = FeatureEncoder.load(resolve(enc))
    elif kept is not None:
        encoder = FeatureEncoder.from_dict(kept) if isinstance(kept, dict) else kept
    else:
        raise ConfigError("ranking kind ctr needs encoder = <the FeatureEncoder file of its training rows>")
    features = spec.pop("features", None)
    uf_src, if_src = spec.pop("user_features", None), spec.pop("item_features", None)
    if features is not None:
        uf_src, if_src = uf_src or features, if_src or features
    if uf_src is not None:
        user_features = load_user_features(_source(uf_src, resolve))
    if if_src is not None:
        item_features = load_item_features(_source(if_src, resolve))
    kw = {k: spec.pop(k) for k in ("user_field", "item_field", "context_fields") if k in spec}
    return CTRRanker(ctr_model, encoder, model.items_.ids, user_features, item_features,
                     user_ids=model.users_.ids[model.user_known_], **kw)


def _source(s: Any, resolve: Resolve) -> str:
    """A dataset name as is; a feature file relative to the config file's folder."""
    return str(resolve(s)) if Path(str(s)).suffix.lower() in FEATURE_SUFFIXES else str(s)


def make_stage(spec: dict[str, Any], model: Recommender, item_features: pd.DataFrame | None) -> Stage:
    """One post-processing stage from its config table (``kind`` plus options; the dict is consumed)."""
    kind = spec.pop("kind", None)
    items = model.items_
    if kind == "drop-seen":
        st: Stage = DropSeen()
    elif kind in ("block", "allow"):
        cls = BlockList if kind == "block" else AllowList
        st = cls(items, spec.pop("items", None), spec.pop("attribute", None), spec.pop("values", None), item_features)
    elif kind == "min-score":
        if "threshold" not in spec:
            raise ConfigError("min-score needs a threshold")
        st = MinScore(spec.pop("threshold"))
    elif kind == "mmr":
        using = spec.pop("using", "embeddings")
        kw = {"lambda_": spec.pop("lambda", 0.7), "k": spec.pop("k", 10), "pool": spec.pop("pool", 100)}
        if using == "embeddings":
            if not model.has_embeddings:
                raise ConfigError(f"mmr over embeddings: {type(model).__name__} has none; set using to a feature column")
            st = MMR(model.embeddings()[1], **kw)
        else:
            st = MMR.from_attribute(items, item_features, using, **kw)
    else:
        raise ConfigError(f"unknown postprocess kind {kind!r}; use drop-seen, block, allow, min-score or mmr")
    if spec:
        raise ConfigError(f"unknown option(s) for {kind}: {', '.join(sorted(spec))}")
    return st
