"""``recforge``: data, split, train, evaluate and recommend from the shell.

Every command that reads a dataset or a model takes ``--config FILE`` (an experiment file, TOML
or YAML: the one schema of :mod:`recforge.experiments.spec`; flags override it) and ``--set
key=value`` (a model hyperparameter; ``table.key=value`` any other key of the file). Errors caused
by input are printed as one line and exit with 2.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer

import recforge.distributed  # noqa: F401 - registers the "ray" fit backend that FitOptions(backend="ray") uses
from recforge.cli import experiment_cmds, serve_cmds, ui_cmds
from recforge.cli._output import (
    ProgressOpt,
    Report,
    Section,
    check_format,
    emit,
    note_k_clamped,
    progress_reporter,
    result_report,
)
from recforge.cli._common import (
    Backend,
    ConfigOpt,
    FormatOpt,
    NormalizeOpt,
    SetOpt,
    backend_options,
    build_dataset,
    build_model,
    check_fit_data,
    console,
    data_options,
    err_console,
    fit_options,
    handle_errors,
    list_length,
    make_splits,
    own_split,
    read_spec,
    split_method,
    training_data,
)
from recforge.errors import ConfigError, DataError
from recforge.training.progress import reporting

app = typer.Typer(add_completion=False, no_args_is_help=True, help="recforge: recommender systems toolkit")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: list and describe.")
app.add_typer(data_app, name="data")


# ---------------------------------------------------------------------------------------- models
@app.command("models")
@handle_errors
def models_cmd(fmt: FormatOpt = "table") -> None:
    """List every model's short name and task."""
    from recforge.models.registry import list_models

    check_format(fmt)
    rows = [{"name": e.name, "task": e.task, "extra": e.extra} for e in list_models()]
    table = [{"model": r["name"], "task": r["task"], "needs extra": r["extra"] or ""} for r in rows]
    emit(Report.of(table, keys=("model",), data=rows), fmt)


@app.command("protocols")
@handle_errors
def protocols_cmd(fmt: FormatOpt = "table") -> None:
    """List the named evaluation protocols."""
    from recforge.evaluation.protocols import list_protocols

    check_format(fmt)
    rows = [{"protocol": p.name, "task": p.task, "what": p.description} for p in list_protocols()]
    emit(_listing(rows, "what"), fmt)


def _listing(rows: list[dict[str, Any]], prose: str) -> Report:
    """A name/kind listing whose ``prose`` column is printed under each name (it would not fit a column)."""
    report = Report.of(rows, data=rows)
    report.sections = [Section(pd.DataFrame(rows).drop(columns=[prose]), keys=tuple(rows[0])[:1] if rows else ())]
    report.footer = [f"{next(iter(r.values()))}: {r[prose]}" for r in rows]
    return report


# ---------------------------------------------------------------------------------------- data
@data_app.command("list")
@handle_errors
def data_list(fmt: FormatOpt = "table") -> None:
    """List the registered datasets."""
    from recforge.data import list_datasets

    check_format(fmt)
    rows = [{"dataset": name, "description": desc} for name, desc in list_datasets()]
    if fmt == "table":  # names, then one description per line: a two-column table would not fit 80
        emit(Report([], footer=[f"{r['dataset']}: {r['description']}" for r in rows]), fmt)
        return
    emit(Report.of(rows, data=rows), fmt)


@data_app.command("stats")
@handle_errors
@data_options
def data_stats(
    dataset: Annotated[str | None, typer.Argument(help="registered name or a log file (text or Parquet; see the Data options)")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="write PNG plots to this folder")] = None,
    fmt: FormatOpt = "table",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    data_flags: dict[str, Any] | None = None,
) -> None:
    """Users, items, interactions, sparsity, rating distribution, long tail, and each --signal's statistics."""
    from recforge.cli._checks import signal_rows
    from recforge.data.stats import compute_stats, plot_stats

    spec = read_spec(config, {"dataset": dataset, **(data_flags or {})}, set_, command="data stats",
                     builds_model=False)
    ds = build_dataset(spec)
    if ds.interactions is None:
        raise ConfigError(f"dataset {ds.name!r} is CTR data without user-item interactions")
    check_format(fmt)
    st = compute_stats(ds.interactions)
    paths = plot_stats(ds.interactions, plot) if plot else []
    rows: list[tuple[str, Any]] = [
        ("users", f"{st.n_users:,}"), ("items", f"{st.n_items:,}"), ("interactions", f"{st.n_interactions:,}"),
        ("sparsity", st.sparsity), ("feedback", "explicit" if st.explicit else "implicit"),
        ("mean value", st.mean_value),
        *((f"  {'value' if ds.utility else 'rating'} {key}", f"{val:,}") for key, val in st.rating_distribution.items()),
        ("per user min/median/max", f"{st.per_user['min']} / {st.per_user['median']:g} / {st.per_user['max']}"),
        ("per item min/median/max", f"{st.per_item['min']} / {st.per_item['median']:g} / {st.per_item['max']}"),
        ("share on top 10% items", f"{st.top10pct_item_share:.1%}"),
        *signal_rows(st.signals),
    ]
    if ds.utility:
        rows.insert(5, ("utility", ds.utility))
    frame = pd.DataFrame({"statistic": [r[0] for r in rows], "value": [r[1] for r in rows]}, dtype=object)
    emit(Report([Section(frame, st.name, keys=("statistic", "value"), inline=("value",))],
                footer=[f"wrote {p}" for p in paths],
                data={**st.to_dict(), "utility": ds.utility, "plots": [str(p) for p in paths]}), fmt)


