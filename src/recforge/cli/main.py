"""``recforge``: data, split, train, evaluate and recommend from the shell.

Every command takes flags or ``--config FILE`` (TOML or YAML; flags win), and ``--set k=v`` to
override model hyperparameters. Errors caused by input are printed as one line and exit with 2.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from recforge.cli._errors import err_console, handle_errors
from recforge.config import parse_sets, read_config
from recforge.errors import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="recforge: recommender systems toolkit")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: list and describe.")
app.add_typer(data_app, name="data")
console = Console()

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML or YAML file with these options")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="model hyperparameter override key=value")]
FormatOpt = Annotated[str, typer.Option("--format", help="table or json")]


def _merge(config: Path | None, flags: dict[str, Any], sets: list[str] | None) -> dict[str, Any]:
    """Config file values, overridden by flags that were given, plus ``--set`` params."""
    opts: dict[str, Any] = read_config(config) if config else {}
    opts.setdefault("params", {})
    if "model" in opts and isinstance(opts["model"], dict):  # [model] name=..., params in the table
        table = dict(opts.pop("model"))
        opts["model"] = table.pop("name", None)
        opts["params"] = {**table.pop("params", {}), **table, **opts["params"]}
    for key, val in flags.items():
        if val is not None:
            opts[key] = val
    opts["params"] = {**opts.get("params", {}), **parse_sets(sets)}
    return opts


def _dataset(opts: dict[str, Any]) -> Any:
    from recforge.data import load, load_file

    name = opts.get("dataset")
    if not name:
        raise ConfigError("no dataset given: pass --dataset NAME|FILE or set dataset in the config")
    if Path(str(name)).suffix.lower() in (".csv", ".tsv", ".parquet", ".pq", ".txt"):
        return load_file(
            name, opts.get("user_col", "user_id"), opts.get("item_col", "item_id"), opts.get("rating_col"),
            opts.get("timestamp_col"), duplicates=opts.get("duplicates", "error"),
        )
    return load(str(name))


def _model(opts: dict[str, Any]) -> Any:
    from recforge.models.registry import make_model

    name = opts.get("model")
    if not name:
        raise ConfigError("no model given: pass --model NAME (see `recforge models`)")
    return make_model(str(name), opts.get("params") or {})


def _fit_options(opts: dict[str, Any], progress: bool = False) -> Any:
    from recforge.config import FitOptions

    return FitOptions(seed=int(opts.get("seed", 0)), device=str(opts.get("device", "cpu")), progress=progress)


def _check_k(k: Any) -> int:
    if k is None:
        return 10
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    return k


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return None if np.isnan(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


# ---------------------------------------------------------------------------------------- models
@app.command("models")
@handle_errors
def models_cmd(fmt: FormatOpt = "table") -> None:
    """List every model's short name and task."""
    from recforge.models.registry import list_models

    entries = list_models()
    if fmt == "json":
        _print_json([{"name": e.name, "task": e.task, "extra": e.extra} for e in entries])
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
    dataset: Annotated[str, typer.Argument(help="registered name or a CSV/Parquet file")],
    plot: Annotated[Path | None, typer.Option("--plot", help="write PNG plots to this folder")] = None,
    fmt: FormatOpt = "table",
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str | None = None,
    timestamp_col: str | None = None,
) -> None:
    """Users, items, interactions, sparsity, rating distribution, long tail."""
    from recforge.data.stats import compute_stats, plot_stats

    ds = _dataset({"dataset": dataset, "user_col": user_col, "item_col": item_col, "rating_col": rating_col,
                   "timestamp_col": timestamp_col})
    if ds.interactions is None:
        raise ConfigError(f"dataset {dataset!r} is CTR data without user-item interactions")
    st = compute_stats(ds.interactions)
    paths = plot_stats(ds.interactions, plot) if plot else []
    if fmt == "json":
        _print_json({**st.to_dict(), "plots": [str(p) for p in paths]})
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
    method: Annotated[str | None, typer.Option(help="random|kfold|temporal|time|loo|predefined|cold-users|cold-items")] = None,
    output: Annotated[Path | None, typer.Option(help="folder for train.csv and test.csv")] = None,
    test_fraction: float | None = None,
    n: Annotated[int | None, typer.Option(help="latest n per user (temporal)")] = None,
    name: Annotated[str | None, typer.Option(help="predefined split name, e.g. u1")] = None,
    seed: int | None = None,
    config: ConfigOpt = None,
) -> None:
    """Split a dataset and write train/test CSV files (raw ids)."""
    from recforge import splits as S
    from recforge.io import atomic_write

    opts = _merge(config, {"dataset": dataset, "method": method, "output": output, "test_fraction": test_fraction,
                           "n": n, "name": name, "seed": seed}, None)
    ds = _dataset(opts)
    data = ds.interactions
    m = opts.get("method", "random")
    seed_v = int(opts.get("seed", 0))
    frac = float(opts.get("test_fraction", 0.2))
    if m == "random":
        parts = [S.random_split(data, test_fraction=frac, seed=seed_v)]
    elif m == "kfold":
        parts = S.kfold(data, 5, seed=seed_v)
    elif m == "temporal":
        parts = [S.temporal_user_split(data, n=opts.get("n"), fraction=None if opts.get("n") else frac)]
    elif m == "time":
        parts = [S.global_time_split(data, quantile=1 - frac)]
    elif m == "loo":
        parts = [S.leave_one_out(data)]
    elif m == "predefined":
        parts = [ds.split(str(opts.get("name", "u1")))]
    elif m in ("cold-users", "cold-items"):
        parts = [S.cold_start_split(data, fraction=frac, kind=m.split("-")[1], seed=seed_v)]
    else:
        raise ConfigError(f"unknown split method {m!r}")
    out = Path(opts.get("output") or f"splits/{ds.name}-{m}")
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
    """Fit a model on a dataset and save it."""
    opts = _merge(config, {"model": model, "dataset": dataset, "output": output, "split": split, "seed": seed,
                           "device": device}, set_)
    ds = _dataset(opts)
    mdl = _model(opts)
    data = ds.split(opts["split"]).train if opts.get("split") else ds.interactions
    if mdl.task != "rating":
        data = data.to_implicit()
    t0 = time.perf_counter()
    with console.status(f"fitting {mdl.name} on {ds.name}"):
        mdl.fit(data, _fit_options(opts, progress=False))
    fit_s = time.perf_counter() - t0
    out = Path(opts.get("output") or f"models/{mdl.name}-{ds.name}.npz")
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
    """Fit and evaluate a model under a named protocol."""
    from recforge.evaluation.protocols import evaluate

    opts = _merge(config, {"model": model, "dataset": dataset, "protocol": protocol, "k": k, "seed": seed,
                           "device": device, "output": output}, set_)
    if opts.get("k") is not None:
        _check_k(opts["k"])
    mdl = _model(opts)
    ds = _dataset(opts)
    proto = opts.get("protocol") or ("rating-kfold5" if mdl.task == "rating" else "loo-full")
    result = evaluate(mdl, ds, proto, k=opts.get("k"), options=_fit_options(opts), progress=fmt != "json")
    if opts.get("output"):
        result.save(opts["output"])
    if fmt == "json":
        _print_json({"protocol": proto, "dataset": ds.name, "model": mdl.name, "config": mdl.config.to_dict(),
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
    k: int | None = None,
    seed: int | None = None,
    include_seen: bool = False,
    fmt: FormatOpt = "table",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Top-k recommendations for users, with titles when the dataset has them."""
    from recforge.models.base import Recommender

    opts = _merge(config, {"model": model, "dataset": dataset, "k": k, "seed": seed, "user": user}, set_)
    kk = _check_k(opts.get("k"))
    users = opts.get("user")
    if not users:
        raise ConfigError("no user given: pass --user ID (repeatable)")
    users = [users] if isinstance(users, (str, int)) else list(users)
    ds = _dataset(opts) if opts.get("dataset") else None
    if model_path:
        mdl = Recommender.load(model_path)
    else:
        if ds is None:
            raise ConfigError("pass --dataset to fit on, or --model-path of a saved model")
        mdl = _model(opts)
        data = ds.interactions if mdl.task == "rating" else ds.interactions.to_implicit()
        mdl.fit(data, _fit_options(opts))
    raw = [_as_id(u) for u in users]
    ids, scores = mdl.recommend(np.asarray(raw, dtype=object), k=kk, exclude_seen=not include_seen)
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
            rec = {"rank": rank, "item_id": item, "score": None if np.isnan(score) else float(score)}
            if titles is not None and item in titles.index:
                rec["title"] = str(titles.loc[item])
            recs.append(rec)
        known = bool(mdl.users_.index_one(u) >= 0 and mdl.user_known_[mdl.users_.index_one(u)])
        out.append({"user_id": u, "known_user": known, "recommendations": recs})
    if fmt == "json":
        _print_json({"model": mdl.name, "k": kk, "users": out})
        return
    for entry in out:
        note = "" if entry["known_user"] else " (unknown user: popular items)"
        table = Table("rank", "item", "score", *(["title"] if titles is not None else []),
                      title=f"user {entry['user_id']}{note}")
        for rec in entry["recommendations"]:
            sc = "" if rec["score"] is None else f"{rec['score']:.4f}"
            table.add_row(str(rec["rank"]), str(rec["item_id"]), sc, *([rec.get("title", "")] if titles is not None else []))
        console.print(table)


def _as_id(u: Any) -> Any:
    s = str(u)
    return int(s) if s.lstrip("-").isdigit() else s


def _register_plugins() -> None:
    # command groups that live in their own modules (serving, experiments) attach themselves here
    from recforge.cli import experiment_cmds, serve_cmds

    serve_cmds.register(app)
    experiment_cmds.register(app)


_register_plugins()


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
