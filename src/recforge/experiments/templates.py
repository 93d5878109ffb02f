"""Default experiment files, one per registered model (``configs/<dataset>/<model>.toml``).

Generated from the model registry, so a new model gets its file by running
``python -m recforge.experiments.templates configs/ml100k``: the model's default
hyperparameters, the task's protocol, CSV logging, the exports and plots the model supports,
and a search space built from the hyperparameters it has.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from recforge.evaluation.protocols import Protocol
from recforge.experiments.spec import ExperimentSpec
from recforge.io import atomic_write

#: Datasets whose published rating split the rating files use instead of the task's default
#: protocol (ML-100K's RMSE numbers are reported on u1.base/u1.test).
RATING_PROTOCOL_BY_DATASET = {"ml-100k": "rating-u1"}
#: Ranking models made for users and items with little or no history run the cold-start protocol.
COLD_START_MODELS = frozenset({"onboarding-knn", "hybrid-weighted", "hybrid-switching", "content", "knowledge",
                               "demographic", "lightfm-style"})


def _space(params: dict[str, Any]) -> dict[str, Any]:
    """A search space around the defaults for the hyperparameters the model has."""
    space: dict[str, Any] = {}
    for name, val in params.items():
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            continue
        if name == "embedding_size":
            space[name] = {"type": "int", "low": 8, "high": 256, "log": True}
        elif name in ("learning_rate",) and val > 0:
            space[name] = {"type": "float", "low": val / 10, "high": min(1.0, val * 10), "log": True}
        elif (name == "reg" or name.startswith("reg_") or name.endswith("_reg") or name == "weight_decay") and val > 0:
            space[name] = {"type": "float", "low": val / 100, "high": val * 100, "log": True}
        elif name in ("k", "n_neighbors") and isinstance(val, int) and val > 1:
            space[name] = {"type": "int", "low": max(2, val // 4), "high": val * 4, "log": True}
        elif name == "dropout":
            space[name] = {"type": "float", "low": 0.0, "high": 0.5}
        elif name == "alpha" and val > 0:
            space[name] = {"type": "float", "low": val / 10, "high": val * 40, "log": True}
        elif name == "shrinkage" and isinstance(val, (int, float)) and val > 0:
            space[name] = {"type": "float", "low": 0.0, "high": val * 10}
    # round the bounds (1e-05 / 100 is 1.0000000000000001e-07 in binary floating point)
    for dim in space.values():
        for key in ("low", "high"):
            if isinstance(dim[key], float):
                dim[key] = float(f"{dim[key]:.6g}")
    return space


def default_spec(model: str, dataset: str = "ml-100k") -> tuple[ExperimentSpec, str]:
    """The default experiment for ``model`` on ``dataset`` and a one-line note for the file header."""
    from recforge.evaluation.protocols import get_protocol
    from recforge.models.base import Recommender
    from recforge.models.registry import get_model_class, list_models

    entry = {e.name: e for e in list_models()}[model]
    note = "hyperparameters: the model's defaults"
    params: dict[str, Any] = {}
    cls = None
    try:
        cls = get_model_class(model)
        params = {k: v for k, v in cls.config_class().to_dict().items() if v is not None}
    except Exception as exc:  # noqa: BLE001 - a model under construction still gets its file
        note = f"hyperparameters: defaults (the model class was not importable when generated: {type(exc).__name__})"
    torch_model = entry.extra == "torch" or (cls is not None and cls.backend == "torch")
    if model in COLD_START_MODELS and entry.task == "ranking":
        protocol = get_protocol("cold-start")
    elif entry.task == "rating" and dataset in RATING_PROTOCOL_BY_DATASET:
        protocol = get_protocol(RATING_PROTOCOL_BY_DATASET[dataset])
    else:
        protocol = Protocol.default_for(entry.task)
    # the list length is written for ranking protocols only (rating and CTR protocols have none)
    k = protocol.default_k if protocol.task == "ranking" else None
    # CTR models embed features, not users and items: nothing for the embedding plot
    has_emb = entry.task != "ctr" and (torch_model or (cls is not None and cls.embeddings is not Recommender.embeddings))
    iterative = "epochs" in params or torch_model
    plots = [p for p, ok in (("embeddings", has_emb), ("learning_curve", iterative),
                             ("metric_vs_k", entry.task not in ("rating", "ctr"))) if ok]
    data: dict[str, Any] = {
        "name": f"{model}-{dataset.replace('-', '')}",
        "seed": 0,
        "dataset": {"name": dataset},
        "protocol": {"name": protocol.name, **({"k": k} if k else {})},
        "model": {"name": model, "params": params},
        # Hogwild updates race across threads; one thread keeps "same file, same numbers"
        # CTR files keep the patience their published rows were made with (ctr-holdout alone: 3)
        "training": {**({"patience": 5} if entry.task == "ctr" else {}), "device": "cpu",
                     **({"threads": 1} if params.get("parallel") == "hogwild" else {})},
        "logger": {"kind": "csv", "project": "recforge"},
        "outputs": {"save_model": True, "export": ["auto"], "plots": plots,
                    **({} if entry.task == "ctr" else {"color_by": "genre"})},
    }
    space = _space(params)
    if space:
        data["tune"] = {"n_trials": 20, "pruner": "median", "space": space}
    return ExperimentSpec.from_dict(data), note


def write_configs(folder: str | Path, dataset: str = "ml-100k", *, models: list[str] | None = None,
                  overwrite: bool = False) -> list[Path]:
    """Write one ``<model>.toml`` per registered model (CTR models run ``ctr-holdout``: the dataset as CTR rows)."""
    from recforge.models.registry import list_models

    folder = Path(folder)
    written = []
    for entry in list_models():
        if models is not None and entry.name not in models:
            continue
        path = folder / f"{entry.name}.toml"
        if path.exists() and not overwrite:
            continue
        spec, note = default_spec(entry.name, dataset)
        spec.save(path)
        body = path.read_text()
        header = (f"# {entry.name} on {dataset}: `recforge run {path.as_posix()}` (add --logger wandb|mlflow|tensorboard)\n"
                  f"# {note}; `recforge tune {path.as_posix()}` searches [tune.space]\n\n")
        with atomic_write(path) as fh:
            fh.write(header + body)
        written.append(path)
    return written


def main(argv: list[str]) -> None:
    """``python -m recforge.experiments.templates [FOLDER] [--overwrite] [--models a,b,...]``."""
    args = list(argv)
    overwrite = "--overwrite" in args
    models = None
    if "--models" in args:
        at = args.index("--models")
        models = [m for m in args[at + 1].split(",") if m] if at + 1 < len(args) else []
        del args[at : at + 2]
    rest = [a for a in args if not a.startswith("--")]
    for p in write_configs(rest[0] if rest else "configs/ml100k", models=models, overwrite=overwrite):
        print(f"wrote {p}")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