@data_app.command("check")
@handle_errors
@data_options
def data_check(
    dataset: Annotated[str | None, typer.Argument(
        help="a log file (text or Parquet; see the Data options) or a registered dataset name")] = None,
    plots: Annotated[Path | None, typer.Option("--plots", help="write PNG plots to this folder")] = None,
    fmt: FormatOpt = "table",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    data_flags: dict[str, Any] | None = None,
) -> None:
    """Counts, duplicates, id types, timestamp unit, rating scale, signals, power-law popularity, and
    the cold users/items and temporal leakage of each protocol's split (and of your own split).

    The file is read by the same data options as every other command; the raw rows are checked as
    they are, and the protocols' splits are made from the data as `evaluate` would load it (after
    the cleaning options). FILE --test TEST checks a given train/test pair (as --train FILE --test TEST).
    """
    from recforge.cli._checks import check_report, protocol_splits
    from recforge.data.check import check_log, plot_check
    from recforge.data.source import DataSource

    check_format(fmt)
    flags = dict(data_flags or {})
    if flags.get("dataset.test") and not flags.get("dataset.train") and dataset is not None:
        flags["dataset.train"], dataset = dataset, None  # FILE --test TEST: FILE is the train part
    spec = read_spec(config, {"dataset": dataset, **flags}, set_, command="data check", builds_model=False)
    if not spec.dataset:
        raise ConfigError("no dataset given: pass FILE (or --train FILE --test FILE) or set [dataset] in the config")
    source = DataSource.from_table(spec.dataset, where=f"{spec.source or 'config'} [dataset]")
    from recforge.data.mmap_store import is_store

    raw_file = bool(source.path or source.train) and not (source.path and is_store(Path(source.path)))
    kw: dict[str, Any] = {}
    if raw_file:
        frames, cols = source.read_raw()
        frame = frames[0][1]
        test_frame = frames[1][1] if len(frames) == 2 else None
        kw = {"user_col": cols["user"], "item_col": cols["item"], "rating_col": cols["value"],
              "timestamp_col": cols["timestamp"], "signals": source.signal_kinds(), "guess": False}
        if source.duplicates == "error" and any(f.duplicated([cols["user"], cols["item"]]).any() for _, f, _ in frames):
            # the report counts the repeats; the splits below need one row per pair
            source = source.replace(duplicates="last")
            err_console.print("data: repeated (user, item) rows: the protocols' splits below keep the last of each "
                              "(as --duplicates last)", highlight=False, soft_wrap=True)
    spec.dataset = source.to_table()
    refused = None
    try:
        ds = build_dataset(spec)
    except DataError as exc:
        if not raw_file:
            raise
        # the check reports what is wrong in the rows; the splits are then made from the raw rows
        ds, refused = None, str(exc)
    if ds is not None and ds.interactions is None:
        raise ConfigError(f"dataset {ds.name!r} is CTR data without user-item interactions")
    if not raw_file:  # a registered dataset or a saved store: its rows as loaded
        inter = ds.interactions
        frame = inter.to_dataframe()
        # implicit interactions carry a constant 1.0: no value column to check
        frame = frame.rename(columns={"value": "rating"}) if inter.explicit else frame.drop(columns="value")
        test_frame = None
        kw = {"rating_col": "rating" if inter.explicit else None, "signals": inter.signal_kinds,
              "timestamp_col": "timestamp" if inter.timestamps is not None else None,
              "user_col": "user_id", "item_col": "item_id", "guess": False}
    given = ds.split("given") if ds is not None and "given" in ds.split_names and test_frame is None else None
    report = check_log(frame, splits=protocol_splits(), name=source.label,
                       data=None if ds is None else ds.interactions, given=given, test=test_frame, **kw)
    if refused:
        report.warnings.insert(0, f"the loaders refuse this log ({refused}); the splits below are made from the "
                                  "raw rows that can be read")
    paths = plot_check(frame, report, plots) if plots else []
    emit(check_report(report, paths), fmt)


