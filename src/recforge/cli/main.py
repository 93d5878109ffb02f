"""``recforge``: data, split, train, evaluate and recommend from the shell.

Every command that reads a dataset or a model takes ``--config FILE`` (an experiment file, TOML
or YAML: the one schema of :mod:`recforge.experiments.spec`; flags override it) and ``--set
key=value`` (a model hyperparameter; ``table.key=value`` any other key of the file). Errors caused
by input are printed as one line and exit with 2.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from recforge.cli import experiment_cmds, serve_cmds
from recforge.cli._common import (
    ConfigOpt,
    FormatOpt,
    SetOpt,
    build_dataset,
    build_model,
    console,
    fit_options,
    handle_errors,
    list_length,
    make_splits,
    print_json,
    read_spec,
    training_data,
)
from recforge.errors import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="recforge: recommender systems toolkit")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: list and describe.")
app.add_typer(data_app, name="data")


# ---------------------------------------------------------------------------------------- models
@app.command("models")
@handle_errors
def models_cmd(fmt: FormatOpt = "table") -> None:
    """List every model's short name and task."""
    from recforge.models.registry import list_models

    entries = list_models()
    if fmt == "json":
        print_json([{"name": e.name, "task": e.task, "extra": e.extra} for e in entries])
        return
    table = Table("model", "task", "needs extra")
    for e in entries:
        table.add_row(e.name, e.task, e.extra or "")
    console.print(table)


@app.command("protocols")
@handle_errors
def protocols_cmd() -> None:
    """List the named evaluation protocols."""
    from recforge.evaluation.protocols import list_protocols

    table = Table("protocol", "task", "what")
    for p in list_protocols():
        table.add_row(p.name, p.task, p.description)
    console.print(table)


# ---------------------------------------------------------------------------------------- data
@data_app.command("list")
@handle_errors
def data_list() -> None:
    """List the registered datasets."""
    from recforge.data import list_datasets

    table = Table("dataset", "description")
    for name, desc in list_datasets():
        table.add_row(name, desc)
    console.print(table)


@data_app.command("stats")
@handle_errors
def data_stats(
    dataset: Annotated[str | None, typer.Argument(help="registered name or a CSV/Parquet file")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="write PNG plots to this folder")] = None,
    fmt: FormatOpt = "table",
    user_col: str | None = None,
    item_col: str | None = None,
    rating_col: str | None = None,
    timestamp_col: str | None = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Users, items, interactions, sparsity, rating distribution, long tail."""
    from recforge.data.stats import compute_stats, plot_stats

    columns = {"dataset.user_col": user_col, "dataset.item_col": item_col, "dataset.rating_col": rating_col,
               "dataset.timestamp_col": timestamp_col}
    spec = read_spec(config, {"dataset": dataset, **columns}, set_, command="data stats",
                     builds_model=False)
    ds = build_dataset(spec)
    if ds.interactions is None:
        raise ConfigError(f"dataset {ds.name!r} is CTR data without user-item interactions")
    st = compute_stats(ds.interactions)
    paths = plot_stats(ds.interactions, plot) if plot else []
    if fmt == "json":
        print_json({**st.to_dict(), "plots": [str(p) for p in paths]})
        return
    table = Table("statistic", "value", title=f"{st.name}")
    table.add_row("users", f"{st.n_users:,}")
    table.add_row("items", f"{st.n_items:,}")
    table.add_row("interactions", f"{st.n_interactions:,}")
    table.add_row("sparsity", f"{st.sparsity:.4f}")
    table.add_row("feedback", "explicit" if st.explicit else "implicit")
    table.add_row("mean value", f"{st.mean_value:.4f}")
    for key, val in st.rating_distribution.items():
        table.add_row(f"  rating {key}", f"{val:,}")
    table.add_row("per user min/median/max", f"{st.per_user['min']} / {st.per_user['median']:g} / {st.per_user['max']}")
    table.add_row("per item min/median/max", f"{st.per_item['min']} / {st.per_item['median']:g} / {st.per_item['max']}")
    table.add_row("share on top 10% items", f"{st.top10pct_item_share:.1%}")
    console.print(table)
    for p in paths:
        console.print(f"wrote {p}")


# ---------------------------------------------------------------------------------------- split
@app.command("split")
@handle_errors
def split_cmd(
    dataset: Annotated[str | None, typer.Option(help="registered name or a CSV/Parquet file")] = None,
    method: Annotated[str | None, typer.Option(help="a method of recforge.splits.SPLITS: random|kfold|temporal|time|"
                                                    "loo|predefined|cold-users|cold-items")] = None,
    output: Annotated[Path | None, typer.Option(help="folder for train.csv and test.csv")] = None,
    test_fraction: float | None = None,
    n: Annotated[int | None, typer.Option(help="latest n per user (temporal)")] = None,
    name: Annotated[str | None, typer.Option(help="predefined split name, e.g. u1")] = None,
    seed: int | None = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Split a dataset and write train/test CSV files (raw ids)."""
    from recforge.io import atomic_write

    spec = read_spec(config, {"dataset": dataset, "seed": seed, "split.method": method,
                              "split.output": None if output is None else str(output),
                              "split.test_fraction": test_fraction, "split.n": n, "split.name": name},
                     set_, command="split", builds_model=False)
    ds = build_dataset(spec)
    parts = make_splits(spec, ds)
    method_name = spec.split.get("method") or ("predefined" if "name" in spec.split else "random")
    out = Path(spec.split.get("output") or f"splits/{ds.name}-{method_name}")
    for j, sp_ in enumerate(parts):
        folder = out / f"fold{j + 1}" if len(parts) > 1 else out
        for part in ("train", "test"):
            with atomic_write(folder / f"{part}.csv") as fh:
                getattr(sp_, part).to_dataframe().to_csv(fh, index=False)
        console.print(f"{folder}: train {len(sp_.train):,} rows, test {len(sp_.test):,} rows")