@data_app.command("synth")
@handle_errors
def data_synth(
    output: Annotated[Path, typer.Option(help="Parquet file to write (.csv or .csv.gz: a CSV file)")],
    preset: Annotated[str | None, typer.Option(help="ml-20m | netflix | 1m-items (flags override its sizes)")] = None,
    users: Annotated[int | None, typer.Option(help="number of users")] = None,
    items: Annotated[int | None, typer.Option(help="number of items")] = None,
    interactions: Annotated[int | None, typer.Option(help="number of (user, item) rows, all distinct")] = None,
    seed: Annotated[int, typer.Option(help="seeds every random choice")] = 0,
    row_group_size: Annotated[int, typer.Option(help="rows per Parquet row group (the most rows held in memory)")]
    = 1_000_000,
    signals: Annotated[bool, typer.Option("--signals", help="add plays and hours columns drawn from the same "
                                                             "preference, and keep only some ratings")] = False,
    rated_share: Annotated[float, typer.Option(help="with --signals: share of rows that keep their rating")] = 0.3,
) -> None:
    """Write a synthetic log (power-law popularity and activity, ratings, timestamps) as Parquet or CSV;
    with --signals a simulated streaming log (plays, hours, a few ratings)."""
    from recforge.data.synth import SynthSpec, preset as get_preset, write_synth

    sizes = {"n_users": users, "n_items": items, "n_interactions": interactions}
    if preset is not None:
        spec = get_preset(preset, seed=seed, signals=signals, rated_share=rated_share, **sizes)
    else:
        missing = [f"--{k.removeprefix('n_')}" for k, v in sizes.items() if v is None]
        if missing:
            raise ConfigError(f"data synth: give {', '.join(missing)} (or --preset ml-20m|netflix|1m-items)")
        spec = SynthSpec(int(users), int(items), int(interactions), seed=seed,  # type: ignore[arg-type]
                         signals=signals, rated_share=rated_share)
    t0 = time.perf_counter()
    with console.status(f"writing {spec.n_interactions:,} interactions"):
        info = write_synth(spec, output, row_group_size=row_group_size)
    console.print(f"wrote {info['rows']:,} rows ({spec.n_users:,} users x {spec.n_items:,} items) in "
                  f"{info['row_groups']} row groups to {output} in {time.perf_counter() - t0:.1f} s")


@data_app.command("ingest")
@handle_errors
def data_ingest(
    source: Annotated[Path, typer.Argument(help="CSV/TSV or Parquet interaction log")],
    output: Annotated[Path, typer.Option(help="folder to write (memory-mapped arrays; use it as --dataset)")],
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str | None = None,
    timestamp_col: str | None = None,
    duplicates: Annotated[str, typer.Option(help="error | sum | mean | first | last")] = "error",
    signal: Annotated[list[str] | None, typer.Option(
        "--signal", help="an extra signal column kept per row, NAME[:KIND] (repeatable)")] = None,
) -> None:
    """Read a large log in batches and save it as memory-mapped arrays that open in about a second."""
    from recforge.data.streaming import read_interactions

    t0 = time.perf_counter()
    with console.status(f"reading {source}"):
        inter = read_interactions(source, user_col, item_col, rating_col, timestamp_col,
                                  duplicates=duplicates, signals=signal)  # type: ignore[arg-type]
        inter.save(output)
    console.print(f"{inter!r} saved to {output} in {time.perf_counter() - t0:.1f} s")


# ---------------------------------------------------------------------------------------- split
@app.command("split")
@handle_errors
@data_options
def split_cmd(
    dataset: Annotated[str | None, typer.Option(help="registered name or a log file (text or Parquet; see the Data options)")] = None,
    method: Annotated[str | None, typer.Option(help="a method of recforge.splits.SPLITS: random|kfold|temporal|time|"
                                                    "loo|predefined|cold-users|cold-items")] = None,
    output: Annotated[Path | None, typer.Option(help="folder for train.csv and test.csv")] = None,
    test_fraction: float | None = None,
    n: Annotated[int | None, typer.Option(help="latest n per user (temporal)")] = None,
    name: Annotated[str | None, typer.Option(help="predefined split name, e.g. u1")] = None,
    seed: int | None = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    data_flags: dict[str, Any] | None = None,
) -> None:
    """Split a dataset and write train/test CSV files (raw ids)."""
    from recforge.io import atomic_write

    spec = read_spec(config, {"dataset": dataset, "seed": seed, "split.method": method,
                              "split.output": None if output is None else str(output),
                              "split.test_fraction": test_fraction, "split.n": n, "split.name": name,
                              **(data_flags or {})},
                     set_, command="split", builds_model=False)
    ds = build_dataset(spec)
    from recforge.data.source import to_frame

    parts = make_splits(spec, ds)
    method_name = spec.split.get("method") or split_method(spec)
    out = Path(spec.split.get("output") or f"splits/{ds.name}-{method_name}")
    for j, sp_ in enumerate(parts):
        folder = out / f"fold{j + 1}" if len(parts) > 1 else out
        for part in ("train", "test"):
            # columns evaluate reads back as they were: rating (explicit) or weight (implicit counts)
            with atomic_write(folder / f"{part}.csv") as fh:
                to_frame(getattr(sp_, part)).to_csv(fh, index=False)
        console.print(f"{folder}: train {len(sp_.train):,} rows, test {len(sp_.test):,} rows")


# ---------------------------------------------------------------------------------------- train
@app.command("train")
@handle_errors
@data_options
def train_cmd(
    model: Annotated[str | None, typer.Option(help="model short name (see `recforge models`)")] = None,
    dataset: Annotated[str | None, typer.Option(help="registered name or a log file (text or Parquet; see the Data options)")] = None,
    output: Annotated[Path | None, typer.Option(help="where to save the fitted model (.npz)")] = None,
    split: Annotated[str | None, typer.Option(help="train on this predefined split's train part")] = None,
    seed: int | None = None,
    device: Annotated[str | None, typer.Option(help="cpu|cuda|auto (torch models)")] = None,
    normalize: NormalizeOpt = None,
    progress: ProgressOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    backend: experiment_cmds.TrainBackendOpt = None,
    workers: experiment_cmds.TrainWorkersOpt = None,
    address: experiment_cmds.TrainAddressOpt = None,
    data_flags: dict[str, Any] | None = None,
) -> None:
    """Fit a model on a dataset (or on the train part of the config's split table) and save it.

    CTR models train on the train part of the dataset's CTR split. ``--backend ray --workers N``
    fits torch models through Ray Train and ials on Ray actors (docs/scale-out.md).
    """
    from recforge.io import check_writable

    spec = read_spec(config, {"model": model, "dataset": dataset, "split.name": split, "seed": seed,
                              "device": device, "normalize": normalize,
                              **experiment_cmds.train_flags(backend, workers, address),
                              **(data_flags or {})}, set_, command="train")
    ds = build_dataset(spec)
    mdl = build_model(spec)
    out = output or (Path(spec.outputs["dir"]) / "model.npz" if spec.outputs.get("dir") else
                     Path(f"models/{mdl.name}-{ds.name}.npz"))
    check_writable(out, "model file")
    data = training_data(spec, ds, mdl)
    check_fit_data(mdl, data)
    t0 = time.perf_counter()
    bars = progress_reporter(progress)
    with reporting(bars), (console.status(f"fitting {mdl.name} on {ds.name}") if bars is None
                           else contextlib.nullcontext()):
        mdl.fit(data, fit_options(spec, progress=False))
    fit_s = time.perf_counter() - t0
    mdl.save(out)
    console.print(f"fitted {mdl!r} in {fit_s:.2f} s; saved to {out}")