# ---------------------------------------------------------------------------------------- train
@app.command("train")
@handle_errors
def train_cmd(
    model: Annotated[str | None, typer.Option(help="model short name (see `recforge models`)")] = None,
    dataset: Annotated[str | None, typer.Option(help="registered name or a CSV/Parquet file")] = None,
    output: Annotated[Path | None, typer.Option(help="where to save the fitted model (.npz)")] = None,
    split: Annotated[str | None, typer.Option(help="train on this predefined split's train part")] = None,
    seed: int | None = None,
    device: Annotated[str | None, typer.Option(help="cpu|cuda|auto (torch models)")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Fit a model on a dataset (or on the train part of the config's split table) and save it.

    CTR models train on the train part of the dataset's CTR split.
    """
    from recforge.io import check_writable

    spec = read_spec(config, {"model": model, "dataset": dataset, "split.name": split, "seed": seed,
                              "device": device}, set_, command="train")
    if output is not None:
        check_writable(output, "model file")  # before the fit, not after it
    ds = build_dataset(spec)
    mdl = build_model(spec)
    out = output or (Path(spec.outputs["dir"]) / "model.npz" if spec.outputs.get("dir") else
                     Path(f"models/{mdl.name}-{ds.name}.npz"))
    check_writable(out, "model file")
    data = training_data(spec, ds, mdl)
    t0 = time.perf_counter()
    with console.status(f"fitting {mdl.name} on {ds.name}"):
        mdl.fit(data, fit_options(spec, progress=False))
    fit_s = time.perf_counter() - t0
    mdl.save(out)
    console.print(f"fitted {mdl!r} in {fit_s:.2f} s; saved to {out}")


# ---------------------------------------------------------------------------------------- evaluate
@app.command("evaluate")
@handle_errors
def evaluate_cmd(
    model: Annotated[str | None, typer.Option(help="model short name")] = None,
    dataset: Annotated[str | None, typer.Option(help="registered name or a CSV/Parquet file")] = None,
    protocol: Annotated[str | None, typer.Option(help="protocol name (see `recforge protocols`)")] = None,
    k: Annotated[int | None, typer.Option(help="list length for ranking metrics")] = None,
    seed: int | None = None,
    device: str | None = None,
    output: Annotated[Path | None, typer.Option(help="save results as OUTPUT.csv/.json/.md")] = None,
    fmt: FormatOpt = "table",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Fit and evaluate a model under a named protocol (default: the model task's)."""
    from recforge.evaluation.protocols import default_protocol, evaluate

    spec = read_spec(config, {"model": model, "dataset": dataset, "protocol": protocol, "k": k,
                              "seed": seed, "device": device,
                              "outputs.results": None if output is None else str(output)}, set_, command="evaluate")
    mdl = build_model(spec)
    ds = build_dataset(spec)
    proto = spec.protocol or default_protocol(mdl.task)
    result = evaluate(mdl, ds, proto, k=spec.k, options=fit_options(spec), progress=fmt != "json")
    if spec.outputs.get("results"):
        result.save(spec.outputs["results"])
    if fmt == "json":
        print_json({"protocol": proto, "dataset": ds.name, "model": mdl.name, "config": mdl.config.to_dict(),
                    "rows": result.to_records(), "notes": result.notes})
        return
    _print_result(result)


def _print_result(result: Any) -> None:
    df = result.summary
    table = Table(*df.columns, title="results")
    for rec in df.to_dict(orient="records"):
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in rec.values()])
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}")


# ---------------------------------------------------------------------------------------- recommend
@app.command("recommend")
@handle_errors
def recommend_cmd(
    user: Annotated[list[str] | None, typer.Option(help="raw user id (repeatable)")] = None,
    model: Annotated[str | None, typer.Option(help="model short name (fitted on the whole dataset)")] = None,
    model_path: Annotated[Path | None, typer.Option(help="a model saved by `recforge train`")] = None,
    dataset: Annotated[str | None, typer.Option(help="registered name or a CSV/Parquet file")] = None,
    k: Annotated[int | None, typer.Option(help="list length (default: the config's k, else 10)")] = None,
    seed: int | None = None,
    include_seen: bool = False,
    fmt: FormatOpt = "table",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Top-k recommendations for users, with titles when the dataset has them."""
    from recforge._arrays import plain_id
    from recforge.models.base import Recommender

    spec = read_spec(config, {"model": model, "dataset": dataset, "k": k, "seed": seed}, set_,
                     command="recommend", builds_model=model_path is None)
    kk = list_length(spec)
    if not user:
        raise ConfigError("no user given: pass --user ID (repeatable)")
    ds = build_dataset(spec) if spec.dataset else None
    mdl = Recommender.load(model_path) if model_path else build_model(spec)
    if mdl.task == "ctr":
        raise ConfigError(f"{mdl.name} is a CTR model (it scores feature rows, not users): "
                          "evaluate it with `recforge evaluate` or `recforge run`")
    if not model_path:
        if ds is None:
            raise ConfigError("pass --dataset to fit on, or --model-path of a saved model")
        if ds.interactions is None:
            raise ConfigError(f"dataset {ds.name!r} is CTR data without user-item interactions")
        mdl.fit(ds.interactions, fit_options(spec))
    ids, scores = mdl.recommend(np.asarray(user, dtype=object), k=kk, exclude_seen=not include_seen)
    # echo each user id as the model stores it (7, not "7"); unknown ids as typed
    known_idx = mdl.users_.index(np.asarray(user, dtype=object))
    raw = [plain_id(mdl.users_.ids[i]) if i >= 0 else u for u, i in zip(user, known_idx, strict=True)]
    titles = None
    if ds is not None and ds.interactions is not None and ds.interactions.item_features is not None:
        feats = ds.interactions.item_features
        titles = feats["title"] if "title" in feats.columns else None
    out = []
    for row, u in enumerate(raw):
        recs = []
        for rank, (item, score) in enumerate(zip(ids[row], scores[row], strict=True), start=1):
            if item in (-1, ""):
                continue
            rec = {"rank": rank, "item_id": plain_id(item), "score": None if np.isnan(score) else float(score)}
            if titles is not None and item in titles.index:
                rec["title"] = str(titles.loc[item])
            recs.append(rec)
        out.append({"user_id": u, "known_user": mdl.knows_user(u), "recommendations": recs})
    if fmt == "json":
        print_json({"model": mdl.name, "k": kk, "users": out})
        return
    for entry in out:
        note = "" if entry["known_user"] else " (unknown user: popular items)"
        table = Table("rank", "item", "score", *(["title"] if titles is not None else []),
                      title=f"user {entry['user_id']}{note}")
        for rec in entry["recommendations"]:
            sc = "" if rec["score"] is None else f"{rec['score']:.4f}"
            table.add_row(str(rec["rank"]), str(rec["item_id"]), sc, *([rec.get("title", "")] if titles is not None else []))
        console.print(table)


# command groups that live in their own modules (they import recforge.cli._common, never this module)
serve_cmds.register(app)
experiment_cmds.register(app)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