# ---------------------------------------------------------------------------------------- evaluate
@app.command("evaluate")
@handle_errors
@data_options
@backend_options
def evaluate_cmd(
    model: Annotated[str | None, typer.Option(help="model short name")] = None,
    dataset: Annotated[str | None, typer.Option(help="registered name or a log file (text or Parquet; see the Data options)")] = None,
    protocol: Annotated[str | None, typer.Option(help="protocol name (see `recforge protocols`)")] = None,
    k: Annotated[int | None, typer.Option(help="list length for ranking metrics")] = None,
    seed: int | None = None,
    device: str | None = None,
    output: Annotated[Path | None, typer.Option(help="save results as OUTPUT.csv/.json/.md")] = None,
    memory_budget: Annotated[str | None, typer.Option(
        help="e.g. 8GB: users are ranked in blocks that fit it; a model whose fit would exceed it is refused")] = None,
    normalize: NormalizeOpt = None,
    fmt: FormatOpt = "table",
    progress: ProgressOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    data_flags: dict[str, Any] | None = None,
    backend: Backend | None = None,
) -> None:
    """Fit and evaluate a model under a named protocol (default: the model task's).

    With --backend ray the full ranking of the test users runs on Ray workers (the fit stays in
    this process); the metrics equal the local run's."""
    from recforge.evaluation.blocks import check_fit_memory, memory_budget as budget_scope, parse_bytes
    from recforge.evaluation.protocols import default_protocol, evaluate

    check_format(fmt)

    spec = read_spec(config, {"model": model, "dataset": dataset, "protocol": protocol, "k": k,
                              "seed": seed, "device": device, "normalize": normalize,
                              "outputs.results": None if output is None else str(output), **(data_flags or {})},
                     set_, command="evaluate")
    budget = None if memory_budget is None else parse_bytes(memory_budget)
    mdl = build_model(spec)
    ds = build_dataset(spec)
    proto = spec.protocol or ("given-split" if own_split(spec) else default_protocol(mdl.task))
    if own_split(spec) and proto != "given-split":
        raise ConfigError(f"--train/--test, --split-column and --split-date give your own split; protocol {proto!r} "
                          "would split the data again: use --protocol given-split")
    k_used = spec.k
    if k_used is not None and ds.interactions is not None:
        k_used = note_k_clamped(k_used, ds.interactions.n_items)
    backend = backend or Backend()
    with budget_scope(budget), reporting(progress_reporter(progress, fmt)):
        if ds.interactions is not None:
            check_fit_memory(mdl, ds.interactions)
        with backend.scoring():
            result = evaluate(mdl, ds, proto, k=k_used, options=fit_options(spec))
    if spec.outputs.get("results"):
        result.save(spec.outputs["results"])
    config = mdl.config.to_dict()
    footer = [f"config: {config}"] if config else []
    if backend.is_ray:
        footer.append(f"scored on {backend.describe()}")
    emit(result_report(result, "results", footer=footer,
                       data={"protocol": proto, "dataset": ds.name, "model": mdl.name, "config": config,
                             "utility": ds.utility, "normalize": mdl.target_transform(),
                             "backend": backend.describe(), "rows": result.to_records(), "notes": result.notes}), fmt)


# ---------------------------------------------------------------------------------------- recommend
@app.command("recommend")
@handle_errors
@data_options
def recommend_cmd(
    user: Annotated[list[str] | None, typer.Option(help="raw user id (repeatable)")] = None,
    model: Annotated[str | None, typer.Option(help="model short name (fitted on the whole dataset)")] = None,
    model_path: Annotated[Path | None, typer.Option(help="a model saved by `recforge train`")] = None,
    dataset: Annotated[str | None, typer.Option(help="registered name or a log file (text or Parquet; see the Data options)")] = None,
    k: Annotated[int | None, typer.Option(help="list length (default: the config's k, else 10)")] = None,
    seed: int | None = None,
    include_seen: bool = False,
    normalize: NormalizeOpt = None,
    fmt: FormatOpt = "table",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    data_flags: dict[str, Any] | None = None,
) -> None:
    """Top-k recommendations for users, with titles when the dataset has them."""
    from recforge._arrays import plain_id
    from recforge.models.base import Recommender

    spec = read_spec(config, {"model": model, "dataset": dataset, "k": k, "seed": seed, "normalize": normalize,
                              **(data_flags or {})}, set_, command="recommend", builds_model=model_path is None)
    kk = list_length(spec)
    check_format(fmt)
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
        check_fit_data(mdl, ds.interactions)
        mdl.fit(ds.interactions, fit_options(spec))
    note_k_clamped(kk, len(mdl.items_))
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
    sections = []
    for entry in out:
        unknown = "" if entry["known_user"] else " (unknown user: popular items)"
        frame = pd.DataFrame(entry["recommendations"], columns=["rank", "item_id", "score",
                                                                 *(["title"] if titles is not None else [])])
        frame.insert(0, "user_id", entry["user_id"])
        if fmt in ("table", "markdown"):
            frame = frame.drop(columns=["user_id"]).rename(columns={"item_id": "item"})
        sections.append(Section(frame, f"user {entry['user_id']}{unknown}", keys=tuple(frame.columns),
                                inline=("title",)))
    if fmt == "csv":  # one table: a user column instead of a section per user
        sections = [Section(pd.concat([s.frame for s in sections], ignore_index=True))] if sections else []
    emit(Report(sections, data={"model": mdl.name, "k": kk, "users": out}), fmt)


# command groups that live in their own modules (they import recforge.cli._common, never this module)
serve_cmds.register(app)
experiment_cmds.register(app)
ui_cmds.register(app)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
